//! The test driver: an in-memory host with libvirt's test-driver semantics,
//! the embedded default that lets anyone mount domfs without a hypervisor.
//!
//! Each connection owns its host; nothing is shared between connections or
//! written anywhere but the images `save` is asked to write. Where libvirt's
//! test driver and this one differ, the difference is documented at the
//! operation.

mod api;
pub mod host;
pub mod image;

use crate::driver::{Driver, DriverKind, Operation};
use crate::error::{Error, ErrorKind, Result};
use crate::events::Bus;
use crate::model::limits;
use crate::model::xml::{parse_tree, Element, LifecycleAction, Node};
use crate::model::{
    BlockStats, CpuSet, DomainDef, DomainId, DomainInfo, DomainName, DomainRef, Hypervisor,
    InterfaceStats, NodeInfo, SchedParam, State, Uuid, VcpuInfo, VcpuState, Version,
};
use crate::model::{Event, EventKind, StopReason};
use crate::safefile::{self, ImageFileError};
use crate::sync::lock;
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Instant;

pub use host::{default_host, load_host_file, HostSpec};

/// The CPUs a vCPU may be pinned to: libvirt's test driver's CPU map
/// (`nodeGetCPUMap`, what `virsh nodecpumap` shows) has 8, whatever the
/// node info counts.
const PINNABLE_CPUS: u32 = 8;

/// Two locks: `host` guards the state and is held only for short,
/// I/O-free sections, so lookups and reads never wait on a file; `changes`
/// serialises the operations that change a domain, and is the only lock held
/// across file I/O (a save writes its image between checking the domain and
/// stopping it, and nothing else may change the domain in between).
pub struct TestDriver {
    host: Mutex<Host>,
    changes: Mutex<()>,
    /// Where every change is published (see `events`).
    events: OnceLock<Bus>,
}

/// Domains are kept in a vector with indexes by UUID, name and id, so every
/// lookup costs the same however many domains the host has.
struct Host {
    node: NodeInfo,
    cells_kib: Vec<u64>,
    domains: Vec<TestDomain>,
    /// Indexes into `domains` are kept as u32 (a host of 10,000 domains
    /// saves 0.3 MiB over usize and String keys); see `slot`.
    by_uuid: HashMap<Uuid, u32>,
    by_name: HashMap<Box<str>, u32>,
    by_id: HashMap<DomainId, u32>,
    /// Ids are handed out on every start and never reused (libvirt's `nextDomID`).
    next_id: u32,
}

struct TestDomain {
    /// A persistent domain stays defined when it stops; a transient one
    /// (from `create` or `restore`) vanishes.
    persistent: bool,
    /// The definition the next start uses (for a transient domain, the one it
    /// was created from).
    config: DomainDef,
    live: Option<Live>,
    /// Starts with the host; kept across starts and stops, like libvirt's.
    autostart: bool,
}

struct Live {
    id: DomainId,
    state: State,
    /// The running definition once it differs from the configuration
    /// (`setmem`/`setvcpus` change it, a redefinition does not). Until then
    /// the configuration with this id is the running definition, which
    /// spares a second tree per running domain: a host of 10,000 running
    /// domains held 12 MiB of such copies.
    own: Option<Box<DomainDef>>,
    /// Memory set live (`setmem`) while `own` is None: kept as a number,
    /// not a copy, so a `setmem` to each of 10,000 running domains costs
    /// no definitions. Copies of the running definition carry it, and it
    /// moves into `own` when one is made.
    memory_kib: Option<u64>,
    /// CPU time accumulated before `running_since`.
    cpu_ns: u64,
    /// When the domain last entered a state that consumes CPU.
    running_since: Option<Instant>,
    /// vCPU pinning, by vCPU number; a vCPU without one may run anywhere.
    /// Live only, as libvirt's `vcpupin` without `--config`. A list, not a
    /// map: a domain has a few dozen vCPUs at most, and an empty map took 48
    /// bytes of every running domain (480 KiB at 10,000), a list 24.
    pins: Vec<(u32, CpuSet)>,
}

impl Live {
    /// Starts running the domain's configuration.
    fn start(id: DomainId) -> Live {
        Live {
            id,
            state: State::Running,
            own: None,
            memory_kib: None,
            cpu_ns: 0,
            running_since: Some(Instant::now()),
            pins: Vec::new(),
        }
    }

    /// CPU time used so far. libvirt's test driver reports the wall clock
    /// instead; domfs accounts time spent running so that the value behaves
    /// like a real domain's (grows while running, frozen while paused).
    fn cpu_time_ns(&self) -> u64 {
        let running = self
            .running_since
            .map(|t| u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        self.cpu_ns.saturating_add(running)
    }

    fn set_state(&mut self, state: State) {
        self.cpu_ns = self.cpu_time_ns();
        let consumes = matches!(state, State::Running | State::Blocked);
        self.running_since = consumes.then(Instant::now);
        self.state = state;
    }
}

impl TestDomain {
    fn state(&self) -> State {
        self.live.as_ref().map_or(State::ShutOff, |l| l.state)
    }

