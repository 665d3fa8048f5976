//! The xenstore driver: domains as Xen 4.17's toolstack describes them in
//! xenstored's tree (`/local/domain/<id>`, `/vm/<uuid>`), read and written
//! over the daemon's socket or the xenbus device.
//!
//! It answers what the tree holds: the active domains, lookups, memory
//! target and static maximum, vCPUs, OS type and boot image, an XML
//! description of those; and it does what the toolstack does through the
//! tree: shutdown and reboot requests (`control/shutdown`) and the balloon
//! target (`memory/target`). It also reads a running guest's disk and
//! interface counters in dom0 (`dom0stats`), finding each device's number
//! in the guest's backend entries (`/local/domain/0/backend/vbd|vif/<id>`),
//! as libvirt's Xen driver did. Everything else stays "not supported" so the
//! dispatcher asks another driver. It must not guess: what the tree cannot
//! say (whether a domain runs or is paused, its CPU time) is reported as
//! unknown (`nostate`, 0), never invented.
//!
//! Cost: a domain's value is one READ (several are pipelined in one round
//! trip). Lookups by UUID or name use a small cache of domid checked with
//! one round trip; the cache is rebuilt only after `@introduceDomain` or
//! `@releaseDomain` fired or a domain's `name` or `vm` changed (a rename),
//! so a miss does not rescan while nothing changed.

pub mod client;
pub mod events;
pub mod wire;

use crate::driver::{dom0stats, Driver, DriverKind, Operation};
use crate::error::{Error, ErrorKind, Result};
use crate::model::limits;
use crate::model::xml::{Element, Node as XmlNode};
use crate::model::{
    BlockStats, DomainDef, DomainId, DomainInfo, DomainName, DomainRef, InterfaceStats, State, Uuid,
};
use crate::sync::lock;
use client::{Client, ClientError, Event};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wire::{ErrName, Request};

const TOKEN_INTRODUCE: &str = "domfs-introduce";
const TOKEN_RELEASE: &str = "domfs-release";
const TOKEN_KEYS: &str = "domfs-keys";

/// Maps a client failure to the one error type. `ENOENT` on a domain's own
/// key means the domain went away.
fn map_err(e: ClientError) -> Error {
    let kind = match &e {
        ClientError::Daemon(x) if x.is(ErrName::Enoent) => ErrorKind::NoDomain,
        ClientError::Daemon(x) if x.is(ErrName::Eacces) || x.is(ErrName::Eperm) => {
            ErrorKind::PermissionDenied
        }
        ClientError::NotConnected(_) => ErrorKind::NotConnected,
        ClientError::TimedOut => ErrorKind::TimedOut,
        _ => ErrorKind::Backend,
    };
    Error::new(kind, e.to_string())
}

#[derive(Default)]
struct Cache {
    /// uuid → domid and name → domid, as last seen.
    by_uuid: HashMap<Uuid, u32>,
    by_name: HashMap<String, u32>,
    /// The event generation at which the maps were last rebuilt.
    scanned: Option<u64>,
}

pub struct XenstoreDriver {
    client: Client,
    cache: Mutex<Cache>,
    /// Bumped by every `@introduceDomain`/`@releaseDomain`, reconnect and
    /// change of a domain's `name` or `vm`.
    generation: Arc<AtomicU64>,
    /// Whether both special watches and the one on `/local/domain` are
    /// registered, so the generation can be trusted to say "nothing
    /// changed".
    watching: bool,
    alive: Arc<AtomicBool>,
    /// Where watch events go once the driver publishes (see `events`).
    forward: Forward,
    /// Shutdown requests this driver wrote, published by it, whose watch
    /// event the events thread must not publish again.
    own_requests: Arc<Mutex<std::collections::HashSet<u32>>>,
    bus: std::sync::OnceLock<crate::events::Bus>,
    /// Where dom0 shows the guests' device counters.
    counters: dom0stats::Roots,
}

