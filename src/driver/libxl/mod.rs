//! The libxl driver: domains run through libxenlight (Xen 4.17), the
//! library `xl` and libvirt's own Xen driver use since xend was removed.
//! libxl takes a whole domain configuration as one JSON document
//! (`libxl_domain_config_from_json`), so the driver is a pure conversion
//! (`config`), a pure save-image header (`image`), the definitions it keeps
//! on disk (`store`: libxl keeps none), the one thread that calls the
//! library (`worker`), and the library itself, loaded at run time (`sys`).
//!
//! It knows the domains it defined or started: their definitions, and the
//! id each has while it runs. Lifecycle calls (shutdown, destroy, pause,
//! memory) also work on a domain someone else started, by its id. As libxl
//! leaves a guest's own poweroff, reboot or crash to the toolstack, this
//! driver applies the definition's `on_poweroff`, `on_reboot` and
//! `on_crash` to the domains it started, as xl's background process and
//! libvirt do.
//!
//! Like every driver it never sees the filesystem; `config` and `image` must
//! stay pure so tests can drive them with libvirt's own vectors.

pub mod config;
pub mod devices;
pub mod image;
pub mod store;
pub mod sys;
pub mod worker;

use super::{Driver, DriverKind, Operation};
use crate::error::{Error, ErrorKind, Result};
use crate::events::Bus;
use crate::model::xml::LifecycleAction;
use crate::model::{
    DomainDef, DomainId, DomainInfo, DomainName, DomainRef, Event, EventKind, State, Uuid,
};
use crate::sync::lock;
use std::ffi::CString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use store::Store;
use sys::{Code, Ctx, Libxl};
use worker::{LxEvent, Thread, Worker};

/// How long a quick libxl call (pause, memory, shutdown request) may take.
const QUICK: Duration = Duration::from_secs(30);
/// How long building, saving, restoring or dumping a domain may take
/// (QEMU's TCG in the lab is slow; a real host is faster).
const SLOW: Duration = Duration::from_secs(180);
/// How long a failed call waits for libxl's log to say why.
const REASON_GRACE: Duration = Duration::from_millis(300);

/// A domain this driver knows.
struct Entry {
    name: String,
    uuid: Uuid,
    /// The persistent definition; None for a transient domain.
    config: Option<DomainDef>,
    /// While it runs: its id and the definition it runs with.
    live: Option<(DomainId, DomainDef)>,
    autostart: bool,
}

impl Entry {
    fn reference(&self) -> DomainRef {
        DomainRef {
            name: DomainName(self.name.clone()),
            uuid: self.uuid,
            id: self.live.as_ref().map(|(id, _)| *id),
        }
    }
    /// The definition that describes it now.
    fn current(&self) -> Option<&DomainDef> {
        self.live.as_ref().map(|(_, d)| d).or(self.config.as_ref())
    }
}

struct Shared {
    domains: Mutex<Vec<Entry>>,
    store: Store,
    bus: OnceLock<Bus>,
}

impl Shared {
    fn publish(&self, kind: EventKind, dom: &DomainRef) {
        if let Some(bus) = self.bus.get() {
            bus.publish(Event::now(kind, dom.name.as_str(), dom.id, dom.uuid));
        }
    }

    fn find<T>(&self, dom: &DomainRef, f: impl FnOnce(&mut Entry) -> T) -> Option<T> {
        let mut doms = lock(&self.domains);
        doms.iter_mut().find(|e| e.uuid == dom.uuid).map(f)
    }

    /// Records that the domain with `def`'s name and UUID now runs as
    /// `id` (a transient one is added); its reference.
    fn running(&self, def: &DomainDef, id: DomainId) -> DomainRef {
        let mut live = def.clone();
        live.set_id(Some(id));
        let uuid = def.uuid.unwrap_or(Uuid([0; 16]));
        let mut doms = lock(&self.domains);
        match doms.iter_mut().find(|e| e.uuid == uuid) {
            Some(e) => {
                e.live = Some((id, live));
                e.reference()
            }
            None => {
                let e = Entry {
                    name: def.name.clone(),
                    uuid,
                    config: None,
                    live: Some((id, live)),
                    autostart: false,
                };
                let r = e.reference();
                doms.push(e);
                r
            }
        }
    }

    /// The domain gone (destroyed, saved, dead): a transient one is
    /// forgotten, a persistent one is shut off.
    fn stopped(&self, domid: u32) -> Option<DomainRef> {
        let mut doms = lock(&self.domains);
        let i = doms
            .iter()
            .position(|e| matches!(e.live, Some((id, _)) if id.0 == domid))?;
        let r = doms[i].reference();
        doms[i].live = None;
        if doms[i].config.is_none() {
            doms.remove(i);
        }
        Some(r)
    }
}

pub struct LibxlDriver {
    shared: Arc<Shared>,
    worker: Worker,
}