    fn name(&self) -> &str {
        &self.config.basics().name
    }

    fn uuid(&self) -> Uuid {
        // Every definition gets a UUID before it is stored.
        self.config.basics().uuid.unwrap_or(Uuid([0; 16]))
    }

    fn reference(&self) -> DomainRef {
        DomainRef {
            name: DomainName(self.name().to_string()),
            uuid: self.uuid(),
            id: self.live.as_ref().map(|l| l.id),
        }
    }

    /// The values of the definition that describes the domain now; its
    /// tree may lack the running id (see [`TestDomain::current_def`]).
    fn current_fields(&self) -> &DomainDef {
        match &self.live {
            Some(Live { own: Some(def), .. }) => def,
            _ => &self.config,
        }
    }

    /// The definition that describes the domain now, running id included.
    fn current_def(&self) -> Cow<'_, DomainDef> {
        match &self.live {
            None | Some(Live { own: Some(_), .. }) => Cow::Borrowed(self.current_fields()),
            Some(Live { id, own: None, .. }) => Cow::Owned(self.running_copy(*id)),
        }
    }

    fn running_copy(&self, id: DomainId) -> DomainDef {
        let mut def = self.config.clone();
        def.set_id(Some(id));
        if let Some(kib) = self.live.as_ref().and_then(|l| l.memory_kib) {
            def.set_current_memory_kib(Some(kib));
        }
        def
    }

    /// The memory the domain has now, in KiB.
    fn current_memory_kib(&self) -> u64 {
        let b = self.current_fields().basics();
        self.live
            .as_ref()
            .and_then(|l| l.memory_kib)
            .or(b.current_memory_kib)
            .unwrap_or(b.memory_kib)
    }

    /// Gives a running domain that still shares its configuration a copy
    /// of its own, before either of them changes.
    fn separate_live(&mut self) {
        if let Some(Live { id, own: None, .. }) = &self.live {
            let copy = Box::new(self.running_copy(*id));
            if let Some(live) = self.live.as_mut() {
                live.own = Some(copy);
                live.memory_kib = None;
            }
        }
    }

    /// The definition a live change edits: the running one of an active
    /// domain (from here on its own copy), the configuration of a shut-off one.
    fn current_def_mut(&mut self) -> &mut DomainDef {
        self.separate_live();
        match self.live.as_mut() {
            Some(Live { own: Some(def), .. }) => def,
            _ => &mut self.config,
        }
    }

    /// Refuses `op` unless the state table allows it here.
    fn check(&self, op: Operation) -> Result<()> {
        Error::check_state(op, self.state(), self.name())
    }
}

/// An index into `Host::domains` as the indexes keep it: no host comes near
/// 2^32 domains (each costs a few hundred bytes).
fn slot(idx: usize) -> u32 {
    idx as u32
}

/// An index as the indexes keep it, back into `Host::domains`.
fn index(slot: &u32) -> usize {
    *slot as usize
}

impl Host {
    fn find(&self, dom: &DomainRef) -> Result<usize> {
        self.by_uuid
            .get(&dom.uuid)
            .map(index)
            .ok_or_else(|| Error::no_domain(format!("no domain '{}' ({})", dom.name, dom.uuid)))
    }

    /// Adds a domain and indexes it.
    fn push(&mut self, d: TestDomain) -> usize {
        let idx = self.domains.len();
        self.by_uuid.insert(d.uuid(), slot(idx));
        self.by_name.insert(d.name().into(), slot(idx));
        if let Some(l) = &d.live {
            self.by_id.insert(l.id, slot(idx));
        }
        self.domains.push(d);
        idx
    }

    /// Removes the domain at `idx`; the last domain takes its place.
    fn remove(&mut self, idx: usize) {
        let d = self.domains.swap_remove(idx);
        self.by_uuid.remove(&d.uuid());
        self.by_name.remove(d.name());
        if let Some(l) = &d.live {
            self.by_id.remove(&l.id);
        }
        if let Some(moved) = self.domains.get(idx) {
            self.by_uuid.insert(moved.uuid(), slot(idx));
            self.by_name.insert(moved.name().into(), slot(idx));
            if let Some(l) = &moved.live {
                self.by_id.insert(l.id, slot(idx));
            }
        }
    }

    /// Starts (Some) or stops (None) the domain at `idx`.
    fn set_live(&mut self, idx: usize, live: Option<Live>) {
        if let Some(old) = &self.domains[idx].live {
            self.by_id.remove(&old.id);
        }
        if let Some(new) = &live {
            self.by_id.insert(new.id, slot(idx));
        }
        self.domains[idx].live = live;
    }

    fn list(&self, active: bool) -> Vec<DomainRef> {
        self.domains
            .iter()
            .filter(|d| d.live.is_some() == active)
            .map(TestDomain::reference)
            .collect()
    }