type Forward = Arc<Mutex<Option<std::sync::mpsc::SyncSender<events::Signal>>>>;

fn dom_path(id: u32) -> String {
    format!("/local/domain/{id}")
}

fn text(b: impl AsRef<[u8]>) -> String {
    String::from_utf8_lossy(b.as_ref()).trim().to_string()
}

fn number(b: Vec<u8>, what: &str) -> Result<u64> {
    let t = text(b);
    t.parse()
        .map_err(|_| Error::backend(format!("xenstore holds {t:?} as {what}, not a number")))
}

/// The UUID a `vm` value names: `/vm/<uuid>` (older toolstacks appended
/// `-<n>`; the first 36 characters are the UUID then).
fn uuid_of_vm(vm: &str) -> Option<Uuid> {
    let tail = vm.strip_prefix("/vm/")?;
    Uuid::parse(tail)
        .ok()
        .or_else(|| tail.get(..36).and_then(|t| Uuid::parse(t).ok()))
}

/// Every domain under `/local/domain` with its name and UUID, in one
/// directory read and one pipelined round trip; half-made domains (no name
/// or `vm` yet) are left out.
fn list_domains(client: &Client) -> Result<Vec<DomainRef>> {
    let names = client.directory(0, "/local/domain").map_err(map_err)?;
    let ids: Vec<u32> = names.iter().filter_map(|n| n.parse().ok()).collect();
    let mut reqs = Vec::with_capacity(ids.len() * 2);
    for id in &ids {
        reqs.push(Request::Read(format!("{}/name", dom_path(*id))));
        reqs.push(Request::Read(format!("{}/vm", dom_path(*id))));
    }
    let replies = client.pipeline(0, &reqs);
    let mut out = Vec::new();
    for (id, pair) in ids.iter().zip(replies.chunks(2)) {
        let (Some(Ok(name)), Some(vm)) = (pair.first(), pair.get(1)) else {
            continue;
        };
        let uuid = match vm {
            Ok(v) => match uuid_of_vm(&text(v.clone())) {
                Some(u) => u,
                None => continue,
            },
            Err(_) if *id == 0 => Uuid([0; 16]),
            Err(_) => continue,
        };
        let name = text(name.clone());
        if name.is_empty() {
            continue;
        }
        out.push(DomainRef {
            name: DomainName(name),
            uuid,
            id: Some(DomainId(*id)),
        });
    }
    Ok(out)
}