/// An error from a libxl call, with what libxl logged about it.
fn failed(t: &Thread, what: &str, code: Code, since: u64) -> Error {
    let kind = match code.0 {
        sys::ERROR_DOMAIN_NOTFOUND | sys::ERROR_DOMAIN_DESTROYED => ErrorKind::NoDomain,
        sys::ERROR_TIMEDOUT | sys::ERROR_GUEST_TIMEDOUT => ErrorKind::TimedOut,
        sys::ERROR_INVAL => ErrorKind::InvalidArgument,
        sys::ERROR_NOPARAVIRT => ErrorKind::InvalidState,
        _ => ErrorKind::Backend,
    };
    let reasons = t.ctx.errors_since(since, REASON_GRACE);
    let mut message = format!("libxl: {what} failed: {code}");
    if code.0 == sys::ERROR_NOPARAVIRT {
        message.push_str(" (the guest has no PV drivers to ask; destroy it instead)");
    }
    if !reasons.is_empty() {
        message.push_str(": ");
        message.push_str(&reasons.join(" / "));
    }
    Error::new(kind, message)
}

/// Checks what libxl would only find out halfway through building a
/// domain: the files its definition boots from.
fn check_boot_files(def: &DomainDef) -> Result<()> {
    let os = &def.os;
    for (what, path) in [
        ("kernel", &os.kernel),
        ("initrd", &os.initrd),
        ("loader", &os.loader),
    ] {
        if let Some(p) = path {
            if !Path::new(p).is_file() {
                return Err(Error::invalid(format!(
                    "the {what} '{p}' does not exist or is not a file"
                )));
            }
        }
    }
    Ok(())
}

/// Builds and unpauses a domain from `def` on the libxl thread, and
/// watches its death. A failed build leaves no domain behind.
fn launch(t: &mut Thread, def: &DomainDef) -> Result<DomainId> {
    let json = config::domain_config_json(def, &config::Options::default())?;
    let json = CString::new(json).map_err(|_| Error::invalid("a NUL in the definition"))?;
    let since = t.ctx.errors_logged();
    let built = t.ctx.create(&json);
    running(t, built, &format!("building '{}'", def.name), since).map_err(|mut e| {
        // The definition, not the host, is what could not be built.
        if e.kind == ErrorKind::Backend {
            e.kind = ErrorKind::InvalidArgument;
        }
        e
    })
}

/// What follows a build or a restore: a domain libxl left behind after a
/// failure is destroyed; a new one is unpaused (libxl leaves it paused) and
/// its death watched.
fn running(
    t: &mut Thread,
    built: std::result::Result<u32, (Code, Option<u32>)>,
    what: &str,
    since: u64,
) -> Result<DomainId> {
    let domid = match built {
        Ok(id) => id,
        Err((code, left)) => {
            if let Some(id) = left {
                let _ = t.ctx.destroy(id);
            }
            return Err(failed(t, what, code, since));
        }
    };
    if let Err(code) = t.ctx.unpause(domid) {
        let e = failed(t, &format!("unpausing after {what}"), code, since);
        let _ = t.ctx.destroy(domid);
        return Err(e);
    }
    t.watch(domid);
    Ok(DomainId(domid))
}

impl LibxlDriver {
    /// Loads libxenlight and makes the daemon's one context, in dom0 only
    /// (`/proc/xen/capabilities` says `control_d`), and reads the kept
    /// definitions from `state_dir`. Domains defined there that already run
    /// are found again by UUID; those marked autostart that do not are
    /// started in the background.
    pub fn open(state_dir: &Path, debug: bool) -> std::result::Result<LibxlDriver, String> {
        let caps = std::fs::read_to_string("/proc/xen/capabilities")
            .map_err(|e| format!("/proc/xen/capabilities: {e} (not a Xen dom0)"))?;
        if !caps.contains("control_d") {
            return Err("/proc/xen/capabilities lacks control_d (not dom0)".into());
        }
        let lib = Libxl::load()?;
        let ctx = Ctx::new(lib, debug)?;
        let store = Store::open(state_dir).map_err(|e| e.message)?;
        let running = ctx
            .list_domains()
            .map_err(|c| format!("libxl_list_domain: {c}"))?;
        let mut domains = Vec::new();
        let mut to_watch = Vec::new();
        let mut to_start = Vec::new();
        for (def, autostart) in store.load() {
            let Some(uuid) = def.uuid else { continue };
            let live = running.iter().find(|(_, u)| *u == uuid.0).map(|(id, _)| {
                let mut d = def.clone();
                d.set_id(Some(DomainId(*id)));
                to_watch.push(*id);
                (DomainId(*id), d)
            });
            if live.is_none() && autostart {
                to_start.push(uuid);
            }
            domains.push(Entry {
                name: def.name.clone(),
                uuid,
                config: Some(def),
                live,
                autostart,
            });
        }
        log::info!(
            "libxl: {} definitions in {}, {} running",
            domains.len(),
            state_dir.display(),
            to_watch.len()
        );
        let shared = Arc::new(Shared {
            domains: Mutex::new(domains),
            store,
            bus: OnceLock::new(),
        });
        let handler_shared = shared.clone();
        let worker = Worker::start(ctx, Box::new(move |t, ev| on_event(&handler_shared, t, ev)))
            .map_err(|e| e.message)?;
        worker.spawn(move |t| to_watch.into_iter().for_each(|id| t.watch(id)));
        let driver = LibxlDriver { shared, worker };
        for uuid in to_start {
            let shared = driver.shared.clone();
            driver.worker.spawn(move |t| autostart(&shared, t, uuid));
        }
        Ok(driver)
    }