    fn take_id(&mut self) -> DomainId {
        let id = DomainId(self.next_id);
        self.next_id += 1;
        id
    }

    /// Stops the domain at `idx`: a persistent one becomes shut off, a
    /// transient one is removed.
    fn stop(&mut self, idx: usize) {
        if self.domains[idx].persistent {
            self.set_live(idx, None);
        } else {
            self.remove(idx);
        }
    }

    /// Where `def` would go: the index of an existing domain it names, or
    /// None for a new one. Name and UUID must agree with any existing domain.
    fn place(&self, def: &DomainDef) -> Result<Option<usize>> {
        let b = def.basics();
        let by_name = self.by_name.get(&*b.name).map(index);
        let by_uuid = b.uuid.and_then(|u| self.by_uuid.get(&u).map(index));
        match (by_name, by_uuid, b.uuid) {
            (Some(n), Some(u), _) if n == u => Ok(Some(n)),
            (Some(n), _, Some(uuid)) => Err(Error::new(
                ErrorKind::AlreadyExists,
                format!(
                    "domain '{}' already exists with uuid {}, not {uuid}",
                    b.name,
                    self.domains[n].uuid()
                ),
            )),
            (Some(n), _, None) => Ok(Some(n)),
            (None, Some(u), _) => Err(Error::new(
                ErrorKind::AlreadyExists,
                format!(
                    "uuid {} already belongs to domain '{}'",
                    self.domains[u].uuid(),
                    self.domains[u].name()
                ),
            )),
            (None, None, _) => Ok(None),
        }
    }

    /// Starts a new domain or the inactive domain `def` names, running `def`.
    fn launch(&mut self, mut def: DomainDef, persistent: bool) -> Result<DomainRef> {
        normalize(&mut def);
        let slot = self.place(&def)?;
        if let Some(i) = slot {
            let existing = &self.domains[i];
            if existing.live.is_some() {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!("domain '{}' is already active", existing.name()),
                ));
            }
            def.set_uuid(Some(existing.uuid()));
        } else if def.basics().uuid.is_none() {
            def.set_uuid(Some(Uuid::generate()));
        }
        def.set_id(None);
        let id = self.take_id();
        let mut live = Live::start(id);
        let idx = match slot {
            // An inactive persistent domain keeps its configuration and runs
            // `def` once.
            Some(i) => {
                def.set_id(Some(id));
                live.own = Some(Box::new(def));
                self.set_live(i, Some(live));
                i
            }
            None => self.push(TestDomain {
                persistent,
                config: def,
                live: Some(live),
                autostart: false,
            }),
        };
        Ok(self.domains[idx].reference())
    }
}

impl TestDriver {
    pub fn new(spec: HostSpec) -> Result<TestDriver> {
        let n = spec.domains.len();
        let mut host = Host {
            node: spec.node,
            cells_kib: spec.cells_kib,
            domains: Vec::with_capacity(n),
            by_uuid: HashMap::with_capacity(n),
            by_name: HashMap::with_capacity(n),
            by_id: HashMap::with_capacity(n),
            next_id: 1,
        };
        // Sized once: growing by doubling would leave up to half of each
        // unused on a large host.
        for def in spec.domains {
            host.launch(def, true)?;
        }
        Ok(TestDriver {
            host: Mutex::new(host),
            changes: Mutex::new(()),
            events: OnceLock::new(),
        })
    }

    /// `test:///default`.
    pub fn default_host() -> Result<TestDriver> {
        TestDriver::new(default_host()?)
    }

    pub fn from_file(path: &Path) -> Result<TestDriver> {
        TestDriver::new(load_host_file(path)?)
    }

    fn host(&self) -> MutexGuard<'_, Host> {
        // A panic while holding the lock leaves the host as consistent as
        // every operation is (each validates before it changes anything).
        lock(&self.host)
    }

    /// Held by every operation that changes the host (see `TestDriver`).
    fn changing(&self) -> MutexGuard<'_, ()> {
        lock(&self.changes)
    }

    /// Runs `f` on the domain `dom` names after checking the state table,
    /// then publishes the event `f` names, if any, for the domain as it was.
    fn with_domain(
        &self,
        dom: &DomainRef,
        op: Operation,
        f: impl FnOnce(&mut Host, usize) -> Result<Option<EventKind>>,
    ) -> Result<()> {
        let _changing = self.changing();
        let mut host = self.host();
        let idx = host.find(dom)?;
        host.domains[idx].check(op)?;
        let before = host.domains[idx].reference();
        let kind = f(&mut host, idx)?;
        drop(host);
        if let Some(kind) = kind {
            self.emit(kind, &before);
        }
        Ok(())
    }

    /// The domain an index finds, or "no domain with WHAT".
    fn lookup(&self, find: impl Fn(&Host) -> Option<usize>, what: String) -> Result<DomainRef> {
        let host = self.host();
        find(&host)
            .map(|i| host.domains[i].reference())
            .ok_or_else(|| Error::no_domain(format!("no domain with {what}")))
    }

    /// Publishes a change (after it is made, with the domain as it was
    /// named and numbered when the change happened).
    fn emit(&self, kind: EventKind, dom: &DomainRef) {
        if let Some(bus) = self.events.get() {
            bus.publish(Event::now(kind, dom.name.as_str(), dom.id, dom.uuid));
        }
    }
}

