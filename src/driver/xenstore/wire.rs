//! xenstore's wire format (Xen 4.17 `xs_wire.h`): the 16-byte header, every
//! message type, request payloads in both directions, reply payloads, error
//! names and permission strings.
//!
//! Pure: bytes in, values out. It must not do I/O, keep connection state or
//! know the tree. Both the client (encode requests, decode replies) and the
//! simulated host (decode requests, encode replies) use it, so the two agree by
//! construction and the tests of one cover the other. Every length an input
//! announces is checked against a limit before anything is allocated.

use std::fmt;

/// Bytes in `struct xsd_sockmsg`.
pub const HEADER_LEN: usize = 16;
/// `XENSTORE_PAYLOAD_MAX`: the largest payload either side may send on a ring,
/// and the largest request a daemon accepts anywhere.
pub const PAYLOAD_MAX: usize = 4096;
/// The largest reply a socket client accepts. oxenstored sends replies above
/// `PAYLOAD_MAX` on a socket (a big directory); this bounds them.
pub const SOCKET_REPLY_MAX: usize = 1 << 20;
/// `XENSTORE_ABS_PATH_MAX` and `XENSTORE_REL_PATH_MAX`.
pub const ABS_PATH_MAX: usize = 3072;
pub const REL_PATH_MAX: usize = 2048;

/// Every message type of 4.17 (`enum xsd_sockmsg_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MsgType {
    Control,
    Directory,
    Read,
    GetPerms,
    Watch,
    Unwatch,
    TransactionStart,
    TransactionEnd,
    Introduce,
    Release,
    GetDomainPath,
    Write,
    Mkdir,
    Rm,
    SetPerms,
    WatchEvent,
    Error,
    IsDomainIntroduced,
    Resume,
    SetTarget,
    /// Number 20, removed from the protocol: daemons answer ENOSYS.
    Restrict,
    ResetWatches,
    DirectoryPart,
}

impl MsgType {
    pub const ALL: [MsgType; 23] = [
        MsgType::Control,
        MsgType::Directory,
        MsgType::Read,
        MsgType::GetPerms,
        MsgType::Watch,
        MsgType::Unwatch,
        MsgType::TransactionStart,
        MsgType::TransactionEnd,
        MsgType::Introduce,
        MsgType::Release,
        MsgType::GetDomainPath,
        MsgType::Write,
        MsgType::Mkdir,
        MsgType::Rm,
        MsgType::SetPerms,
        MsgType::WatchEvent,
        MsgType::Error,
        MsgType::IsDomainIntroduced,
        MsgType::Resume,
        MsgType::SetTarget,
        MsgType::Restrict,
        MsgType::ResetWatches,
        MsgType::DirectoryPart,
    ];

    /// The number on the wire (the index in `ALL`).
    pub fn code(self) -> u32 {
        MsgType::ALL.iter().position(|t| *t == self).unwrap_or(0) as u32
    }

    pub fn from_code(code: u32) -> Option<MsgType> {
        MsgType::ALL.get(usize::try_from(code).ok()?).copied()
    }
}

/// `struct xsd_sockmsg`, little-endian as on x86. `ty` stays raw so that a
/// server can answer ENOSYS to a type it does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub ty: u32,
    pub req_id: u32,
    pub tx_id: u32,
    pub len: u32,
}

impl Header {
    pub fn parse(b: &[u8; HEADER_LEN]) -> Header {
        let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Header {
            ty: word(0),
            req_id: word(4),
            tx_id: word(8),
            len: word(12),
        }
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&self.ty.to_le_bytes());
        b[4..8].copy_from_slice(&self.req_id.to_le_bytes());
        b[8..12].copy_from_slice(&self.tx_id.to_le_bytes());
        b[12..16].copy_from_slice(&self.len.to_le_bytes());
        b
    }

    pub fn kind(&self) -> Option<MsgType> {
        MsgType::from_code(self.ty)
    }
}