impl XenstoreDriver {
    /// Connects to `endpoint` (socket or xenbus device) and registers the
    /// special watches that keep the lookup cache honest.
    pub fn open(endpoint: &Path, timeout: Duration) -> Result<XenstoreDriver> {
        let client = Client::connect(endpoint, timeout).map_err(map_err)?;
        // One READ proves the daemon answers, not just that a socket
        // exists; any answer will do (a guest may not read dom0's name).
        match client.read(0, "/local/domain/0/name") {
            Ok(_) | Err(ClientError::Daemon(_)) => {}
            Err(e) => return Err(map_err(e)),
        }
        let generation = Arc::new(AtomicU64::new(1));
        let alive = Arc::new(AtomicBool::new(true));
        let forward: Forward = Arc::default();
        let (g, a, f) = (generation.clone(), alive.clone(), forward.clone());
        client.on_event(move |e| {
            let signal = match &e {
                Event::Watch { token, path } if token == TOKEN_KEYS => {
                    // A rename (`xl rename`) fires neither special watch.
                    if events::names_change(path) && a.load(Ordering::Relaxed) {
                        g.fetch_add(1, Ordering::SeqCst);
                    }
                    events::Signal::Key(path.clone())
                }
                Event::Watch { token, .. }
                    if token != TOKEN_INTRODUCE && token != TOKEN_RELEASE =>
                {
                    return
                }
                _ => {
                    if a.load(Ordering::Relaxed) {
                        g.fetch_add(1, Ordering::SeqCst);
                    }
                    events::Signal::Domains
                }
            };
            // Never blocks the reader thread: a full queue drops the signal.
            if let Some(tx) = lock(&f).as_ref() {
                let _ = tx.try_send(signal);
            }
        });
        let watching = client.watch("@introduceDomain", TOKEN_INTRODUCE).is_ok()
            && client.watch("@releaseDomain", TOKEN_RELEASE).is_ok();
        if !watching {
            log::info!("xenstore: no domain watches; every lookup miss rescans");
        }
        // Names and UUIDs change without a domain coming or going; and this
        // watch reports the keys a toolstack writes (see `events`).
        let watching = watching
            && match client.watch("/local/domain", TOKEN_KEYS) {
                Ok(()) => true,
                Err(e) => {
                    log::info!("xenstore: no watch on /local/domain ({e}); every lookup miss rescans, and memory and shutdown requests made elsewhere are not events");
                    false
                }
            };
        // On a socket the watches' initial events precede this reply, so once
        // it is here they have been counted and the first scan's generation
        // is final. (Through the xenbus device the kernel answers WATCH
        // itself and an initial event may come later: one extra rescan.)
        let _ = client.read(0, "/local/domain/0/domid");
        Ok(XenstoreDriver {
            client,
            cache: Mutex::new(Cache::default()),
            generation,
            watching,
            alive,
            forward,
            own_requests: Arc::default(),
            bus: std::sync::OnceLock::new(),
            counters: dom0stats::Roots::default(),
        })
    }

    /// Reads device counters under `roots` instead of dom0's own
    /// `/sys/bus/xen-backend/devices` and `/proc/net/dev`.
    pub fn counters_under(mut self, roots: dom0stats::Roots) -> XenstoreDriver {
        self.counters = roots;
        self
    }

    /// A running domain's backend entries of `class` (`vbd`, `vif`), each
    /// device number with its `key` value, checking in the same round trip
    /// that the domain is still the one `dom` names.
    fn backends(&self, dom: &DomainRef, class: &str, key: &str) -> Result<(u32, Backends)> {
        let id = XenstoreDriver::domid(dom)?;
        let base = format!("/local/domain/0/backend/{class}/{id}");
        let mut r = self
            .client
            .pipeline(
                0,
                &[
                    Request::Read(format!("{}/vm", dom_path(id))),
                    Request::Directory(base.clone()),
                ],
            )
            .into_iter();
        let mut next = || r.next().unwrap_or(Err(ClientError::TimedOut));
        let (vm, list) = (next(), next());
        self.same_domain(dom, id, vm)?;
        let entries = self
            .children_with(&base, list, key, map_err)?
            .into_iter()
            .map(|(n, v)| (n, v.ok().map(text)))
            .collect();
        Ok((id, entries))
    }

    /// The children of `dir` from its DIRECTORY reply (listed again in
    /// parts when it was too big for one), each with its `key` read in one
    /// round trip. A missing directory has none; another failure is
    /// `failed`'s to name.
    fn children_with(
        &self,
        dir: &str,
        listed: XsRead,
        key: &str,
        failed: impl FnOnce(ClientError) -> Error,
    ) -> Result<Vec<(String, XsRead)>> {
        let names = match listed {
            Ok(p) => wire::parse_directory(&p).map_err(|e| Error::backend(e.to_string()))?,
            Err(e) if e.is(ErrName::Enoent) => Vec::new(),
            Err(e) if e.is(ErrName::E2big) => self.client.directory(0, dir).map_err(map_err)?,
            Err(e) => return Err(failed(e)),
        };
        let values = self.reads(
            &names
                .iter()
                .map(|n| format!("{dir}/{n}/{key}"))
                .collect::<Vec<_>>(),
        );
        Ok(names.into_iter().zip(values).collect())
    }