/// Stores memory the way libvirt writes it back: both amounts present, in
/// KiB with an explicit unit, current memory never above the maximum.
fn normalize(def: &mut DomainDef) {
    let b = def.basics();
    let max = b.memory_kib;
    let current = b.current_memory_kib.unwrap_or(max).min(max);
    def.set_memory_both(max, Some(current));
    name_interfaces(def);
}

/// Gives each `<interface>` without `<target dev=…>` the first free name
/// `testnetN`, as libvirt's test driver does when it takes a definition
/// (its `testDomainGenerateIfnames`): what `domiflist` and `domifstat` use.
fn name_interfaces(def: &mut DomainDef) {
    // Most definitions have no interface: looked for in the text, so that
    // no tree is built (and kept) for them on every load, define and start.
    let text = def.to_xml();
    if !text.contains("<interface") {
        return;
    }
    let Ok(mut root) = parse_tree(&text) else {
        return;
    };
    let unnamed = |e: &Element| {
        e.name == "interface" && e.child("target").and_then(|t| t.attr("dev")).is_none()
    };
    let Some(devices) = root.child_mut("devices") else {
        return;
    };
    if !devices.elements().any(unnamed) {
        return;
    }
    let mut used: Vec<String> = devices
        .elements()
        .filter(|e| e.name == "interface")
        .filter_map(|e| {
            e.child("target")
                .and_then(|t| t.attr("dev"))
                .map(str::to_string)
        })
        .collect();
    for node in devices.children.iter_mut() {
        let Node::Element(e) = node else { continue };
        if !unnamed(e) {
            continue;
        }
        let Some(name) = (0..1024)
            .map(|n| format!("testnet{n}"))
            .find(|n| !used.contains(n))
        else {
            return;
        };
        e.children
            .retain(|c| !matches!(c, Node::Element(t) if t.name == "target"));
        let mut target = Element::new("target");
        target.set_attr("dev", &name);
        e.children.push(Node::Element(target));
        used.push(name);
    }
    if let Ok(named) = DomainDef::from_tree(root) {
        *def = named;
    }
}

fn lifecycle_running(action: Option<LifecycleAction>) -> bool {
    matches!(
        action.unwrap_or(LifecycleAction::Restart),
        LifecycleAction::Restart
            | LifecycleAction::RenameRestart
            | LifecycleAction::CoredumpRestart
    )
}