/// One whole message: header fields and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub ty: u32,
    pub req_id: u32,
    pub tx_id: u32,
    pub payload: Vec<u8>,
}

impl Message {
    pub fn new(ty: MsgType, req_id: u32, tx_id: u32, payload: Vec<u8>) -> Message {
        Message {
            ty: ty.code(),
            req_id,
            tx_id,
            payload,
        }
    }

    pub fn kind(&self) -> Option<MsgType> {
        MsgType::from_code(self.ty)
    }

    /// Header and payload as sent. The caller has checked the payload size
    /// (every encoder in this module does).
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = Header {
            ty: self.ty,
            req_id: self.req_id,
            tx_id: self.tx_id,
            len: self.payload.len() as u32,
        };
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        out.extend_from_slice(&header.encode());
        out.extend_from_slice(&self.payload);
        out
    }
}

/// What is wrong with bytes received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// A header announced more payload than the limit allows.
    Oversized { len: u32, max: usize },
    /// The stream ended inside a message.
    Truncated { have: usize, need: usize },
    /// A payload that does not have the form its type needs.
    Malformed(String),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Oversized { len, max } => {
                write!(f, "message announces {len} payload bytes, limit {max}")
            }
            WireError::Truncated { have, need } => {
                write!(f, "stream ended inside a message ({have} of {need} bytes)")
            }
            WireError::Malformed(m) => write!(f, "malformed message: {m}"),
        }
    }
}

impl std::error::Error for WireError {}

fn malformed(m: impl Into<String>) -> WireError {
    WireError::Malformed(m.into())
}

/// Splits a byte stream into messages. Holds at most one partial message
/// (header plus `max_payload`) beyond what one `push` brings, so memory stays
/// bounded whatever the peer sends.
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    max_payload: usize,
}

impl Decoder {
    pub fn new(max_payload: usize) -> Decoder {
        Decoder {
            buf: Vec::new(),
            max_payload,
        }
    }

    /// Adds bytes and returns every message now complete. After an error the
    /// stream is out of step: the caller must drop the connection.
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<Message>, WireError> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            let rest = &self.buf[at..];
            let Some(head) = rest.get(..HEADER_LEN) else {
                break;
            };
            let mut h = [0u8; HEADER_LEN];
            h.copy_from_slice(head);
            let header = Header::parse(&h);
            let len = header.len as usize;
            if len > self.max_payload {
                self.buf.clear();
                return Err(WireError::Oversized {
                    len: header.len,
                    max: self.max_payload,
                });
            }
            let Some(payload) = rest.get(HEADER_LEN..HEADER_LEN + len) else {
                break;
            };
            out.push(Message {
                ty: header.ty,
                req_id: header.req_id,
                tx_id: header.tx_id,
                payload: payload.to_vec(),
            });
            at += HEADER_LEN + len;
        }
        self.buf.drain(..at);
        Ok(out)
    }

    /// Bytes of an incomplete message waiting for more input.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Called at end of stream: leftover bytes mean a truncated message.
    pub fn finish(&self) -> Result<(), WireError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let need = if self.buf.len() < HEADER_LEN {
            HEADER_LEN
        } else {
            let mut h = [0u8; HEADER_LEN];
            h.copy_from_slice(&self.buf[..HEADER_LEN]);
            HEADER_LEN + Header::parse(&h).len as usize
        };
        Err(WireError::Truncated {
            have: self.buf.len(),
            need,
        })
    }
}

/// xenstore's error names (`xsd_errors[]`), plus oxenstored's `EQUOTA`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrName {
    Einval,
    Eacces,
    Eexist,
    Eisdir,
    Enoent,
    Enomem,
    Enospc,
    Eio,
    Enotempty,
    Enosys,
    Erofs,
    Ebusy,
    Eagain,
    Eisconn,
    E2big,
    Eperm,
    /// oxenstored only: a quota was exceeded.
    Equota,
}