    /// Reads several paths in one round trip.
    fn reads(&self, paths: &[String]) -> Vec<std::result::Result<Vec<u8>, ClientError>> {
        let reqs: Vec<Request> = paths.iter().map(|p| Request::Read(p.clone())).collect();
        self.client.pipeline(0, &reqs)
    }

    /// The domain with id `id` as its keys say now.
    fn read_ref(&self, id: u32) -> Result<DomainRef> {
        let base = dom_path(id);
        let mut r = self.reads(&[format!("{base}/name"), format!("{base}/vm")]);
        let vm = r.pop().unwrap_or(Err(ClientError::TimedOut));
        let name = r.pop().unwrap_or(Err(ClientError::TimedOut));
        let name = text(name.map_err(|e| self.gone(e, id))?);
        let uuid = match vm {
            Ok(v) => uuid_of_vm(&text(v)).ok_or_else(|| {
                Error::backend(format!("domain {id}: 'vm' does not name /vm/<uuid>"))
            })?,
            // Dom0 has no /vm entry; its UUID is all zeros unless set.
            Err(e) if id == 0 && e.is(ErrName::Enoent) => Uuid([0; 16]),
            Err(e) => return Err(self.gone(e, id)),
        };
        if name.is_empty() {
            return Err(Error::no_domain(format!("domain {id} has no name yet")));
        }
        Ok(DomainRef {
            name: DomainName(name),
            uuid,
            id: Some(DomainId(id)),
        })
    }

    fn gone(&self, e: ClientError, id: u32) -> Error {
        let mut err = map_err(e);
        if err.kind == ErrorKind::NoDomain {
            err.message = format!("no domain with id {id}");
        }
        err
    }

    /// Lists every domain and rebuilds the cache.
    fn scan(&self) -> Result<Vec<DomainRef>> {
        let gen = self.generation.load(Ordering::SeqCst);
        let out = list_domains(&self.client)?;
        let mut c = lock(&self.cache);
        c.by_uuid = out
            .iter()
            .map(|d| (d.uuid, d.id.map_or(0, |i| i.0)))
            .collect();
        c.by_name = out
            .iter()
            .map(|d| (d.name.0.clone(), d.id.map_or(0, |i| i.0)))
            .collect();
        c.scanned = Some(gen);
        Ok(out)
    }

    /// Whether the last scan is still complete: no domain came or went since.
    fn scan_is_current(&self) -> bool {
        self.watching && lock(&self.cache).scanned == Some(self.generation.load(Ordering::SeqCst))
    }

    /// Finds a domain through the cache, checking the cached domid with one
    /// round trip, and rescans only when something may have changed.
    fn cached(
        &self,
        hit: impl Fn(&Cache) -> Option<u32>,
        matches: impl Fn(&DomainRef) -> bool,
        what: &str,
    ) -> Result<DomainRef> {
        let id = hit(&lock(&self.cache));
        if let Some(id) = id {
            match self.read_ref(id) {
                Ok(d) if matches(&d) => return Ok(d),
                Ok(_) => {}
                Err(e) if e.kind == ErrorKind::NoDomain => {}
                Err(e) => return Err(e),
            }
        } else if self.scan_is_current() {
            return Err(Error::no_domain(format!("no domain with {what}")));
        }
        self.scan()?
            .into_iter()
            .find(|d| matches(d))
            .ok_or_else(|| Error::no_domain(format!("no domain with {what}")))
    }

    fn domid(dom: &DomainRef) -> Result<u32> {
        dom.id
            .map(|i| i.0)
            .ok_or_else(|| Error::state(format!("domain '{}' is not running", dom.name)))
    }