impl Driver for TestDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Test
    }

    fn supports(&self, op: Operation) -> bool {
        match op {
            Operation::ListActive
            | Operation::ListDefined
            | Operation::LookupByName
            | Operation::LookupById
            | Operation::LookupByUuid
            | Operation::DomainInfo
            | Operation::DomainOsType
            | Operation::DomainXml
            | Operation::DomainXmlInactive
            | Operation::NodeInfo
            | Operation::Hypervisor
            | Operation::CreateXml
            | Operation::DefineXml
            | Operation::Undefine
            | Operation::Start
            | Operation::Shutdown
            | Operation::Reboot
            | Operation::Destroy
            | Operation::Suspend
            | Operation::Resume
            | Operation::Save
            | Operation::Restore
            | Operation::SetMemory
            | Operation::SetMaxMemory
            | Operation::SetVcpus
            | Operation::DomainMaxVcpus
            | Operation::DomainAutostart
            | Operation::SetAutostart
            | Operation::NodeFreeMemory
            | Operation::NodeCellsFreeMemory
            | Operation::DomainVcpuInfo
            | Operation::PinVcpu
            | Operation::DomainSchedulerType
            | Operation::DomainSchedulerParams
            | Operation::SetSchedulerParam
            | Operation::NodeCapabilities
            | Operation::CoreDump
            | Operation::DomainBlockStats
            | Operation::DomainInterfaceStats => true,
            // libvirt 9's test driver attaches and detaches nothing
            // (`virsh attach-device` answers "not supported").
            Operation::AttachDevice | Operation::DetachDevice => false,
        }
    }

    fn publish_to(&self, bus: Bus) {
        let _ = self.events.set(bus);
    }

    fn list_active(&self) -> Result<Vec<DomainRef>> {
        Ok(self.host().list(true))
    }

    fn list_defined(&self) -> Result<Vec<DomainRef>> {
        Ok(self.host().list(false))
    }

    fn lookup_by_name(&self, name: &str) -> Result<DomainRef> {
        self.lookup(|h| h.by_name.get(name).map(index), format!("name '{name}'"))
    }

    fn lookup_by_id(&self, id: DomainId) -> Result<DomainRef> {
        self.lookup(|h| h.by_id.get(&id).map(index), format!("id {id}"))
    }

    fn lookup_by_uuid(&self, uuid: Uuid) -> Result<DomainRef> {
        self.lookup(|h| h.by_uuid.get(&uuid).map(index), format!("uuid {uuid}"))
    }

    fn domain_info(&self, dom: &DomainRef) -> Result<DomainInfo> {
        let host = self.host();
        let d = &host.domains[host.find(dom)?];
        let def = d.current_fields().basics();
        Ok(DomainInfo {
            state: d.state(),
            max_memory_kib: def.memory_kib,
            memory_kib: d.current_memory_kib(),
            vcpus: def.current_vcpus.unwrap_or(def.vcpus),
            cpu_time_ns: d.live.as_ref().map_or(0, Live::cpu_time_ns),
        })
    }

    /// Always `linux`, as libvirt's test driver answers `virDomainGetOSType`
    /// whatever the definition says.
    fn domain_os_type(&self, dom: &DomainRef) -> Result<String> {
        let host = self.host();
        host.find(dom)?;
        Ok("linux".into())
    }

    fn domain_xml(&self, dom: &DomainRef) -> Result<DomainDef> {
        let host = self.host();
        Ok(host.domains[host.find(dom)?].current_def().into_owned())
    }

    /// The configuration the next start runs (a transient domain's is the
    /// one it was created from, as libvirt answers).
    fn domain_xml_inactive(&self, dom: &DomainRef) -> Result<DomainDef> {
        let host = self.host();
        let mut def = host.domains[host.find(dom)?].config.clone();
        def.set_id(None);
        Ok(def)
    }

    fn node_info(&self) -> Result<NodeInfo> {
        Ok(self.host().node.clone())
    }

    /// libvirt 9's test driver answers type "TEST" (older releases said
    /// "Test"), version 2 (0.0.2).
    fn hypervisor(&self) -> Result<Hypervisor> {
        Ok(Hypervisor {
            kind: "TEST".into(),
            version: Version::from_number(2),
        })
    }

    fn create_xml(&self, def: DomainDef) -> Result<DomainRef> {
        let _changing = self.changing();
        let dom = self.host().launch(def, false)?;
        self.emit(EventKind::Started, &dom);
        Ok(dom)
    }

    /// A new name and UUID define a new shut-off domain; the name and UUID of
    /// an existing domain replace its persistent definition (a running domain
    /// keeps running its live definition until it stops).
    fn define_xml(&self, mut def: DomainDef) -> Result<DomainRef> {
        normalize(&mut def);
        let _changing = self.changing();
        let mut host = self.host();
        let slot = host.place(&def)?;
        def.set_id(None);
        let idx = match slot {
            Some(i) => {
                let uuid = host.domains[i].uuid();
                def.set_uuid(Some(uuid));
                let d = &mut host.domains[i];
                // A running domain keeps the definition it was started with.
                d.separate_live();
                d.config = def;
                d.persistent = true;
                i
            }
            None => {
                if def.basics().uuid.is_none() {
                    def.set_uuid(Some(Uuid::generate()));
                }
                host.push(TestDomain {
                    persistent: true,
                    config: def,
                    live: None,
                    autostart: false,
                })
            }
        };
        let dom = host.domains[idx].reference();
        drop(host);
        self.emit(EventKind::Defined, &dom);
        Ok(dom)
    }

    /// Only a shut-off domain can be undefined. libvirt 9's test driver would
    /// also undefine a running one (it turns transient); domfs follows xend,
    /// which refuses, so `rmdir` on a running domain fails with EBUSY.
    fn undefine(&self, dom: &DomainRef) -> Result<()> {
        self.with_domain(dom, Operation::Undefine, |host, idx| {
            host.remove(idx);
            Ok(Some(EventKind::Undefined))
        })
    }

    fn start(&self, dom: &DomainRef) -> Result<()> {
        let _changing = self.changing();
        let started = {
            let mut host = self.host();
            let idx = host.find(dom)?;
            host.domains[idx].check(Operation::Start)?;
            let id = host.take_id();
            host.set_live(idx, Some(Live::start(id)));
            host.domains[idx].reference()
        };
        self.emit(EventKind::Started, &started);
        Ok(())
    }

    /// Immediate, as in libvirt's test driver: the domain is shut off at once.
    fn shutdown(&self, dom: &DomainRef) -> Result<()> {
        self.with_domain(dom, Operation::Shutdown, |host, idx| {
            host.stop(idx);
            Ok(Some(EventKind::Stopped(StopReason::Shutdown)))
        })
    }

    /// Follows `on_reboot`: restart (the default) and rename-restart keep the
    /// domain running with its id; destroy and preserve shut it off.
    fn reboot(&self, dom: &DomainRef) -> Result<()> {
        self.with_domain(dom, Operation::Reboot, |host, idx| {
            let restart = lifecycle_running(host.domains[idx].current_fields().on_reboot);
            match host.domains[idx].live.as_mut() {
                Some(live) if restart => {
                    let was_paused = live.state == State::Paused;
                    live.set_state(State::Running);
                    Ok(was_paused.then_some(EventKind::Resumed))
                }
                _ => {
                    host.stop(idx);
                    Ok(Some(EventKind::Stopped(StopReason::Shutdown)))
                }
            }
        })
    }

    fn destroy(&self, dom: &DomainRef) -> Result<()> {
        self.with_domain(dom, Operation::Destroy, |host, idx| {
            host.stop(idx);
            Ok(Some(EventKind::Stopped(StopReason::Destroyed)))
        })
    }

    fn suspend(&self, dom: &DomainRef) -> Result<()> {
        self.with_domain(dom, Operation::Suspend, |host, idx| {
            if let Some(live) = host.domains[idx].live.as_mut() {
                live.set_state(State::Paused);
            }
            Ok(Some(EventKind::Suspended))
        })
    }

    fn resume(&self, dom: &DomainRef) -> Result<()> {
        self.with_domain(dom, Operation::Resume, |host, idx| {
            if let Some(live) = host.domains[idx].live.as_mut() {
                live.set_state(State::Running);
            }
            Ok(Some(EventKind::Resumed))
        })
    }

    /// Writes libvirt's test-driver image (see `image`), then stops the
    /// domain. The image is written beside `path` and renamed over it, so a
    /// failed save leaves both the domain and any old file as they were. The
    /// file is written with the host unlocked (the path may be slow, or lead
    /// back into a filesystem that asks this driver), while `changes` keeps
    /// the domain as it was checked.
    fn save(&self, dom: &DomainRef, path: &Path) -> Result<()> {
        let _changing = self.changing();
        let bytes = {
            let host = self.host();
            let d = &host.domains[host.find(dom)?];
            d.check(Operation::Save)?;
            image::encode(&d.current_def().to_xml()).map_err(Error::invalid)?
        };
        write_image(path, &bytes)?;
        let stopped = {
            let mut host = self.host();
            let idx = host.find(dom)?;
            let before = host.domains[idx].reference();
            host.stop(idx);
            before
        };
        self.emit(EventKind::Stopped(StopReason::Saved), &stopped);
        Ok(())
    }

    /// Reads an image written by `save` (or by libvirt's test driver) and
    /// starts the domain it holds, running, with a new id. A shut-off
    /// persistent domain of the same name and UUID is started with the saved
    /// definition; otherwise the restored domain is transient.
    fn restore(&self, path: &Path) -> Result<DomainRef> {
        let bytes = read_image(path)?;
        let xml = image::decode(&bytes)
            .map_err(|e| Error::invalid(format!("{}: {e}", path.display())))?;
        let def = DomainDef::parse(xml).map_err(|e| {
            Error::invalid(format!(
                "{}: saved domain XML is invalid: {e}",
                path.display()
            ))
        })?;
        let _changing = self.changing();
        let dom = self.host().launch(def, false)?;
        self.emit(EventKind::Started, &dom);
        Ok(dom)
    }

    fn set_memory(&self, dom: &DomainRef, kib: u64) -> Result<()> {
        self.with_domain(dom, Operation::SetMemory, |host, idx| {
            let d = &mut host.domains[idx];
            match d.live.as_mut() {
                Some(live) if live.own.is_none() => {
                    limits::memory_within(kib, d.config.basics().memory_kib)
                        .map_err(Error::invalid)?;
                    live.memory_kib = Some(kib);
                }
                _ => {
                    let def = d.current_def_mut();
                    limits::memory_within(kib, def.basics().memory_kib).map_err(Error::invalid)?;
                    def.set_current_memory_kib(Some(kib));
                }
            }
            Ok(Some(EventKind::MemoryChanged))
        })
    }

    /// Only on a shut-off domain (libvirt: "cannot resize the maximum memory
    /// on an active domain"); current memory above the new maximum is
    /// lowered to it.
    fn set_max_memory(&self, dom: &DomainRef, kib: u64) -> Result<()> {
        self.with_domain(dom, Operation::SetMaxMemory, |host, idx| {
            let def = &mut host.domains[idx].config;
            if def.basics().current_memory_kib.is_some_and(|cur| cur > kib) {
                def.set_current_memory_kib(Some(kib));
            }
            def.set_memory_kib(kib);
            Ok(Some(EventKind::MemoryChanged))
        })
    }

    /// Live on an active domain, in the configuration of a shut-off one;
    /// never above the domain's maximum (`<vcpu>`).
    fn set_vcpus(&self, dom: &DomainRef, count: u32) -> Result<()> {
        self.with_domain(dom, Operation::SetVcpus, |host, idx| {
            let def = host.domains[idx].current_def_mut();
            let max = def.basics().vcpus;
            limits::vcpus_within(count, max).map_err(Error::invalid)?;
            def.set_current_vcpus((count != max).then_some(count))
                .map_err(|e| Error::invalid(e.to_string()))?;
            Ok(Some(EventKind::VcpusChanged))
        })
    }

    fn domain_scheduler_type(&self, dom: &DomainRef) -> Result<String> {
        let host = self.host();
        host.find(dom)?;
        Ok(api::SCHEDULER.into())
    }

    fn domain_scheduler_params(&self, dom: &DomainRef) -> Result<Vec<SchedParam>> {
        let host = self.host();
        host.find(dom)?;
        Ok(vec![SchedParam {
            name: api::WEIGHT.into(),
            value: api::DEFAULT_WEIGHT,
        }])
    }

    /// As libvirt 9's test driver does: a weight that fits its unsigned
    /// int is accepted and not kept (see `api::DEFAULT_WEIGHT`).
    fn set_scheduler_param(&self, dom: &DomainRef, name: &str, value: u64) -> Result<()> {
        let host = self.host();
        let d = &host.domains[host.find(dom)?];
        d.check(Operation::SetSchedulerParam)?;
        if name != api::WEIGHT {
            return Err(Error::invalid(format!(
                "invalid scheduler option: {name} (the '{}' scheduler has only '{}')",
                api::SCHEDULER,
                api::WEIGHT
            )));
        }
        if u32::try_from(value).is_err() {
            return Err(Error::invalid(format!(
                "invalid value for '{name}': {value} is not an unsigned 32-bit number"
            )));
        }
        log::info!(
            "{}: weight {value} accepted and not kept, as libvirt's test driver does",
            d.name()
        );
        Ok(())
    }

    fn node_capabilities(&self) -> Result<String> {
        let host = self.host();
        Ok(api::capabilities(&host.node, &host.cells_kib))
    }

    fn core_dump(&self, dom: &DomainRef, path: &Path) -> Result<()> {
        {
            let host = self.host();
            host.domains[host.find(dom)?].check(Operation::CoreDump)?;
        }
        write_image(path, api::DUMP_CONTENT)
    }

    fn domain_block_stats(&self, dom: &DomainRef, target: &str) -> Result<BlockStats> {
        let host = self.host();
        let d = &host.domains[host.find(dom)?];
        running_for_stats(d)?;
        if !d.current_def().disk_targets().iter().any(|t| t == target) {
            return Err(Error::invalid(format!("invalid path: {target}")));
        }
        Ok(api::block_stats())
    }

    fn domain_interface_stats(&self, dom: &DomainRef, name: &str) -> Result<InterfaceStats> {
        let host = self.host();
        let d = &host.domains[host.find(dom)?];
        running_for_stats(d)?;
        if !d.current_def().has_interface(name) {
            return Err(Error::invalid(format!("'{name}' is not a known interface")));
        }
        Ok(api::interface_stats())
    }

    fn domain_max_vcpus(&self, dom: &DomainRef) -> Result<u32> {
        let host = self.host();
        Ok(host.domains[host.find(dom)?]
            .current_fields()
            .basics()
            .vcpus)
    }

    fn domain_autostart(&self, dom: &DomainRef) -> Result<bool> {
        let host = self.host();
        Ok(host.domains[host.find(dom)?].autostart)
    }

    /// Any domain, transient ones too: libvirt 9's test driver marks a
    /// transient domain autostarted without complaint (its QEMU driver
    /// refuses), and domfs follows the test driver.
    fn set_autostart(&self, dom: &DomainRef, enable: bool) -> Result<()> {
        self.with_domain(dom, Operation::SetAutostart, |host, idx| {
            host.domains[idx].autostart = enable;
            Ok(None)
        })
    }

    /// As libvirt's test driver answers: what the node's memory gives on
    /// its default host, and 0 on a host without NUMA cells (libvirt sums
    /// its cells' free memory; virsh reports that 0 as an error).
    fn node_free_memory(&self) -> Result<u64> {
        let host = self.host();
        Ok(if host.cells_kib.is_empty() {
            0
        } else {
            host.node.memory_kib
        })
    }

    fn node_cells_free_memory(&self) -> Result<Vec<u64>> {
        Ok(self.host().cells_kib.clone())
    }

    /// As libvirt's test driver answers: every vCPU of an active domain
    /// is running, on the last CPU it may use (the topology's last CPU
    /// while unpinned); its time is the domain's shared evenly (libvirt reports
    /// the wall clock). A shut-off domain's vCPUs are offline.
    fn domain_vcpu_info(&self, dom: &DomainRef) -> Result<Vec<VcpuInfo>> {
        let host = self.host();
        let d = &host.domains[host.find(dom)?];
        let def = d.current_fields().basics();
        let count = def.current_vcpus.unwrap_or(def.vcpus);
        let anywhere = CpuSet::first(PINNABLE_CPUS);
        // libvirt's VIR_NODEINFO_MAXCPUS: the topology's product, which
        // may differ from the active count (libvirt's example host: 50
        // active of 4 x 4 x 4 x 2 = 128).
        let n = &host.node;
        let last_cpu = (n.nodes * n.sockets * n.cores * n.threads).saturating_sub(1);
        Ok((0..count)
            .map(|number| match &d.live {
                Some(live) => {
                    let pin = live.pins.iter().find(|(n, _)| *n == number).map(|(_, c)| c);
                    VcpuInfo {
                        number,
                        state: VcpuState::Running,
                        cpu: Some(pin.and_then(CpuSet::last).unwrap_or(last_cpu)),
                        cpu_time_ns: live.cpu_time_ns() / u64::from(count.max(1)),
                        affinity: pin.cloned().unwrap_or_else(|| anywhere.clone()),
                    }
                }
                None => VcpuInfo {
                    number,
                    state: VcpuState::Offline,
                    cpu: None,
                    cpu_time_ns: 0,
                    affinity: anywhere.clone(),
                },
            })
            .collect())
    }

    /// Live pinning of an active domain's vCPU (libvirt: "cannot pin vcpus
    /// on an inactive domain"), to CPUs of the test driver's CPU map only.
    fn pin_vcpu(&self, dom: &DomainRef, vcpu: u32, cpus: CpuSet) -> Result<()> {
        self.with_domain(dom, Operation::PinVcpu, |host, idx| {
            let d = &mut host.domains[idx];
            let def = d.current_fields().basics();
            let count = def.current_vcpus.unwrap_or(def.vcpus);
            if vcpu >= count {
                return Err(Error::invalid(format!(
                    "vcpu {vcpu} is not present: domain '{}' has {count}",
                    d.name()
                )));
            }
            if let Some(missing) = cpus.iter().find(|c| *c >= PINNABLE_CPUS) {
                return Err(Error::invalid(format!(
                    "CPU {missing} in '{cpus}' is not on this host (it has CPUs 0-{})",
                    PINNABLE_CPUS - 1
                )));
            }
            if let Some(live) = d.live.as_mut() {
                match live.pins.iter_mut().find(|(n, _)| *n == vcpu) {
                    Some((_, pin)) => *pin = cpus,
                    None => live.pins.push((vcpu, cpus)),
                }
            }
            Ok(Some(EventKind::VcpusChanged))
        })
    }
}