impl ErrName {
    pub const ALL: [ErrName; 17] = [
        ErrName::Einval,
        ErrName::Eacces,
        ErrName::Eexist,
        ErrName::Eisdir,
        ErrName::Enoent,
        ErrName::Enomem,
        ErrName::Enospc,
        ErrName::Eio,
        ErrName::Enotempty,
        ErrName::Enosys,
        ErrName::Erofs,
        ErrName::Ebusy,
        ErrName::Eagain,
        ErrName::Eisconn,
        ErrName::E2big,
        ErrName::Eperm,
        ErrName::Equota,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrName::Einval => "EINVAL",
            ErrName::Eacces => "EACCES",
            ErrName::Eexist => "EEXIST",
            ErrName::Eisdir => "EISDIR",
            ErrName::Enoent => "ENOENT",
            ErrName::Enomem => "ENOMEM",
            ErrName::Enospc => "ENOSPC",
            ErrName::Eio => "EIO",
            ErrName::Enotempty => "ENOTEMPTY",
            ErrName::Enosys => "ENOSYS",
            ErrName::Erofs => "EROFS",
            ErrName::Ebusy => "EBUSY",
            ErrName::Eagain => "EAGAIN",
            ErrName::Eisconn => "EISCONN",
            ErrName::E2big => "E2BIG",
            ErrName::Eperm => "EPERM",
            ErrName::Equota => "EQUOTA",
        }
    }

    /// The Linux errno. `EQUOTA` has none; libxenstore reports EINVAL for
    /// it, ENOSPC says better what happened (a quota, as C xenstored's
    /// ENOSPC does).
    pub fn errno(self) -> i32 {
        match self {
            ErrName::Einval => libc::EINVAL,
            ErrName::Eacces => libc::EACCES,
            ErrName::Eexist => libc::EEXIST,
            ErrName::Eisdir => libc::EISDIR,
            ErrName::Enoent => libc::ENOENT,
            ErrName::Enomem => libc::ENOMEM,
            ErrName::Enospc | ErrName::Equota => libc::ENOSPC,
            ErrName::Eio => libc::EIO,
            ErrName::Enotempty => libc::ENOTEMPTY,
            ErrName::Enosys => libc::ENOSYS,
            ErrName::Erofs => libc::EROFS,
            ErrName::Ebusy => libc::EBUSY,
            ErrName::Eagain => libc::EAGAIN,
            ErrName::Eisconn => libc::EISCONN,
            ErrName::E2big => libc::E2BIG,
            ErrName::Eperm => libc::EPERM,
        }
    }

    pub fn parse(name: &str) -> Option<ErrName> {
        ErrName::ALL.into_iter().find(|e| e.as_str() == name)
    }
}

impl fmt::Display for ErrName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An ERROR reply's payload: the name, kept raw when unknown (at most 32
/// bytes of it, so a hostile daemon cannot make us keep much).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XsErr {
    Known(ErrName),
    Unknown(String),
}

impl XsErr {
    pub fn errno(&self) -> i32 {
        match self {
            XsErr::Known(e) => e.errno(),
            XsErr::Unknown(_) => libc::EINVAL,
        }
    }

    pub fn is(&self, name: ErrName) -> bool {
        *self == XsErr::Known(name)
    }
}

impl fmt::Display for XsErr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XsErr::Known(e) => f.write_str(e.as_str()),
            XsErr::Unknown(s) => write!(f, "unknown error {s:?}"),
        }
    }
}

pub fn encode_error(name: ErrName) -> Vec<u8> {
    let mut v = name.as_str().as_bytes().to_vec();
    v.push(0);
    v
}

pub fn parse_error(payload: &[u8]) -> XsErr {
    let end = payload
        .iter()
        .position(|b| *b == 0)
        .unwrap_or(payload.len());
    let raw = &payload[..end];
    match std::str::from_utf8(raw).ok().and_then(ErrName::parse) {
        Some(e) => XsErr::Known(e),
        None => XsErr::Unknown(String::from_utf8_lossy(&raw[..raw.len().min(32)]).into_owned()),
    }
}