    fn entry<T>(&self, dom: &DomainRef, f: impl FnOnce(&mut Entry) -> Result<T>) -> Result<T> {
        self.shared
            .find(dom, f)
            .unwrap_or_else(|| Err(Error::no_domain(format!("libxl: no domain '{}'", dom.name))))
    }

    /// The running id of `dom`: the one its reference carries (any domain,
    /// whoever started it), else the one this driver knows.
    fn domid(&self, dom: &DomainRef) -> Result<u32> {
        if let Some(id) = dom.id {
            return Ok(id.0);
        }
        self.shared
            .find(dom, |e| e.live.as_ref().map(|(id, _)| id.0))
            .flatten()
            .ok_or_else(|| Error::state(format!("domain '{}' is not running", dom.name)))
    }

    /// A call on a running domain by id, on the libxl thread.
    fn on_domid(
        &self,
        dom: &DomainRef,
        what: &'static str,
        call: impl FnOnce(&Ctx, u32) -> std::result::Result<(), Code> + Send + 'static,
    ) -> Result<u32> {
        let domid = self.domid(dom)?;
        self.on_running(domid, &dom.name.0, what, call)?;
        Ok(domid)
    }

    fn on_running(
        &self,
        domid: u32,
        name: &str,
        what: &'static str,
        call: impl FnOnce(&Ctx, u32) -> std::result::Result<(), Code> + Send + 'static,
    ) -> Result<()> {
        let name = name.to_string();
        self.worker.call(what, QUICK, move |t| {
            let since = t.ctx.errors_logged();
            call(&t.ctx, domid).map_err(|c| failed(t, &format!("{what} of '{name}'"), c, since))
        })
    }

    /// Starts `def` (already known to the driver under its UUID).
    /// Builds `def` and records it running, on the libxl thread, so the
    /// domain's events (taken there after the job) find it recorded.
    fn run_def(&self, def: DomainDef) -> Result<DomainRef> {
        check_boot_files(&def)?;
        let shared = self.shared.clone();
        self.worker.call("building a domain", SLOW, move |t| {
            let id = launch(t, &def)?;
            let r = shared.running(&def, id);
            shared.publish(EventKind::Started, &r);
            Ok(r)
        })
    }

    /// Checks a new definition's name and UUID against the known domains:
    /// the index of the domain it redefines, if any.
    fn place(doms: &[Entry], def: &DomainDef) -> Result<Option<usize>> {
        for (i, e) in doms.iter().enumerate() {
            let same_name = e.name == def.name;
            let same_uuid = def.uuid == Some(e.uuid);
            match (same_name, same_uuid) {
                (true, true) => return Ok(Some(i)),
                (true, false) if def.uuid.is_some() => {
                    return Err(Error::new(
                        ErrorKind::AlreadyExists,
                        format!("domain '{}' already exists with uuid {}", e.name, e.uuid),
                    ))
                }
                (true, false) => return Ok(Some(i)),
                (false, true) => {
                    return Err(Error::new(
                        ErrorKind::AlreadyExists,
                        format!("domain '{}' already has uuid {}", e.name, e.uuid),
                    ))
                }
                (false, false) => {}
            }
        }
        Ok(None)
    }
}

/// Starts a domain marked autostart, at mount.
fn autostart(shared: &Shared, t: &mut Thread, uuid: Uuid) {
    let def = {
        let doms = lock(&shared.domains);
        let Some(e) = doms.iter().find(|e| e.uuid == uuid && e.live.is_none()) else {
            return;
        };
        match &e.config {
            Some(d) => d.clone(),
            None => return,
        }
    };
    if let Err(e) = check_boot_files(&def) {
        log::error!("libxl: autostart of '{}': {e}", def.name);
        return;
    }
    match launch(t, &def) {
        Ok(id) => {
            let r = shared.running(&def, id);
            log::info!("libxl: autostarted '{}' as domain {id}", def.name);
            shared.publish(EventKind::Started, &r);
        }
        Err(e) => log::error!("libxl: autostart of '{}': {e}", def.name),
    }
}

