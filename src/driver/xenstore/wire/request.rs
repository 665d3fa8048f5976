//! Request payloads in both directions: the client encodes them, the
//! simulated daemon decodes them with the same checks the 4.17 daemons make.

use super::{check_path, exactly, malformed, split_strings, strings, MsgType, Perm, WireError};

/// Every request of the protocol, as the client builds it and the server
/// reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Control(Vec<String>),
    Directory(String),
    Read(String),
    GetPerms(String),
    Watch { path: String, token: String },
    Unwatch { path: String, token: String },
    TransactionStart,
    TransactionEnd { commit: bool },
    Introduce { domid: u32, gfn: u64, evtchn: u32 },
    Release(u32),
    GetDomainPath(u32),
    Write { path: String, value: Vec<u8> },
    Mkdir(String),
    Rm(String),
    SetPerms { path: String, perms: Vec<Perm> },
    IsDomainIntroduced(u32),
    Resume(u32),
    SetTarget { domid: u32, target: u32 },
    ResetWatches,
    DirectoryPart { path: String, offset: u64 },
}

fn path_arg(payload: &[u8], what: &str) -> Result<String, WireError> {
    let [p] = exactly::<1>(payload, what)?;
    check_path(&p)?;
    Ok(p)
}

fn domid(s: &str) -> Result<u32, WireError> {
    s.parse::<u32>()
        .map_err(|_| malformed(format!("bad domid {s:?}")))
}

impl Request {
    pub fn msg_type(&self) -> MsgType {
        match self {
            Request::Control(_) => MsgType::Control,
            Request::Directory(_) => MsgType::Directory,
            Request::Read(_) => MsgType::Read,
            Request::GetPerms(_) => MsgType::GetPerms,
            Request::Watch { .. } => MsgType::Watch,
            Request::Unwatch { .. } => MsgType::Unwatch,
            Request::TransactionStart => MsgType::TransactionStart,
            Request::TransactionEnd { .. } => MsgType::TransactionEnd,
            Request::Introduce { .. } => MsgType::Introduce,
            Request::Release(_) => MsgType::Release,
            Request::GetDomainPath(_) => MsgType::GetDomainPath,
            Request::Write { .. } => MsgType::Write,
            Request::Mkdir(_) => MsgType::Mkdir,
            Request::Rm(_) => MsgType::Rm,
            Request::SetPerms { .. } => MsgType::SetPerms,
            Request::IsDomainIntroduced(_) => MsgType::IsDomainIntroduced,
            Request::Resume(_) => MsgType::Resume,
            Request::SetTarget { .. } => MsgType::SetTarget,
            Request::ResetWatches => MsgType::ResetWatches,
            Request::DirectoryPart { .. } => MsgType::DirectoryPart,
        }
    }

    /// The payload. Fails when it would exceed `max` (4096 on a socket,
    /// 4080 through the xenbus device) or a path is invalid.
    pub fn encode(&self, max: usize) -> Result<Vec<u8>, WireError> {
        let p = match self {
            Request::Control(args) => {
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                strings(&refs)
            }
            Request::Directory(p)
            | Request::Read(p)
            | Request::GetPerms(p)
            | Request::Mkdir(p)
            | Request::Rm(p) => {
                check_path(p)?;
                strings(&[p])
            }
            Request::Watch { path, token } | Request::Unwatch { path, token } => {
                check_path(path)?;
                if token.contains('\0') {
                    return Err(malformed("NUL in watch token"));
                }
                strings(&[path, token])
            }
            Request::TransactionStart | Request::ResetWatches => vec![0],
            Request::TransactionEnd { commit } => strings(&[if *commit { "T" } else { "F" }]),
            Request::Introduce { domid, gfn, evtchn } => {
                strings(&[&domid.to_string(), &gfn.to_string(), &evtchn.to_string()])
            }
            Request::Release(d)
            | Request::GetDomainPath(d)
            | Request::IsDomainIntroduced(d)
            | Request::Resume(d) => strings(&[&d.to_string()]),
            Request::Write { path, value } => {
                check_path(path)?;
                let mut v = strings(&[path]);
                v.extend_from_slice(value);
                v
            }
            Request::SetPerms { path, perms } => {
                check_path(path)?;
                if perms.is_empty() {
                    return Err(malformed("SET_PERMS needs at least one permission"));
                }
                let mut v = strings(&[path]);
                for perm in perms {
                    v.extend_from_slice(perm.to_string().as_bytes());
                    v.push(0);
                }
                v
            }
            Request::SetTarget { domid, target } => {
                strings(&[&domid.to_string(), &target.to_string()])
            }
            Request::DirectoryPart { path, offset } => {
                check_path(path)?;
                strings(&[path, &offset.to_string()])
            }
        };
        if p.len() > max {
            return Err(WireError::Oversized {
                len: p.len() as u32,
                max,
            });
        }
        Ok(p)
    }