/// Access one permission entry grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    None,
    Read,
    Write,
    Both,
}

impl Access {
    pub fn letter(self) -> char {
        match self {
            Access::None => 'n',
            Access::Read => 'r',
            Access::Write => 'w',
            Access::Both => 'b',
        }
    }
    pub fn can_read(self) -> bool {
        matches!(self, Access::Read | Access::Both)
    }
    pub fn can_write(self) -> bool {
        matches!(self, Access::Write | Access::Both)
    }
}

/// One permission entry, `n0`, `r5`, `b12`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Perm {
    pub access: Access,
    pub domid: u32,
}

impl Perm {
    pub fn new(access: Access, domid: u32) -> Perm {
        Perm { access, domid }
    }

    /// Parses as the daemons do: a letter, then a domid in C's `strtol`
    /// base 0 (decimal, `0x` hex or leading-`0` octal).
    pub fn parse(s: &str) -> Result<Perm, WireError> {
        let mut chars = s.chars();
        let access = match chars.next() {
            Some('n') => Access::None,
            Some('r') => Access::Read,
            Some('w') => Access::Write,
            Some('b') => Access::Both,
            _ => return Err(malformed(format!("bad permission {s:?}"))),
        };
        let num = chars.as_str();
        let parsed = if let Some(hex) = num.strip_prefix("0x").or(num.strip_prefix("0X")) {
            u32::from_str_radix(hex, 16)
        } else if num.len() > 1 && num.starts_with('0') {
            u32::from_str_radix(&num[1..], 8)
        } else {
            num.parse::<u32>()
        };
        match parsed {
            Ok(domid) if !num.starts_with('+') => Ok(Perm { access, domid }),
            _ => Err(malformed(format!("bad domid in permission {s:?}"))),
        }
    }
}

impl fmt::Display for Perm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.access.letter(), self.domid)
    }
}

/// A whole permission list as `xenstore-ls -p` and `xenstore-chmod` write
/// it: entries joined by commas.
pub fn perms_to_string(perms: &[Perm]) -> String {
    perms
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Checks a path as both daemons do: characters `[A-Za-z0-9-/_@]`, not
/// empty, no `//`, no trailing `/` except the root, and the length limits.
/// `@`-names are the special watch paths.
pub fn check_path(path: &str) -> Result<(), WireError> {
    if path.is_empty() {
        return Err(malformed("empty path"));
    }
    let max = if path.starts_with('/') {
        ABS_PATH_MAX
    } else {
        REL_PATH_MAX
    };
    if path.len() > max {
        return Err(malformed(format!(
            "path of {} bytes, limit {max}",
            path.len()
        )));
    }
    if let Some(c) = path
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '/' | '_' | '@')))
    {
        return Err(malformed(format!("character {c:?} in path")));
    }
    if path.contains("//") || (path.len() > 1 && path.ends_with('/')) {
        return Err(malformed(format!("path {path:?} has an empty component")));
    }
    Ok(())
}

pub(crate) fn strings(parts: &[&str]) -> Vec<u8> {
    let mut v = Vec::new();
    for p in parts {
        v.extend_from_slice(p.as_bytes());
        v.push(0);
    }
    v
}

/// NUL-terminated strings of a payload. Every string must be terminated;
/// bytes after the last NUL are an error.
pub fn split_strings(payload: &[u8]) -> Result<Vec<&str>, WireError> {
    if payload.is_empty() {
        return Ok(Vec::new());
    }
    let Some(body) = payload.strip_suffix(&[0]) else {
        return Err(malformed("payload does not end with NUL"));
    };
    body.split(|b| *b == 0)
        .map(|s| std::str::from_utf8(s).map_err(|_| malformed("string is not UTF-8")))
        .collect()
}