/// An image file that cannot be read or written: a path that leads nowhere
/// is bad input (EINVAL), a refusal is a permission problem (EACCES), and
/// anything else (a full or failing disk) is the back end failing (EIO).
/// Statistics exist only while a domain runs.
fn running_for_stats(d: &TestDomain) -> Result<()> {
    if d.live.is_none() {
        return Err(Error::state(format!(
            "domain '{}' is not running",
            d.name()
        )));
    }
    Ok(())
}

fn file_error(what: &str, path: &Path, e: &std::io::Error) -> Error {
    let kind = match e.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR | libc::EISDIR | libc::EINVAL | libc::ENAMETOOLONG)
        | Some(libc::ELOOP) => ErrorKind::InvalidArgument,
        Some(libc::EACCES | libc::EPERM | libc::EROFS) => ErrorKind::PermissionDenied,
        _ => ErrorKind::Backend,
    };
    Error::new(kind, format!("{what} {}: {e}", path.display()))
}

fn image_error(what: &str, path: &Path, e: ImageFileError) -> Error {
    match e {
        ImageFileError::Io(e) => file_error(what, path, &e),
        ImageFileError::NotRegular => Error::invalid(format!(
            "{} is not a regular file; a saved image is only read from or written to one",
            path.display()
        )),
        ImageFileError::TooLarge(max) => Error::invalid(format!(
            "{} is larger than any saved image ({max} bytes at most)",
            path.display()
        )),
        ImageFileError::NoName => Error::invalid(format!("'{}' names no file", path.display())),
        e @ ImageFileError::ForeignLink { .. } => Error::new(
            ErrorKind::PermissionDenied,
            format!("{what} {}: {e}", path.display()),
        ),
    }
}

/// Reads a saved image: a regular file only (a FIFO or device would block or
/// never end), no more than the largest image, never through another user's
/// link (`safefile`).
fn read_image(path: &Path) -> Result<Vec<u8>> {
    safefile::read(path, image::MAX_IMAGE)
        .map_err(|e| image_error("cannot read saved image", path, e))
}

/// Writes a saved image as libvirt would, atomically, never over a device,
/// FIFO or directory, and through a link only when the daemon's user made it
/// (`safefile`).
fn write_image(path: &Path, bytes: &[u8]) -> Result<()> {
    safefile::write(path, bytes).map_err(|e| image_error("cannot write saved image", path, e))
}

#[cfg(test)]
mod tests;