/// The toolstack's half of a guest's own shutdown, as xl and libvirt do it:
/// the definition's `on_poweroff`, `on_reboot` or `on_crash`.
fn on_event(shared: &Shared, t: &mut Thread, ev: LxEvent) {
    let (domid, reason) = match ev {
        LxEvent::Death { domid } => {
            t.unwatch(domid);
            if let Some(r) = shared.stopped(domid) {
                log::info!("libxl: domain {domid} ('{}') is gone", r.name);
            }
            return;
        }
        LxEvent::Shutdown { domid, reason } => (domid, reason),
    };
    let found = {
        let doms = lock(&shared.domains);
        doms.iter()
            .find(|e| matches!(e.live, Some((id, _)) if id.0 == domid))
            .map(|e| {
                let live = e.live.as_ref().map(|(_, d)| d.clone());
                (e.name.clone(), live, e.config.clone())
            })
    };
    let Some((name, Some(live), config)) = found else {
        return;
    };
    let (why, action) = match reason {
        worker::SHUTDOWN_POWEROFF => ("poweroff", live.on_poweroff),
        worker::SHUTDOWN_REBOOT => ("reboot", live.on_reboot),
        worker::SHUTDOWN_CRASH | worker::SHUTDOWN_WATCHDOG => ("crash", live.on_crash),
        // A suspend is the save this driver asked for, which does the rest.
        worker::SHUTDOWN_SUSPEND => return,
        other => {
            log::warn!("libxl: domain {domid} ('{name}') shut down for reason {other}; preserved");
            return;
        }
    };
    let action = action.unwrap_or(match reason {
        worker::SHUTDOWN_REBOOT => LifecycleAction::Restart,
        _ => LifecycleAction::Destroy,
    });
    log::info!("libxl: '{name}' (domain {domid}) {why}: applying on_{why} = {action}");
    let restart = match action {
        LifecycleAction::Preserve => return,
        LifecycleAction::Destroy | LifecycleAction::CoredumpDestroy => false,
        LifecycleAction::Restart
        | LifecycleAction::RenameRestart
        | LifecycleAction::CoredumpRestart => true,
    };
    if let Err(c) = t.ctx.destroy(domid) {
        log::error!("libxl: destroying '{name}' after its {why}: {c}");
        return;
    }
    t.unwatch(domid);
    let was = shared.stopped(domid);
    if !restart {
        return;
    }
    // A persistent domain restarts with its persistent definition (pending
    // changes apply), a transient one with the one it ran.
    let def = config.unwrap_or(live);
    match launch(t, &def) {
        Ok(id) => {
            let r = shared.running(&def, id);
            log::info!("libxl: '{name}' restarted as domain {id}");
            shared.publish(EventKind::Rebooted, &r);
        }
        Err(e) => {
            log::error!("libxl: restarting '{name}': {e}");
            if let Some(r) = was {
                shared.publish(EventKind::Stopped(crate::model::StopReason::Crashed), &r);
            }
        }
    }
}

/// Opens a save image for writing, refusing to follow a link at its end.
fn create_image(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| Error::invalid(format!("cannot create '{}': {e}", path.display())))
}