pub(crate) fn exactly<const N: usize>(
    payload: &[u8],
    what: &str,
) -> Result<[String; N], WireError> {
    let parts = split_strings(payload)?;
    let got: Vec<String> = parts.into_iter().map(str::to_string).collect();
    got.try_into()
        .map_err(|v: Vec<String>| malformed(format!("{what} needs {N} strings, got {}", v.len())))
}

/// `OK\0`, the reply of every request that returns nothing.
pub const OK: &[u8] = b"OK\0";

pub fn parse_ok(payload: &[u8]) -> Result<(), WireError> {
    // Some daemons have sent "OK" without the NUL; accept both.
    if payload == OK || payload == b"OK" {
        Ok(())
    } else {
        Err(malformed("expected OK"))
    }
}

/// A DIRECTORY reply: each child NUL-terminated.
pub fn parse_directory(payload: &[u8]) -> Result<Vec<String>, WireError> {
    Ok(split_strings(payload)?
        .into_iter()
        .map(str::to_string)
        .collect())
}

pub fn encode_directory<S: AsRef<str>>(children: &[S]) -> Vec<u8> {
    let mut v = Vec::new();
    for c in children {
        v.extend_from_slice(c.as_ref().as_bytes());
        v.push(0);
    }
    v
}

/// A GET_PERMS reply.
pub fn parse_perms(payload: &[u8]) -> Result<Vec<Perm>, WireError> {
    let perms: Vec<Perm> = split_strings(payload)?
        .into_iter()
        .map(Perm::parse)
        .collect::<Result<_, _>>()?;
    if perms.is_empty() {
        return Err(malformed("empty permission list"));
    }
    Ok(perms)
}

pub fn encode_perms(perms: &[Perm]) -> Vec<u8> {
    encode_directory(&perms.iter().map(|p| p.to_string()).collect::<Vec<_>>())
}

/// A single decimal string reply (TRANSACTION_START's id).
pub fn parse_u32(payload: &[u8]) -> Result<u32, WireError> {
    let [s] = exactly::<1>(payload, "reply")?;
    s.parse()
        .map_err(|_| malformed(format!("expected a number, got {s:?}")))
}

/// GET_DOMAIN_PATH's reply: one string.
pub fn parse_string(payload: &[u8]) -> Result<String, WireError> {
    let [s] = exactly::<1>(payload, "reply")?;
    Ok(s)
}

/// IS_DOMAIN_INTRODUCED's `T` or `F`.
pub fn parse_bool(payload: &[u8]) -> Result<bool, WireError> {
    match payload {
        b"T\0" | b"T" => Ok(true),
        b"F\0" | b"F" => Ok(false),
        _ => Err(malformed("expected T or F")),
    }
}

/// A WATCH_EVENT: the path that changed and the watch's token.
pub fn parse_watch_event(payload: &[u8]) -> Result<(String, String), WireError> {
    // Linux's xenbus passes on events with extra strings; take the first two.
    let parts = split_strings(payload)?;
    match parts.as_slice() {
        [path, token, ..] => Ok((path.to_string(), token.to_string())),
        _ => Err(malformed("watch event needs a path and a token")),
    }
}

pub fn encode_watch_event(path: &str, token: &str) -> Vec<u8> {
    strings(&[path, token])
}

/// A DIRECTORY_PART reply: the generation and a chunk of children; `true`
/// when the chunk reaches the end of the list.
pub fn parse_directory_part(payload: &[u8]) -> Result<(u64, Vec<String>, bool), WireError> {
    let parts = split_strings(payload)?;
    let Some((gen, rest)) = parts.split_first() else {
        return Err(malformed("DIRECTORY_PART reply without a generation"));
    };
    let gen = gen
        .parse()
        .map_err(|_| malformed(format!("bad generation {gen:?}")))?;
    let (children, done) = match rest.split_last() {
        Some((&"", before)) => (before, true),
        _ => (rest, false),
    };
    Ok((gen, children.iter().map(|s| s.to_string()).collect(), done))
}

mod request;
pub use request::Request;

#[cfg(test)]
mod tests;