    /// Reads a request as a daemon does. `Err(None)` is an unknown or
    /// removed type (ENOSYS); `Err(Some(_))` a malformed payload (EINVAL).
    pub fn decode(ty: u32, payload: &[u8]) -> Result<Request, Option<WireError>> {
        let kind = match MsgType::from_code(ty) {
            None | Some(MsgType::Restrict) => return Err(None),
            Some(k) => k,
        };
        let r = match kind {
            MsgType::Control => Request::Control(
                split_strings(payload)?
                    .into_iter()
                    .map(str::to_string)
                    .collect(),
            ),
            MsgType::Directory => Request::Directory(path_arg(payload, "DIRECTORY")?),
            MsgType::Read => Request::Read(path_arg(payload, "READ")?),
            MsgType::GetPerms => Request::GetPerms(path_arg(payload, "GET_PERMS")?),
            MsgType::Mkdir => Request::Mkdir(path_arg(payload, "MKDIR")?),
            MsgType::Rm => Request::Rm(path_arg(payload, "RM")?),
            MsgType::Watch | MsgType::Unwatch => {
                let [path, token] = exactly::<2>(payload, "WATCH")?;
                check_path(&path)?;
                if kind == MsgType::Watch {
                    Request::Watch { path, token }
                } else {
                    Request::Unwatch { path, token }
                }
            }
            MsgType::TransactionStart => Request::TransactionStart,
            MsgType::ResetWatches => Request::ResetWatches,
            MsgType::TransactionEnd => match payload {
                b"T\0" => Request::TransactionEnd { commit: true },
                b"F\0" => Request::TransactionEnd { commit: false },
                _ => return Err(Some(malformed("TRANSACTION_END needs T or F"))),
            },
            MsgType::Introduce => {
                let [d, gfn, ev] = exactly::<3>(payload, "INTRODUCE")?;
                Request::Introduce {
                    domid: domid(&d)?,
                    gfn: gfn
                        .parse()
                        .map_err(|_| malformed(format!("bad gfn {gfn:?}")))?,
                    evtchn: ev
                        .parse()
                        .map_err(|_| malformed(format!("bad event channel {ev:?}")))?,
                }
            }
            MsgType::Release
            | MsgType::GetDomainPath
            | MsgType::IsDomainIntroduced
            | MsgType::Resume => {
                let [d] = exactly::<1>(payload, "domid")?;
                let d = domid(&d)?;
                match kind {
                    MsgType::Release => Request::Release(d),
                    MsgType::GetDomainPath => Request::GetDomainPath(d),
                    MsgType::IsDomainIntroduced => Request::IsDomainIntroduced(d),
                    _ => Request::Resume(d),
                }
            }
            MsgType::Write => {
                let Some(nul) = payload.iter().position(|b| *b == 0) else {
                    return Err(Some(malformed("WRITE without a NUL after the path")));
                };
                let path = std::str::from_utf8(&payload[..nul])
                    .map_err(|_| malformed("path is not UTF-8"))?
                    .to_string();
                check_path(&path)?;
                Request::Write {
                    path,
                    value: payload[nul + 1..].to_vec(),
                }
            }
            MsgType::SetPerms => {
                let parts = split_strings(payload)?;
                let Some((path, perms)) = parts.split_first() else {
                    return Err(Some(malformed("SET_PERMS without a path")));
                };
                check_path(path)?;
                if perms.is_empty() {
                    return Err(Some(malformed("SET_PERMS without permissions")));
                }
                Request::SetPerms {
                    path: path.to_string(),
                    perms: perms
                        .iter()
                        .map(|p| Perm::parse(p))
                        .collect::<Result<_, _>>()?,
                }
            }
            MsgType::SetTarget => {
                let [d, t] = exactly::<2>(payload, "SET_TARGET")?;
                Request::SetTarget {
                    domid: domid(&d)?,
                    target: domid(&t)?,
                }
            }
            MsgType::DirectoryPart => {
                let [path, off] = exactly::<2>(payload, "DIRECTORY_PART")?;
                check_path(&path)?;
                Request::DirectoryPart {
                    path,
                    offset: off
                        .parse()
                        .map_err(|_| malformed(format!("bad offset {off:?}")))?,
                }
            }
            MsgType::WatchEvent | MsgType::Error | MsgType::Restrict => {
                return Err(Some(malformed(
                    "a daemon-only message type sent by a client",
                )))
            }
        };
        Ok(r)
    }
}