    /// Writes a domain's key inside a transaction that first checks the
    /// domain is the same one (a domid can be reused).
    fn write_checked(&self, dom: &DomainRef, key: &str, value: &str) -> Result<()> {
        let id = XenstoreDriver::domid(dom)?;
        let vm_path = format!("{}/vm", dom_path(id));
        let path = format!("{}/{key}", dom_path(id));
        let expected = dom.uuid;
        let gone = || Error::no_domain(format!("domain '{}' no longer exists", dom.name));
        let mut checked = Ok(());
        self.client
            .transaction(|tx| {
                let vm = self.client.read(tx, &vm_path);
                checked = match vm {
                    Ok(v) if uuid_of_vm(&text(&v)) == Some(expected) => Ok(()),
                    Err(e) if !e.is(ErrName::Enoent) => return Err(e),
                    _ if id == 0 && expected == Uuid([0; 16]) => Ok(()),
                    _ => Err(gone()),
                };
                if checked.is_ok() {
                    self.client.write(tx, &path, value.as_bytes())?;
                }
                Ok(())
            })
            .map_err(map_err)?;
        checked
    }

    /// Checks a `vm` read against the domain the caller holds.
    fn same_domain(&self, dom: &DomainRef, id: u32, vm: XsRead) -> Result<()> {
        let ok = match vm {
            Ok(v) => uuid_of_vm(&text(&v)) == Some(dom.uuid),
            Err(e) if e.is(ErrName::Enoent) => id == 0 && dom.uuid == Uuid([0; 16]),
            Err(e) => return Err(map_err(e)),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::no_domain(format!(
                "domain '{}' no longer exists",
                dom.name
            )))
        }
    }

    /// What the tree says of a running domain's resources, checking in the
    /// same round trip that it is still the domain `dom` names. Two round
    /// trips whatever the number of domains: the keys, then each vCPU's
    /// availability.
    fn resources(&self, dom: &DomainRef) -> Result<Resources> {
        let id = XenstoreDriver::domid(dom)?;
        let base = dom_path(id);
        let mut r = self
            .client
            .pipeline(
                0,
                &[
                    Request::Read(format!("{base}/vm")),
                    Request::Read(format!("{base}/memory/target")),
                    Request::Read(format!("{base}/memory/static-max")),
                    Request::Directory(format!("{base}/cpu")),
                    Request::Read(format!("{base}/control/shutdown")),
                ],
            )
            .into_iter();
        let mut next = || r.next().unwrap_or(Err(ClientError::TimedOut));
        let (vm, target, max, cpus, shutdown) = (next(), next(), next(), next(), next());
        self.same_domain(dom, id, vm)?;
        let target = match target {
            Ok(t) => number(t, "memory/target")?,
            // The domain exists (its `vm` just read back) but the tree has
            // no target: dom0 on a fresh boot, before libxl first set it.
            // Another driver may know; xenstore does not.
            Err(e) if e.is(ErrName::Enoent) => {
                return Err(Error::new(
                    ErrorKind::NotSupported,
                    format!("xenstore holds no memory/target for '{}'", dom.name),
                ))
            }
            Err(e) => return Err(self.gone(e, id)),
        };
        let max = match max {
            Ok(m) => number(m, "memory/static-max")?,
            Err(e) if e.is(ErrName::Enoent) => target,
            Err(e) => return Err(self.gone(e, id)),
        };
        let cpus = self.children_with(&format!("{base}/cpu"), cpus, "availability", |e| {
            self.gone(e, id)
        })?;
        let present = cpus.len() as u32;
        let online = cpus
            .iter()
            .filter(|(_, a)| matches!(a, Ok(v) if v.as_slice() == b"online"))
            .count() as u32;
        Ok(Resources {
            target,
            max,
            online,
            present,
            shutdown_pending: matches!(shutdown, Ok(v) if events::is_request(&v)),
        })
    }

    /// The OS type and boot image from `/vm/<uuid>/image`, checking in the
    /// same round trip that the domain is still the one `dom` names.
    fn image(&self, dom: &DomainRef, keys: &[&str]) -> Result<Vec<Option<String>>> {
        let id = XenstoreDriver::domid(dom)?;
        let mut reqs = vec![Request::Read(format!("{}/vm", dom_path(id)))];
        if id != 0 {
            reqs.extend(
                keys.iter()
                    .map(|k| Request::Read(format!("/vm/{}/image/{k}", dom.uuid))),
            );
        }
        let mut r = self.client.pipeline(0, &reqs).into_iter();
        self.same_domain(dom, id, r.next().unwrap_or(Err(ClientError::TimedOut)))?;
        if id == 0 {
            // Dom0 has no /vm entry and is always a paravirtualised kernel.
            return Ok(keys
                .iter()
                .map(|k| (*k == "ostype").then(|| "linux".to_string()))
                .collect());
        }
        r.zip(keys)
            .map(|(v, key)| match v {
                Ok(v) => image_value(v, key, dom).map(Some),
                Err(e) if e.is(ErrName::Enoent) => Ok(None),
                Err(e) => Err(map_err(e)),
            })
            .collect()
    }

    /// Requests sent on this driver's connection so far (for cost checks).
    pub fn requests_sent(&self) -> u32 {
        self.client.requests_sent()
    }
}