impl Driver for LibxlDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Libxl
    }

    fn supports(&self, op: Operation) -> bool {
        use Operation as O;
        match op {
            O::ListDefined
            | O::LookupByName
            | O::LookupById
            | O::LookupByUuid
            | O::DomainInfo
            | O::DomainOsType
            | O::DomainXml
            | O::DomainXmlInactive
            | O::CreateXml
            | O::DefineXml
            | O::Undefine
            | O::Start
            | O::Shutdown
            | O::Reboot
            | O::Destroy
            | O::Suspend
            | O::Resume
            | O::Save
            | O::Restore
            | O::SetMemory
            | O::SetMaxMemory
            | O::SetVcpus
            | O::DomainMaxVcpus
            | O::DomainAutostart
            | O::SetAutostart
            | O::CoreDump
            | O::AttachDevice
            | O::DetachDevice => true,
            // The hypervisor and xenstore serve these; the host's
            // description through libxl is not written.
            O::ListActive
            | O::NodeInfo
            | O::Hypervisor
            | O::NodeFreeMemory
            | O::NodeCellsFreeMemory
            | O::DomainVcpuInfo
            | O::PinVcpu
            | O::DomainSchedulerType
            | O::DomainSchedulerParams
            | O::SetSchedulerParam
            | O::NodeCapabilities
            | O::DomainBlockStats
            | O::DomainInterfaceStats => false,
        }
    }

    fn publish_to(&self, bus: Bus) {
        let _ = self.shared.bus.set(bus);
    }

    fn list_defined(&self) -> Result<Vec<DomainRef>> {
        Ok(lock(&self.shared.domains)
            .iter()
            .filter(|e| e.config.is_some() && e.live.is_none())
            .map(Entry::reference)
            .collect())
    }

    fn lookup_by_name(&self, name: &str) -> Result<DomainRef> {
        lock(&self.shared.domains)
            .iter()
            .find(|e| e.name == name)
            .map(Entry::reference)
            .ok_or_else(|| Error::no_domain(format!("libxl: no domain named '{name}'")))
    }

    fn lookup_by_id(&self, id: DomainId) -> Result<DomainRef> {
        lock(&self.shared.domains)
            .iter()
            .find(|e| matches!(e.live, Some((i, _)) if i == id))
            .map(Entry::reference)
            .ok_or_else(|| Error::no_domain(format!("libxl: no domain with id {id}")))
    }

    fn lookup_by_uuid(&self, uuid: Uuid) -> Result<DomainRef> {
        lock(&self.shared.domains)
            .iter()
            .find(|e| e.uuid == uuid)
            .map(Entry::reference)
            .ok_or_else(|| Error::no_domain(format!("libxl: no domain with uuid {uuid}")))
    }

    /// Answers for shut-off definitions only: the hypervisor knows the
    /// running ones better.
    fn domain_info(&self, dom: &DomainRef) -> Result<DomainInfo> {
        self.entry(dom, |e| match (&e.live, &e.config) {
            (None, Some(def)) => Ok(DomainInfo {
                state: State::ShutOff,
                max_memory_kib: def.memory_kib,
                memory_kib: def.current_memory_kib.unwrap_or(def.memory_kib),
                vcpus: def.current_vcpus.unwrap_or(def.vcpus),
                cpu_time_ns: 0,
            }),
            _ => Err(Error::no_domain(format!(
                "libxl: '{}' runs; the hypervisor has its state",
                e.name
            ))),
        })
    }

    fn domain_os_type(&self, dom: &DomainRef) -> Result<String> {
        self.entry(dom, |e| {
            e.current()
                .map(|d| d.os.os_type.clone())
                .ok_or_else(|| Error::no_domain("libxl: no definition"))
        })
    }

    fn domain_xml(&self, dom: &DomainRef) -> Result<DomainDef> {
        self.entry(dom, |e| {
            e.current()
                .cloned()
                .ok_or_else(|| Error::no_domain("libxl: no definition"))
        })
    }

    fn domain_xml_inactive(&self, dom: &DomainRef) -> Result<DomainDef> {
        self.entry(dom, |e| {
            let mut d = e
                .config
                .clone()
                .or_else(|| e.live.as_ref().map(|(_, d)| d.clone()))
                .ok_or_else(|| Error::no_domain("libxl: no definition"))?;
            d.set_id(None);
            Ok(d)
        })
    }

    fn create_xml(&self, mut def: DomainDef) -> Result<DomainRef> {
        def.set_id(None);
        {
            let doms = lock(&self.shared.domains);
            if let Some(i) = Self::place(&doms, &def)? {
                if doms[i].live.is_some() {
                    return Err(Error::new(
                        ErrorKind::AlreadyExists,
                        format!("domain '{}' is already running", def.name),
                    ));
                }
                def.set_uuid(Some(doms[i].uuid));
            }
        }
        if def.uuid.is_none() {
            def.set_uuid(Some(Uuid::generate()));
        }
        self.run_def(def)
    }

    fn define_xml(&self, mut def: DomainDef) -> Result<DomainRef> {
        def.set_id(None);
        let mut doms = lock(&self.shared.domains);
        let slot = Self::place(&doms, &def)?;
        match slot {
            Some(i) => def.set_uuid(Some(doms[i].uuid)),
            None if def.uuid.is_none() => def.set_uuid(Some(Uuid::generate())),
            None => {}
        }
        // libxl must be able to build it: refused now, not at start.
        config::domain_config(&def, &config::Options::default())?;
        self.shared.store.save(&def)?;
        let r = match slot {
            Some(i) => {
                doms[i].config = Some(def);
                doms[i].reference()
            }
            None => {
                let e = Entry {
                    name: def.name.clone(),
                    uuid: def.uuid.unwrap_or(Uuid([0; 16])),
                    config: Some(def),
                    live: None,
                    autostart: false,
                };
                let r = e.reference();
                doms.push(e);
                r
            }
        };
        drop(doms);
        self.shared.publish(EventKind::Defined, &r);
        Ok(r)
    }

    fn undefine(&self, dom: &DomainRef) -> Result<()> {
        let mut doms = lock(&self.shared.domains);
        let i = doms
            .iter()
            .position(|e| e.uuid == dom.uuid && e.config.is_some())
            .ok_or_else(|| Error::no_domain(format!("libxl: '{}' is not defined", dom.name)))?;
        self.shared.store.remove(&doms[i].name)?;
        let r = doms[i].reference();
        if doms[i].live.is_some() {
            doms[i].config = None;
            doms[i].autostart = false;
        } else {
            doms.remove(i);
        }
        drop(doms);
        self.shared.publish(EventKind::Undefined, &r);
        Ok(())
    }

    fn start(&self, dom: &DomainRef) -> Result<()> {
        let def = self.entry(dom, |e| match (&e.live, &e.config) {
            (None, Some(d)) => Ok(d.clone()),
            (Some(_), _) => Err(Error::state(format!("domain '{}' is running", e.name))),
            (None, None) => Err(Error::no_domain("libxl: no definition")),
        })?;
        self.run_def(def).map(drop)
    }

    fn shutdown(&self, dom: &DomainRef) -> Result<()> {
        self.on_domid(dom, "shutdown", Ctx::shutdown).map(drop)
    }

    fn reboot(&self, dom: &DomainRef) -> Result<()> {
        self.on_domid(dom, "reboot", Ctx::reboot).map(drop)
    }

    fn destroy(&self, dom: &DomainRef) -> Result<()> {
        let domid = self.domid(dom)?;
        let name = dom.name.0.clone();
        let asked = dom.clone();
        let shared = self.shared.clone();
        self.worker.call("destroy", SLOW, move |t| {
            let since = t.ctx.errors_logged();
            t.ctx
                .destroy(domid)
                .map_err(|c| failed(t, &format!("destroy of '{name}'"), c, since))?;
            t.unwatch(domid);
            // One xl started is not among libxl's own: it is as looked up.
            let r = shared.stopped(domid).unwrap_or(DomainRef {
                id: Some(DomainId(domid)),
                ..asked
            });
            shared.publish(EventKind::Stopped(crate::model::StopReason::Destroyed), &r);
            Ok(())
        })
    }

    fn suspend(&self, dom: &DomainRef) -> Result<()> {
        self.on_domid(dom, "pause", Ctx::pause).map(drop)
    }

    fn resume(&self, dom: &DomainRef) -> Result<()> {
        self.on_domid(dom, "unpause", Ctx::unpause).map(drop)
    }

    /// libvirt's header with the running definition, libxl's stream after
    /// it, then the domain destroyed: a persistent one is shut off, a
    /// transient one gone.
    fn save(&self, dom: &DomainRef, path: &Path) -> Result<()> {
        let domid = self.domid(dom)?;
        let def = match self.shared.find(dom, |e| e.current().cloned()).flatten() {
            Some(d) => d,
            None => {
                return Err(Error::new(
                    ErrorKind::NotSupported,
                    format!(
                        "libxl: '{}' was not started through domfs, so no definition \
                         goes with its image",
                        dom.name
                    ),
                ))
            }
        };
        let mut file = create_image(path)?;
        let header = image::encode(&def.to_xml())?;
        let path_shown = path.display().to_string();
        file.write_all(&header)
            .and_then(|()| file.flush())
            .map_err(|e| Error::backend(format!("writing {path_shown}: {e}")))?;
        let name = dom.name.0.clone();
        let shared = self.shared.clone();
        let saved = self.worker.call("save", SLOW, move |t| {
            let since = t.ctx.errors_logged();
            t.ctx
                .suspend(domid, &file)
                .map_err(|c| failed(t, &format!("saving '{name}'"), c, since))?;
            file.sync_all()
                .map_err(|e| Error::backend(format!("syncing {path_shown}: {e}")))?;
            let since = t.ctx.errors_logged();
            t.ctx
                .destroy(domid)
                .map_err(|c| failed(t, &format!("destroying '{name}' after its save"), c, since))?;
            t.unwatch(domid);
            if let Some(r) = shared.stopped(domid) {
                shared.publish(EventKind::Stopped(crate::model::StopReason::Saved), &r);
            }
            Ok(())
        });
        if let Err(e) = &saved {
            if e.kind != ErrorKind::TimedOut {
                let _ = std::fs::remove_file(path);
            }
        }
        saved
    }

    /// Reads the header's definition back, refuses an image without one,
    /// and restores libxl's stream under it, running.
    fn restore(&self, path: &Path) -> Result<DomainRef> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| Error::invalid(format!("cannot open '{}': {e}", path.display())))?;
        let mut head = [0u8; image::HEADER_LEN];
        file.read_exact(&mut head)
            .map_err(|_| Error::invalid("not a libxl save image: shorter than its header"))?;
        let header = image::decode_header(&head)?;
        let mut xml = vec![0u8; header.xml_len as usize];
        file.read_exact(&mut xml)
            .map_err(|_| Error::invalid("not a libxl save image: its definition is cut short"))?;
        let mut def = DomainDef::parse(&image::decode_xml(&xml)?)
            .map_err(|e| Error::invalid(format!("the image's definition: {e}")))?;
        def.set_id(None);
        if def.uuid.is_none() {
            return Err(Error::invalid("the image's definition has no UUID"));
        }
        {
            let doms = lock(&self.shared.domains);
            if let Some(i) = Self::place(&doms, &def)? {
                if doms[i].live.is_some() {
                    return Err(Error::new(
                        ErrorKind::AlreadyExists,
                        format!("domain '{}' is already running", def.name),
                    ));
                }
            }
        }
        let json = config::domain_config_json(&def, &config::Options::default())?;
        let json = CString::new(json).map_err(|_| Error::invalid("a NUL in the definition"))?;
        let name = def.name.clone();
        let stream = header.stream_version();
        let shared = self.shared.clone();
        self.worker.call("restore", SLOW, move |t| {
            let since = t.ctx.errors_logged();
            let restored = t.ctx.restore(&json, &file, stream);
            let id = running(t, restored, &format!("restoring '{name}'"), since)?;
            let r = shared.running(&def, id);
            shared.publish(EventKind::Started, &r);
            Ok(r)
        })
    }

    /// A running domain's balloon target; a shut-off one's definition.
    fn set_memory(&self, dom: &DomainRef, kib: u64) -> Result<()> {
        if let Ok(domid) = self.domid(dom) {
            self.on_running(domid, &dom.name.0, "setmem", move |c, id| {
                c.set_memory_target(id, kib)
            })?;
            self.note_live(dom, |d| {
                d.set_current_memory_kib(Some(kib.min(d.memory_kib)));
            });
            return Ok(());
        }
        self.change_config(dom, |d| {
            if kib > d.memory_kib {
                return Err(Error::invalid(format!(
                    "{kib} KiB is more than the maximum {} KiB",
                    d.memory_kib
                )));
            }
            d.set_current_memory_kib(Some(kib));
            Ok(())
        })
    }

    /// A shut-off domain's definition. A running domain's limit is the
    /// hypervisor's to set: libxl would add its 1 MiB of slack
    /// (`LIBXL_MAXMEM_CONSTANT`) to what was asked.
    fn set_max_memory(&self, dom: &DomainRef, kib: u64) -> Result<()> {
        if self.domid(dom).is_ok() {
            return Err(Error::not_supported(Operation::SetMaxMemory));
        }
        self.change_config(dom, |d| {
            let current = d.current_memory_kib.unwrap_or(d.memory_kib).min(kib);
            d.set_memory_kib(kib);
            d.set_current_memory_kib(Some(current));
            Ok(())
        })
    }

    /// A running domain's online vCPUs (at most its maximum); a shut-off
    /// one's definition.
    fn set_vcpus(&self, dom: &DomainRef, count: u32) -> Result<()> {
        if let Ok(domid) = self.domid(dom) {
            let max = self
                .shared
                .find(dom, |e| e.current().map(|d| d.vcpus))
                .flatten()
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::NotSupported,
                        format!(
                            "libxl: '{}' was not started through domfs; its maximum \
                             vCPU count is not known here",
                            dom.name
                        ),
                    )
                })?;
            if count > max {
                return Err(Error::invalid(format!(
                    "{count} vCPUs is more than the domain's maximum {max}"
                )));
            }
            self.on_running(domid, &dom.name.0, "setvcpus", move |c, id| {
                c.set_vcpus_online(id, count, max)
            })?;
            self.note_live(dom, |d| {
                let _ = d.set_current_vcpus(Some(count));
            });
            return Ok(());
        }
        self.change_config(dom, |d| {
            if count > d.vcpus {
                return Err(Error::invalid(format!(
                    "{count} vCPUs is more than the domain's maximum {}",
                    d.vcpus
                )));
            }
            d.set_current_vcpus(Some(count))
                .map_err(|e| Error::invalid(e.to_string()))
        })
    }

    fn domain_max_vcpus(&self, dom: &DomainRef) -> Result<u32> {
        self.entry(dom, |e| {
            e.current()
                .map(|d| d.vcpus)
                .ok_or_else(|| Error::no_domain("libxl: no definition"))
        })
    }

    fn domain_autostart(&self, dom: &DomainRef) -> Result<bool> {
        self.entry(dom, |e| Ok(e.autostart))
    }

    fn set_autostart(&self, dom: &DomainRef, enable: bool) -> Result<()> {
        self.entry(dom, |e| {
            if e.config.is_none() {
                return Err(Error::invalid(format!(
                    "'{}' is transient: only a defined domain starts with the host",
                    e.name
                )));
            }
            self.shared.store.set_autostart(&e.name, enable)?;
            e.autostart = enable;
            Ok(())
        })
    }

    /// A disk, as libvirt's libxl driver attaches one: to a running domain
    /// through libxl (blkback and its hotplug script), then recorded in the
    /// definition it runs with; to a shut-off one, in its definition.
    fn attach_device(&self, dom: &DomainRef, xml: &str) -> Result<()> {
        let (disk, target) = devices::one_disk(xml)?;
        let edit = |d: &DomainDef| devices::with_disk(d, disk, &target);
        let target = target.clone();
        self.change_disks(dom, "attaching a disk", edit, move |t, domid, new, name| {
            let json = config::disk_device(new, &target)?.to_string();
            let cjson = CString::new(json).map_err(|_| Error::invalid("a NUL in the disk"))?;
            let since = t.ctx.errors_logged();
            t.ctx.disk_add(domid, &cjson).map_err(|c| {
                failed(
                    t,
                    &format!("attaching disk '{target}' to '{name}'"),
                    c,
                    since,
                )
            })
        })
    }

    /// A disk by its target: from a running domain through libxl (which
    /// finds it in xenstore), or from a shut-off one's definition.
    fn detach_device(&self, dom: &DomainRef, xml: &str) -> Result<()> {
        let (_, target) = devices::one_disk(xml)?;
        let edit = |d: &DomainDef| devices::without_disk(d, &target);
        let target = target.clone();
        self.change_disks(dom, "detaching a disk", edit, move |t, domid, _, name| {
            let vdev =
                CString::new(target.as_str()).map_err(|_| Error::invalid("a NUL in the target"))?;
            let since = t.ctx.errors_logged();
            t.ctx.disk_remove(domid, &vdev).map_err(|c| match c {
                None => Error::invalid(format!("libxl finds no disk '{target}' on '{name}'")),
                Some(c) => failed(
                    t,
                    &format!("detaching disk '{target}' from '{name}'"),
                    c,
                    since,
                ),
            })
        })
    }

    fn core_dump(&self, dom: &DomainRef, path: &Path) -> Result<()> {
        let domid = self.domid(dom)?;
        // Made here, mode 0600 and not through a link; libxl then writes it.
        drop(create_image(path)?);
        let cpath = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| Error::invalid("a NUL in the path"))?;
        let name = dom.name.0.clone();
        self.worker.call("core dump", SLOW, move |t| {
            let since = t.ctx.errors_logged();
            t.ctx
                .core_dump(domid, &cpath)
                .map_err(|c| failed(t, &format!("core dump of '{name}'"), c, since))
        })
    }
}