type XsRead = std::result::Result<Vec<u8>, ClientError>;
/// A domain's backend entries of one class: device number, one key's value.
type Backends = Vec<(String, Option<String>)>;

/// A value of `/vm/<uuid>/image` as text for a one-line file or the XML:
/// UTF-8 without control characters, else an error naming the key (a value
/// with a newline would forge a line of `info`; XML cannot hold most
/// control characters at all).
fn image_value(v: Vec<u8>, key: &str, dom: &DomainRef) -> Result<String> {
    let bad = |why: &str| {
        Error::backend(format!(
            "xenstore holds {why} as image/{key} of '{}'",
            dom.name
        ))
    };
    let t = String::from_utf8(v).map_err(|_| bad("bytes that are not UTF-8"))?;
    if t.chars().any(char::is_control) {
        return Err(bad(&format!("{t:?}, with a control character,")));
    }
    Ok(t)
}

/// The OS type in `image/ostype`: one word (`linux`, `hvm`), as the
/// toolstack writes it; anything else is an error, never shown.
fn os_type(v: Option<String>, dom: &DomainRef) -> Result<String> {
    match v.as_deref().map(str::trim) {
        Some(t)
            if !t.is_empty()
                && t.len() <= 32
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
        {
            Ok(t.to_string())
        }
        Some(t) if !t.is_empty() => Err(Error::backend(format!(
            "xenstore holds {t:?} as image/ostype of '{}', not an OS type",
            dom.name
        ))),
        _ => Err(Error::backend(format!(
            "domain '{}' has no image/ostype in xenstore",
            dom.name
        ))),
    }
}

struct Resources {
    target: u64,
    max: u64,
    online: u32,
    present: u32,
    shutdown_pending: bool,
}

impl Drop for XenstoreDriver {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::Relaxed);
    }
}

impl XenstoreDriver {
    /// Writes a shutdown or reboot request as the toolstack does, and
    /// publishes it (the watch it fires is then not published again).
    fn request(&self, dom: &DomainRef, what: &str) -> Result<()> {
        let id = dom.id.map(|i| i.0);
        if let Some(id) = id {
            lock(&self.own_requests).insert(id);
        }
        let result = self.write_checked(dom, "control/shutdown", what);
        match (&result, self.bus.get()) {
            (Ok(()), Some(bus)) => bus.publish(crate::model::Event::now(
                crate::model::EventKind::ShutdownRequested,
                dom.name.as_str(),
                dom.id,
                dom.uuid,
            )),
            (Err(_), _) => {
                if let Some(id) = id {
                    lock(&self.own_requests).remove(&id);
                }
            }
            _ => {}
        }
        result
    }
}