impl LibxlDriver {
    /// The definition a running domain runs with, when domfs started it.
    fn live_def(&self, dom: &DomainRef) -> Result<DomainDef> {
        self.shared
            .find(dom, |e| e.live.as_ref().map(|(_, d)| d.clone()))
            .flatten()
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotSupported,
                    format!(
                        "libxl: '{}' was not started through domfs; its devices are \
                         not known here",
                        dom.name
                    ),
                )
            })
    }

    /// A change of a domain's disks: `edit` gives the new definition (and
    /// refuses a bad change before anything is asked); a running domain is
    /// changed by `call` on the libxl thread, then its running definition
    /// replaced; a shut-off one's persistent definition is replaced.
    fn change_disks(
        &self,
        dom: &DomainRef,
        what: &'static str,
        edit: impl FnOnce(&DomainDef) -> Result<DomainDef>,
        call: impl FnOnce(&mut Thread, u32, &DomainDef, &str) -> Result<()> + Send + 'static,
    ) -> Result<()> {
        let Ok(domid) = self.domid(dom) else {
            return self.change_config(dom, |d| {
                *d = edit(d)?;
                Ok(())
            });
        };
        let new = edit(&self.live_def(dom)?)?;
        let name = dom.name.0.clone();
        let new = self.worker.call(what, SLOW, move |t| {
            call(t, domid, &new, &name).map(|()| new)
        })?;
        self.note_live(dom, |d| *d = new);
        Ok(())
    }

    /// Records a change made to a running domain in the definition it runs
    /// with (what `xml` shows and a save image carries).
    fn note_live(&self, dom: &DomainRef, change: impl FnOnce(&mut DomainDef)) {
        self.shared.find(dom, |e| {
            if let Some((_, d)) = e.live.as_mut() {
                change(d);
            }
        });
    }

    /// Changes a shut-off domain's persistent definition and keeps it.
    fn change_config(
        &self,
        dom: &DomainRef,
        change: impl FnOnce(&mut DomainDef) -> Result<()>,
    ) -> Result<()> {
        self.entry(dom, |e| {
            let mut def = e
                .config
                .clone()
                .ok_or_else(|| Error::state(format!("domain '{}' is not running", e.name)))?;
            change(&mut def)?;
            self.shared.store.save(&def)?;
            e.config = Some(def);
            Ok(())
        })
    }
}

/// Where `-o state_dir=` puts definitions, defaulting to libvirt's layout
/// under domfs's own directory.
pub fn state_dir(opt: Option<&str>) -> PathBuf {
    PathBuf::from(opt.unwrap_or(store::DEFAULT_DIR))
}