impl Driver for XenstoreDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Xenstore
    }

    fn supports(&self, op: Operation) -> bool {
        match op {
            Operation::ListActive
            | Operation::LookupByName
            | Operation::LookupById
            | Operation::LookupByUuid
            | Operation::DomainInfo
            | Operation::DomainOsType
            | Operation::DomainXml
            | Operation::Shutdown
            | Operation::Reboot
            | Operation::SetMemory => true,
            Operation::ListDefined
            | Operation::DomainXmlInactive
            | Operation::NodeInfo
            | Operation::Hypervisor
            | Operation::CreateXml
            | Operation::DefineXml
            | Operation::Undefine
            | Operation::Start
            | Operation::Destroy
            | Operation::Suspend
            | Operation::Resume
            | Operation::Save
            | Operation::Restore
            | Operation::SetMaxMemory
            | Operation::SetVcpus => false,
            // The Xen drivers do not answer these yet (issue 26).
            Operation::DomainMaxVcpus
            | Operation::DomainAutostart
            | Operation::SetAutostart
            | Operation::NodeFreeMemory
            | Operation::NodeCellsFreeMemory
            | Operation::DomainVcpuInfo
            | Operation::PinVcpu => false,
            // Issue 26's further operations: no Xen back end here serves
            // them yet.
            Operation::DomainSchedulerType
            | Operation::DomainSchedulerParams
            | Operation::SetSchedulerParam
            | Operation::NodeCapabilities
            | Operation::CoreDump
            | Operation::AttachDevice
            | Operation::DetachDevice => false,
            Operation::DomainBlockStats | Operation::DomainInterfaceStats => true,
        }
    }

    /// Starts the thread that turns watches into events (the keys under
    /// `/local/domain` are watched from `open`; see `events`).
    fn publish_to(&self, bus: crate::events::Bus) {
        let (tx, rx) = std::sync::mpsc::sync_channel(1024);
        *lock(&self.forward) = Some(tx);
        let client = self.client.clone();
        let own = self.own_requests.clone();
        let _ = self.bus.set(bus.clone());
        if let Err(e) = std::thread::Builder::new()
            .name("xs-events".into())
            .spawn(move || events::run(client, bus, rx, own))
        {
            log::warn!("xenstore: no events: {e}");
        }
    }

    fn list_active(&self) -> Result<Vec<DomainRef>> {
        self.scan()
    }

    fn lookup_by_name(&self, name: &str) -> Result<DomainRef> {
        self.cached(
            |c| c.by_name.get(name).copied(),
            |d| d.name.0 == name,
            &format!("name '{name}'"),
        )
    }

    fn lookup_by_id(&self, id: DomainId) -> Result<DomainRef> {
        self.read_ref(id.0)
    }

    fn lookup_by_uuid(&self, uuid: Uuid) -> Result<DomainRef> {
        self.cached(
            |c| c.by_uuid.get(&uuid).copied(),
            |d| d.uuid == uuid,
            &format!("uuid {uuid}"),
        )
    }

    fn domain_info(&self, dom: &DomainRef) -> Result<DomainInfo> {
        let r = self.resources(dom)?;
        // A pending request in control/shutdown is the one state the tree
        // shows; running, paused and blocked look the same here.
        Ok(DomainInfo {
            state: if r.shutdown_pending {
                State::Shutdown
            } else {
                State::NoState
            },
            max_memory_kib: r.max,
            memory_kib: r.target,
            vcpus: r.online,
            cpu_time_ns: 0,
        })
    }

    fn domain_os_type(&self, dom: &DomainRef) -> Result<String> {
        os_type(self.image(dom, &["ostype"])?.pop().flatten(), dom)
    }

    fn domain_xml(&self, dom: &DomainRef) -> Result<DomainDef> {
        let id = XenstoreDriver::domid(dom)?;
        let r = self.resources(dom)?;
        let image = self.image(dom, &["ostype", "kernel", "ramdisk", "cmdline"])?;
        let get = |i: usize| image.get(i).cloned().flatten().filter(|v| !v.is_empty());
        let os_type = os_type(get(0), dom)?;
        let el = |name: &str, text: &str| {
            let mut e = Element::new(name);
            e.set_text(text);
            XmlNode::Element(e)
        };
        let mut root = Element::new("domain");
        root.set_attr("type", "xen");
        root.set_attr("id", &id.to_string());
        root.children.push(el("name", &dom.name.0));
        root.children.push(el("uuid", &dom.uuid.to_string()));
        root.children.push(el("memory", &r.max.to_string()));
        root.children
            .push(el("currentMemory", &r.target.to_string()));
        let mut vcpu = Element::new("vcpu");
        let present = r.present.max(1);
        if r.online > 0 && r.online < present {
            vcpu.set_attr("current", &r.online.to_string());
        }
        vcpu.set_text(&present.to_string());
        root.children.push(XmlNode::Element(vcpu));
        let mut os = Element::new("os");
        os.children.push(el("type", &os_type));
        for (i, elem) in [(1, "kernel"), (2, "initrd"), (3, "cmdline")] {
            if let Some(v) = get(i) {
                os.children.push(el(elem, &v));
            }
        }
        root.children.push(XmlNode::Element(os));
        DomainDef::from_tree(root).map_err(|e| Error::backend(format!("building XML: {e}")))
    }

    fn shutdown(&self, dom: &DomainRef) -> Result<()> {
        self.request(dom, "poweroff")
    }

    fn reboot(&self, dom: &DomainRef) -> Result<()> {
        self.request(dom, "reboot")
    }

    /// blkback's counters of the disk whose backend names it `target`.
    fn domain_block_stats(&self, dom: &DomainRef, target: &str) -> Result<BlockStats> {
        let (id, entries) = self.backends(dom, "vbd", "dev")?;
        let devid = dom0stats::disk_devid(&entries, target).ok_or_else(|| {
            Error::invalid(format!("domain '{}' has no disk '{target}'", dom.name))
        })?;
        dom0stats::read_block_stats(&self.counters.backend_devices, id, devid)
    }

    /// netback's counters of the interface `name` (`vif<id>.<n>` or its MAC).
    fn domain_interface_stats(&self, dom: &DomainRef, name: &str) -> Result<InterfaceStats> {
        let (id, entries) = self.backends(dom, "vif", "mac")?;
        let n = dom0stats::vif_devid(id, &entries, name).ok_or_else(|| {
            Error::invalid(format!("domain '{}' has no interface '{name}'", dom.name))
        })?;
        dom0stats::read_interface_stats(&self.counters.net_dev, id, n)
    }

    fn set_memory(&self, dom: &DomainRef, kib: u64) -> Result<()> {
        let max = self.resources(dom)?.max;
        limits::xen_memory_target(kib, max).map_err(Error::invalid)?;
        self.write_checked(dom, "memory/target", &kib.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_paths_name_uuids() {
        let u = "6695eb01-f6a4-8304-79aa-97f2502e193f";
        assert_eq!(uuid_of_vm(&format!("/vm/{u}")).unwrap().to_string(), u);
        assert_eq!(uuid_of_vm(&format!("/vm/{u}-2")).unwrap().to_string(), u);
        assert_eq!(uuid_of_vm("/vm/xyz"), None);
        assert_eq!(uuid_of_vm(u), None);
    }

    #[test]
    fn client_errors_map_to_kinds() {
        use wire::XsErr;
        let d = |n| ClientError::Daemon(XsErr::Known(n));
        assert_eq!(map_err(d(ErrName::Enoent)).kind, ErrorKind::NoDomain);
        assert_eq!(
            map_err(d(ErrName::Eacces)).kind,
            ErrorKind::PermissionDenied
        );
        assert_eq!(map_err(d(ErrName::Equota)).kind, ErrorKind::Backend);
        assert_eq!(map_err(ClientError::TimedOut).errno(), libc::ETIMEDOUT);
        assert_eq!(
            map_err(ClientError::NotConnected("x".into())).errno(),
            libc::ENOTCONN
        );
    }
}
