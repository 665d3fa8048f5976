//! The xend driver: libvirt's XenDaemon back end. It speaks HTTP/1.x to xend
//! over a unix socket or TCP (`-o xend=unix:/PATH` or `xend=http://HOST:PORT`)
//! and describes domains in S-expressions. It is the only Xen driver that
//! can create, define, save and restore.
//!
//! Pure parts live beside it: `sxp` (S-expressions), `to_xml`/`to_sxp`/`chr`
//! (conversion), `http` (wire format and transport). This module maps
//! driver calls to xend resources and xend's replies to the one error type;
//! it keeps no state of its own, so a restarted xend is simply used again.
//!
//! The starts and stops it makes it reports itself, each with the domain's
//! id (xend's own event channel is not used): xenstore's listings are
//! compared now and then, and a start and a destroy that both fall between
//! two of them would be seen by nobody. They are made one at a time, as
//! xend itself made them (under its `domains_lock`), so that a start and a
//! destroy racing on one domain reach the feed in the order they happened.

pub mod chr;
pub mod http;
pub mod sxp;
pub mod to_sxp;
pub mod to_xml;

use crate::driver::parse_device;
use crate::driver::{Driver, DriverKind, Operation};
use crate::error::{Error, ErrorKind, Result};
use crate::events::Bus;
use crate::model::xml::Element;
use crate::model::{
    DomainDef, DomainId, DomainInfo, DomainName, DomainRef, Event, EventKind, Hypervisor, NodeInfo,
    State, StopReason, Uuid, Version,
};
use crate::sync::lock;
use http::{form_encode, percent_encode, Client, Endpoint, Response};
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use sxp::Sexpr;

/// xend answers 413 to a POST body over this many bytes.
pub const XEND_MAX_POST: usize = 10000;

pub struct XendDriver {
    client: Client,
    bus: OnceLock<Bus>,
    /// Held across a start or stop and its report (see the module doc).
    lifecycle: Mutex<()>,
}

/// The state libvirt 0.10.2 derived from a domain record: no domid or
/// `(status 0)` is shut off; otherwise the `state` letters in the order
/// c, s, d, p, b, r (`s` shut off, `d` dying).
pub fn state_of(rec: &Sexpr) -> State {
    if rec.get_int("domid").is_none() || rec.get_int("status") == Some(0) {
        return State::ShutOff;
    }
    let letters = rec.get("state").unwrap_or("");
    let has = |c: char| letters.contains(c);
    if has('c') {
        State::Crashed
    } else if has('s') {
        State::ShutOff
    } else if has('d') {
        State::Shutdown
    } else if has('p') {
        State::Paused
    } else if has('b') {
        State::Blocked
    } else if has('r') {
        State::Running
    } else {
        State::NoState
    }
}

/// The name, UUID and id a domain record gives.
pub fn domain_ref(rec: &Sexpr) -> Result<DomainRef> {
    let name = rec
        .get_nonempty("name")
        .ok_or_else(|| Error::backend("xend domain record without (name)"))?;
    let uuid = rec
        .get_nonempty("uuid")
        .ok_or_else(|| Error::backend(format!("xend record of '{name}' has no (uuid)")))?;
    let uuid = Uuid::parse(uuid).map_err(Error::backend)?;
    let id = rec
        .get_int("domid")
        .filter(|_| state_of(rec) != State::ShutOff)
        .and_then(|i| u32::try_from(i).ok())
        .map(DomainId);
    Ok(DomainRef {
        name: DomainName(name.to_string()),
        uuid,
        id,
    })
}

/// `virDomainInfo` from a domain record (xend speaks MiB and seconds).
pub fn info_of(rec: &Sexpr) -> DomainInfo {
    let mib = |k: &str| rec.get_int(k).unwrap_or(0).clamp(0, 1 << 40) as u64;
    let memory = mib("memory");
    let max = mib("maxmem").max(memory);
    let vcpus = rec.get_int("vcpus").unwrap_or(1).clamp(1, 4096) as u32;
    let online = match rec.get_int("vcpu_avail") {
        Some(mask) => (mask as u64).count_ones().clamp(1, vcpus),
        None => vcpus,
    };
    let cpu_time = rec
        .get_float("cpu_time")
        .filter(|t| t.is_finite() && *t >= 0.0)
        .map_or(0, |t| (t * 1e9) as u64);
    DomainInfo {
        state: state_of(rec),
        max_memory_kib: max << 10,
        memory_kib: memory << 10,
        vcpus: online,
        cpu_time_ns: cpu_time,
    }
}

/// `virNodeInfo` from `/xend/node/`, with libvirt 0.10.2's socket
/// arithmetic for xend that no longer reports sockets_per_node.
pub fn node_info_of(node: &Sexpr) -> Result<NodeInfo> {
    let int = |k: &str| {
        node.get_int(k)
            .filter(|v| *v > 0)
            .map(|v| v.min(i64::from(u32::MAX)) as u32)
    };
    let cpus = int("nr_cpus").ok_or_else(|| Error::backend("xend node record without nr_cpus"))?;
    let nodes = int("nr_nodes").unwrap_or(1);
    let cores = int("cores_per_socket").unwrap_or(1);
    let threads = int("threads_per_core").unwrap_or(1);
    let per_socket = u64::from(cores).saturating_mul(u64::from(threads));
    let guess = (u64::from(cpus) / u64::from(nodes).saturating_mul(per_socket)).max(1);
    let mut sockets = u64::from(int("sockets_per_node").unwrap_or(guess as u32));
    let mut nodes_out = nodes;
    if u64::from(nodes)
        .saturating_mul(sockets)
        .saturating_mul(per_socket)
        != u64::from(cpus)
    {
        nodes_out = 1;
        sockets = (u64::from(cpus) / per_socket).max(1);
    }
    let total = node.get_int("total_memory").unwrap_or(0).clamp(0, 1 << 40) as u64;
    Ok(NodeInfo {
        model: node.get("machine").unwrap_or("").chars().take(31).collect(),
        cpus,
        mhz: int("cpu_mhz").unwrap_or(0),
        nodes: nodes_out,
        sockets: sockets.min(u64::from(u32::MAX)) as u32,
        cores,
        threads,
        memory_kib: total << 10,
    })
}

/// What xend's reply body says went wrong, without the SXP wrapping.
fn xend_message(body: &str) -> String {
    match sxp::parse_lenient(body.as_bytes()) {
        Ok(s) if s.head() == Some("xend.err") => s
            .items()
            .get(1)
            .and_then(Sexpr::as_atom)
            .unwrap_or("")
            .to_string(),
        _ => body.trim().chars().take(400).collect(),
    }
}

/// Maps an xend refusal to an error kind: state complaints are EBUSY.
fn xend_error(what: &str, message: String) -> Error {
    let m = message.to_ascii_lowercase();
    let kind = if [
        "not running",
        "already running",
        "not halted",
        "not paused",
        "is paused",
        "vmbadstate",
        "bad state",
        "not started",
        "is running",
        "not suspended",
    ]
    .iter()
    .any(|p| m.contains(p))
    {
        ErrorKind::InvalidState
    } else if m.contains("already exists") || m.contains("already defined") {
        ErrorKind::AlreadyExists
    } else if m.contains("permission denied") {
        ErrorKind::PermissionDenied
    } else {
        ErrorKind::Backend
    };
    Error::new(kind, format!("xend: {what}: {message}"))
}

/// Replaces (or adds) `(key value)` at the top of a record.
fn set_value(rec: &mut Sexpr, key: &str, value: &str) {
    if let Sexpr::List(items) = rec {
        let new = Sexpr::pair(key, value);
        match items.iter_mut().skip(1).find(|c| c.head() == Some(key)) {
            Some(slot) => *slot = new,
            None => items.push(new),
        }
    }
}

/// How a device is named in messages: its target or MAC address.
fn describe(dev: &Element) -> String {
    let of = |child: &str, attr: &str| dev.child(child).and_then(|c| c.attr(attr));
    match (dev.name.as_str(), of("target", "dev"), of("mac", "address")) {
        ("disk", Some(t), _) => format!("a disk '{t}'"),
        ("interface", _, Some(m)) => format!("an interface with MAC address {m}"),
        ("interface", _, None) => "an interface without <mac address=...> (name one)".into(),
        (other, _, _) => format!("such a <{other}>"),
    }
}

/// The device of a domain's record that `dev` names, as xend's
/// `device_destroy` takes it: its class (`vbd`, `tap`, `vif`) and
/// reference. A disk is found by its target (the reference is its Xen
/// device number), an interface by its MAC address (the reference is its
/// place among the interfaces, the number xend gave it).
fn find_device(rec: &Sexpr, dev: &Element) -> Result<Option<(String, String)>> {
    let of = |child: &str, attr: &str| dev.child(child).and_then(|c| c.attr(attr));
    match dev.name.as_str() {
        "disk" => {
            let target = of("target", "dev")
                .ok_or_else(|| Error::invalid("a <disk> has no <target dev=...>"))?;
            let target = target.strip_prefix("ioemu:").unwrap_or(target);
            Ok(
                to_xml::devices_of(rec, &["vbd", "tap", "tap2"]).find_map(|d| {
                    let name = d.get("dev")?;
                    let name = name.strip_prefix("ioemu:").unwrap_or(name);
                    let name = name.split(':').next().unwrap_or(name);
                    (name == target).then(|| {
                        let reference = crate::driver::dom0stats::vbd_devid(target)
                            .map_or_else(|| target.to_string(), |n| n.to_string());
                        (d.head().unwrap_or("vbd").to_string(), reference)
                    })
                }),
            )
        }
        "interface" => {
            let Some(mac) = of("mac", "address") else {
                // xend gives an interface without one a new address.
                return Ok(None);
            };
            Ok(to_xml::devices_of(rec, &["vif"])
                .position(|v| v.get("mac").is_some_and(|m| m.eq_ignore_ascii_case(mac)))
                .map(|i| ("vif".to_string(), i.to_string())))
        }
        other => Err(Error::invalid(format!(
            "<{other}> is not a device xend attaches (a <disk> or an <interface>)"
        ))),
    }
}

fn lifecycle_of(op: &str) -> Option<Operation> {
    Some(match op {
        "start" => Operation::Start,
        "shutdown" => Operation::Shutdown,
        "destroy" => Operation::Destroy,
        "pause" => Operation::Suspend,
        "unpause" => Operation::Resume,
        "save" => Operation::Save,
        "dump" => Operation::CoreDump,
        "delete" => Operation::Undefine,
        _ => return None,
    })
}

impl XendDriver {
    /// The driver for an `xend=` option value (`unix:/PATH`, `/PATH` or
    /// `http://HOST:PORT`). Nothing is contacted until the first call.
    pub fn from_url(url: &str) -> Result<XendDriver> {
        Ok(XendDriver::with_client(Client::new(Endpoint::parse(url)?)))
    }

    pub fn with_client(client: Client) -> XendDriver {
        XendDriver {
            client,
            bus: OnceLock::new(),
            lifecycle: Mutex::new(()),
        }
    }

    /// Reports a start or stop this driver made; a domain without an id
    /// (stopped again already) has no run to report.
    fn publish(&self, kind: EventKind, dom: &DomainRef) {
        if let (Some(bus), Some(_)) = (self.bus.get(), dom.id) {
            bus.publish(Event::now(kind, dom.name.as_str(), dom.id, dom.uuid));
        }
    }

    /// `op` on a running domain, reported as `kind` with the id it had.
    fn stop_op(&self, dom: &DomainRef, kind: EventKind, params: &[(&str, &str)]) -> Result<()> {
        let _one = lock(&self.lifecycle);
        let rec = self.record_of(dom)?;
        let was = domain_ref(&rec)?;
        self.domain_op_with(dom, Some(&rec), params)?;
        self.publish(kind, &was);
        Ok(())
    }

    fn check(what: &str, r: Response) -> Result<Response> {
        let body = r.body_text();
        match r.status {
            200..=202 if body.contains("xend.err") => Err(xend_error(what, xend_message(&body))),
            202 if body.contains("failed") => Err(xend_error(what, xend_message(&body))),
            200..=299 => Ok(r),
            404 => Err(Error::no_domain(format!(
                "xend: {what}: not found ({})",
                body.trim().chars().take(200).collect::<String>()
            ))),
            501 => Err(Error::new(
                ErrorKind::NotSupported,
                format!("xend: {what}: {}", body.trim()),
            )),
            _ => Err(xend_error(
                what,
                format!("HTTP {}: {}", r.status, xend_message(&body)),
            )),
        }
    }

    fn get(&self, path: &str) -> Result<Sexpr> {
        let r = Self::check(path, self.client.request("GET", path, None)?)?;
        sxp::parse(&r.body).map_err(|e| Error::backend(format!("xend: GET {path}: {e}")))
    }

    fn post(&self, path: &str, params: &[(&str, &str)]) -> Result<Response> {
        let body = form_encode(params);
        if body.len() > XEND_MAX_POST {
            return Err(Error::invalid(format!(
                "the request is {} bytes once encoded; xend takes at most {XEND_MAX_POST}",
                body.len()
            )));
        }
        let op = params
            .iter()
            .find(|(k, _)| *k == "op")
            .map_or("", |(_, v)| *v);
        let what = format!("{op} on {path}");
        Self::check(&what, self.client.request("POST", path, Some(&body))?)
    }

    fn domain_path(name: &str) -> String {
        format!("/xend/domain/{}", percent_encode(name))
    }

    /// The full record of the domain xend finds under `key` (name, id or uuid).
    fn record(&self, key: &str) -> Result<Sexpr> {
        let rec = self.get(&format!("{}?detail=1", Self::domain_path(key)))?;
        if rec.head() != Some("domain") {
            return Err(Error::backend(format!(
                "xend: expected (domain ...) for '{key}', got {}",
                rec.to_text().chars().take(80).collect::<String>()
            )));
        }
        Ok(rec)
    }

    /// The record of a domain a lookup returned, checked to still be it.
    fn record_of(&self, dom: &DomainRef) -> Result<Sexpr> {
        let rec = self.record(dom.name.as_str())?;
        if domain_ref(&rec)?.uuid != dom.uuid {
            return Err(Error::no_domain(format!(
                "domain '{}' was replaced by another with the same name",
                dom.name
            )));
        }
        Ok(rec)
    }

    /// Every domain xend manages, running or not.
    fn all_records(&self) -> Result<Vec<Sexpr>> {
        let list = self.get("/xend/domain?detail=1&state=all")?;
        Ok(list
            .items()
            .iter()
            .filter(|d| d.head() == Some("domain"))
            .cloned()
            .collect())
    }

    /// Posts a domain op, refusing first (EBUSY) when the state table says
    /// the op is not valid now.
    fn domain_op(&self, dom: &DomainRef, params: &[(&str, &str)]) -> Result<Response> {
        self.domain_op_with(dom, None, params)
    }

    /// `domain_op`, with the domain's record when the caller has it
    /// already (the state check then needs no second request).
    fn domain_op_with(
        &self,
        dom: &DomainRef,
        rec: Option<&Sexpr>,
        params: &[(&str, &str)],
    ) -> Result<Response> {
        let op = params
            .iter()
            .find(|(k, _)| *k == "op")
            .map_or("", |(_, v)| *v);
        if let Some(l) = lifecycle_of(op) {
            let state = match rec {
                Some(rec) => state_of(rec),
                None => state_of(&self.record_of(dom)?),
            };
            Error::check_state(l, state, dom.name.as_str())?;
        }
        self.post(&Self::domain_path(dom.name.as_str()), params)
    }

    fn lookup_checked(&self, key: &str, ok: impl Fn(&DomainRef) -> bool) -> Result<DomainRef> {
        match self.record(key) {
            Ok(rec) => {
                let r = domain_ref(&rec)?;
                if ok(&r) {
                    return Ok(r);
                }
            }
            Err(e) if e.kind != ErrorKind::NoDomain => return Err(e),
            Err(_) => {}
        }
        // xend resolves a key as a name first; search the list instead.
        for rec in self.all_records()? {
            let r = domain_ref(&rec)?;
            if ok(&r) {
                return Ok(r);
            }
        }
        Err(Error::no_domain(format!("no domain '{key}'")))
    }
}

impl Driver for XendDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Xend
    }

    fn publish_to(&self, bus: Bus) {
        let _ = self.bus.set(bus);
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
            | Operation::CoreDump
            | Operation::DomainAutostart
            | Operation::SetAutostart
            | Operation::AttachDevice
            | Operation::DetachDevice => true,
            // The Xen drivers do not answer these yet (issue 26).
            Operation::DomainMaxVcpus
            | Operation::NodeFreeMemory
            | Operation::NodeCellsFreeMemory
            | Operation::DomainVcpuInfo
            | Operation::PinVcpu => false,
            Operation::DomainXmlInactive => false,
            // Issue 26's further operations: no Xen back end here serves
            // them yet.
            Operation::DomainSchedulerType
            | Operation::DomainSchedulerParams
            | Operation::SetSchedulerParam
            | Operation::NodeCapabilities
            | Operation::DomainBlockStats
            | Operation::DomainInterfaceStats => false,
        }
    }

    fn list_active(&self) -> Result<Vec<DomainRef>> {
        let mut out = Vec::new();
        for rec in self.all_records()? {
            let r = domain_ref(&rec)?;
            if r.id.is_some() {
                out.push(r);
            }
        }
        Ok(out)
    }

    fn list_defined(&self) -> Result<Vec<DomainRef>> {
        let mut out = Vec::new();
        for rec in self.all_records()? {
            let r = domain_ref(&rec)?;
            if r.id.is_none() {
                out.push(r);
            }
        }
        Ok(out)
    }

    fn lookup_by_name(&self, name: &str) -> Result<DomainRef> {
        self.lookup_checked(name, |r| r.name.as_str() == name)
    }

    fn lookup_by_id(&self, id: DomainId) -> Result<DomainRef> {
        self.lookup_checked(&id.to_string(), |r| r.id == Some(id))
    }

    fn lookup_by_uuid(&self, uuid: Uuid) -> Result<DomainRef> {
        self.lookup_checked(&uuid.to_string(), |r| r.uuid == uuid)
    }

    fn domain_info(&self, dom: &DomainRef) -> Result<DomainInfo> {
        Ok(info_of(&self.record_of(dom)?))
    }

    fn domain_os_type(&self, dom: &DomainRef) -> Result<String> {
        let rec = self.record_of(dom)?;
        Ok(if rec.lookup("image/hvm").is_some() {
            "hvm"
        } else {
            "linux"
        }
        .to_string())
    }

    fn domain_xml(&self, dom: &DomainRef) -> Result<DomainDef> {
        let rec = self.record_of(dom)?;
        to_xml::domain_from_sexpr(&rec, &to_xml::Extra::default())
    }

    fn node_info(&self) -> Result<NodeInfo> {
        node_info_of(&self.get("/xend/node/")?)
    }

    fn hypervisor(&self) -> Result<Hypervisor> {
        let node = self.get("/xend/node/")?;
        let major = node
            .get_int("xen_major")
            .ok_or_else(|| Error::backend("xend node record without xen_major"))?;
        let minor = node.get_int("xen_minor").unwrap_or(0);
        let release = Version::xen_release(node.get("xen_extra").unwrap_or(""));
        Ok(Hypervisor {
            kind: "Xen".into(),
            version: Version {
                major: major.clamp(0, 4000) as u32,
                minor: minor.clamp(0, 999) as u32,
                release,
            },
        })
    }

    fn create_xml(&self, def: DomainDef) -> Result<DomainRef> {
        let config = to_sxp::domain_to_sexpr(&def)?.to_text();
        let _one = lock(&self.lifecycle);
        self.post("/xend/domain/", &[("op", "create"), ("config", &config)])?;
        let dom = self.lookup_by_name(&def.name)?;
        let path = Self::domain_path(dom.name.as_str());
        // As libvirt: xend creates the domain paused until its devices are up.
        let started = self
            .post(&path, &[("op", "wait_for_devices")])
            .and_then(|_| match state_of(&self.record_of(&dom)?) {
                State::Paused => self.post(&path, &[("op", "unpause")]).map(|_| ()),
                _ => Ok(()),
            });
        if let Err(e) = started {
            let _ = self.post(&path, &[("op", "destroy")]);
            return Err(e);
        }
        let r = self.lookup_by_name(&def.name)?;
        self.publish(EventKind::Started, &r);
        Ok(r)
    }

    fn define_xml(&self, def: DomainDef) -> Result<DomainRef> {
        let config = to_sxp::domain_to_sexpr(&def)?.to_text();
        self.post("/xend/domain/", &[("op", "new"), ("config", &config)])?;
        self.lookup_by_name(&def.name)
    }

    fn undefine(&self, dom: &DomainRef) -> Result<()> {
        self.domain_op(dom, &[("op", "delete")]).map(|_| ())
    }

    fn start(&self, dom: &DomainRef) -> Result<()> {
        let _one = lock(&self.lifecycle);
        self.domain_op(dom, &[("op", "start")])?;
        // Its id, which xend's reply does not give.
        match self.record_of(dom).and_then(|rec| domain_ref(&rec)) {
            Ok(r) => self.publish(EventKind::Started, &r),
            Err(e) => log::info!("xend: '{}' started, but not found after: {e}", dom.name),
        }
        Ok(())
    }

    fn shutdown(&self, dom: &DomainRef) -> Result<()> {
        self.domain_op(dom, &[("op", "shutdown"), ("reason", "poweroff")])
            .map(|_| ())
    }

    fn reboot(&self, dom: &DomainRef) -> Result<()> {
        self.domain_op(dom, &[("op", "shutdown"), ("reason", "reboot")])
            .map(|_| ())
    }

    fn destroy(&self, dom: &DomainRef) -> Result<()> {
        let destroyed = EventKind::Stopped(StopReason::Destroyed);
        self.stop_op(dom, destroyed, &[("op", "destroy")])
    }

    fn suspend(&self, dom: &DomainRef) -> Result<()> {
        self.domain_op(dom, &[("op", "pause")]).map(|_| ())
    }

    fn resume(&self, dom: &DomainRef) -> Result<()> {
        self.domain_op(dom, &[("op", "unpause")]).map(|_| ())
    }

    fn save(&self, dom: &DomainRef, path: &Path) -> Result<()> {
        let file = path
            .to_str()
            .ok_or_else(|| Error::invalid("the save path is not UTF-8"))?;
        let saved = EventKind::Stopped(StopReason::Saved);
        self.stop_op(dom, saved, &[("op", "save"), ("file", file)])
    }

    /// xend 3.x's `op=dump`, neither live nor crashing: the guest is
    /// paused while its memory is written and then goes on.
    fn core_dump(&self, dom: &DomainRef, path: &Path) -> Result<()> {
        let file = path
            .to_str()
            .ok_or_else(|| Error::invalid("the dump path is not UTF-8"))?;
        self.domain_op(
            dom,
            &[
                ("op", "dump"),
                ("file", file),
                ("live", "0"),
                ("crash", "0"),
            ],
        )
        .map(|_| ())
    }

    /// xend 3.x's `on_xend_start` entry: `start` means the domain starts
    /// with xend.
    fn domain_autostart(&self, dom: &DomainRef) -> Result<bool> {
        Ok(self.record_of(dom)?.get("on_xend_start") == Some("start"))
    }

    /// As libvirt's xend driver did: the domain's record with
    /// `on_xend_start` changed, sent back as a definition (`op=new`), which
    /// also makes a transient domain one xend manages.
    fn set_autostart(&self, dom: &DomainRef, enable: bool) -> Result<()> {
        let mut rec = self.record_of(dom)?;
        match rec.get("on_xend_start") {
            Some("start" | "ignore") => {}
            Some(other) => {
                return Err(Error::backend(format!(
                    "xend: on_xend_start of '{}' is '{other}', not start or ignore",
                    dom.name
                )))
            }
            None => {
                return Err(Error::new(
                    ErrorKind::NotSupported,
                    format!(
                        "xend keeps no on_xend_start for '{}' (autostart needs xend 3.1 or later)",
                        dom.name
                    ),
                ))
            }
        }
        set_value(
            &mut rec,
            "on_xend_start",
            if enable { "start" } else { "ignore" },
        );
        self.post(
            "/xend/domain/",
            &[("op", "new"), ("config", &rec.to_text())],
        )
        .map(|_| ())
    }

    /// xend 3.x's `op=device_create` with the device's SXP. A disk whose
    /// target the domain has, or an interface with a MAC address it has,
    /// is refused first, as libvirt refused it.
    fn attach_device(&self, dom: &DomainRef, xml: &str) -> Result<()> {
        let dev = parse_device(xml)?;
        let rec = self.record_of(dom)?;
        let config = to_sxp::device_to_sexpr(&dev, rec.lookup("image/hvm").is_some())?;
        if find_device(&rec, &dev)?.is_some() {
            return Err(Error::invalid(format!(
                "domain '{}' already has {}",
                dom.name,
                describe(&dev)
            )));
        }
        self.domain_op(
            dom,
            &[("op", "device_create"), ("config", &config.to_text())],
        )
        .map(|_| ())
    }

    /// xend 3.x's `op=device_destroy`, removing the configuration too
    /// (`rm_cfg`): a disk by its device number, an interface by its number
    /// among the domain's interfaces (found by MAC address).
    fn detach_device(&self, dom: &DomainRef, xml: &str) -> Result<()> {
        let dev = parse_device(xml)?;
        let rec = self.record_of(dom)?;
        let (class, reference) = find_device(&rec, &dev)?.ok_or_else(|| {
            Error::invalid(format!("domain '{}' has no {}", dom.name, describe(&dev)))
        })?;
        self.domain_op(
            dom,
            &[
                ("op", "device_destroy"),
                ("type", &class),
                ("dev", &reference),
                ("force", "0"),
                ("rm_cfg", "1"),
            ],
        )
        .map(|_| ())
    }

    fn restore(&self, path: &Path) -> Result<DomainRef> {
        let file = path
            .to_str()
            .ok_or_else(|| Error::invalid("the restore path is not UTF-8"))?;
        let _one = lock(&self.lifecycle);
        let r = self.post("/xend/domain/", &[("op", "restore"), ("file", file)])?;
        let rec =
            sxp::parse(&r.body).map_err(|e| Error::backend(format!("xend: restore reply: {e}")))?;
        let r = domain_ref(&rec)?;
        self.publish(EventKind::Started, &r);
        Ok(r)
    }

    fn set_memory(&self, dom: &DomainRef, kib: u64) -> Result<()> {
        let mib = kib.div_ceil(1024).to_string();
        self.domain_op(dom, &[("op", "mem_target_set"), ("target", &mib)])
            .map(|_| ())
    }

    fn set_max_memory(&self, dom: &DomainRef, kib: u64) -> Result<()> {
        let mib = kib.div_ceil(1024).to_string();
        self.domain_op(dom, &[("op", "maxmem_set"), ("memory", &mib)])
            .map(|_| ())
    }

    fn set_vcpus(&self, dom: &DomainRef, count: u32) -> Result<()> {
        if count == 0 {
            return Err(Error::invalid("the vcpu count must be at least 1"));
        }
        let n = count.to_string();
        self.domain_op(dom, &[("op", "set_vcpus"), ("vcpus", &n)])
            .map(|_| ())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rec(text: &str) -> Sexpr {
        sxp::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn states_follow_libvirt_0_10_2() {
        let s = |extra: &str| {
            state_of(&rec(&format!(
                "(domain (name a) (uuid 3f0c2a51-7d1e-4b6a-9c2e-51aa08d3e001) {extra})"
            )))
        };
        assert_eq!(s(""), State::ShutOff);
        assert_eq!(s("(domid 3) (status 0) (state r-----)"), State::ShutOff);
        assert_eq!(s("(domid 3) (state r-----)"), State::Running);
        assert_eq!(s("(domid 3) (state -b----)"), State::Blocked);
        assert_eq!(s("(domid 3) (state -bp---)"), State::Paused);
        assert_eq!(s("(domid 3) (state ---s--)"), State::ShutOff);
        assert_eq!(s("(domid 3) (state -----d)"), State::Shutdown);
        assert_eq!(s("(domid 3) (state ----cd)"), State::Crashed);
        assert_eq!(s("(domid 0) (state ------)"), State::NoState);
    }

    #[test]
    fn info_and_refs() {
        let r = rec(
            "(domain (domid 7) (uuid 3f0c2a51-7d1e-4b6a-9c2e-51aa08d3e001) (vcpus 4) (vcpu_avail 3) \
             (name pv1) (maxmem 256) (memory 128) (state -b----) (cpu_time 3.14))",
        );
        let i = info_of(&r);
        assert_eq!(
            (
                i.state,
                i.max_memory_kib,
                i.memory_kib,
                i.vcpus,
                i.cpu_time_ns
            ),
            (State::Blocked, 262144, 131072, 2, 3_140_000_000)
        );
        let d = domain_ref(&r).unwrap();
        assert_eq!((d.name.as_str(), d.id), ("pv1", Some(DomainId(7))));
        assert!(domain_ref(&rec("(domain (name a))")).is_err());
    }

    #[test]
    fn node_info_arithmetic() {
        let n = node_info_of(&rec(
            "(node (machine x86_64) (nr_cpus 8) (nr_nodes 1) (cores_per_socket 4) \
             (threads_per_core 2) (cpu_mhz 2400) (total_memory 16384))",
        ))
        .unwrap();
        assert_eq!(
            (n.cpus, n.sockets, n.cores, n.threads, n.memory_kib),
            (8, 1, 4, 2, 16 << 20)
        );
        assert!(node_info_of(&rec("(node)")).is_err());
        let hostile = node_info_of(&rec(
            "(node (nr_cpus 99999999999) (nr_nodes 4294967295) (cores_per_socket 4294967295) \
             (threads_per_core 4294967295) (total_memory 99999999999999999))",
        ))
        .unwrap();
        assert_eq!(hostile.nodes, 1);
    }

    #[test]
    fn devices_are_found_as_xend_destroys_them() {
        let r = rec("(domain (name a) (on_xend_start ignore) \
             (device (vbd (dev xvda) (uname file:/a))) \
             (device (tap (dev 'xvdb:disk') (uname tap:aio:/b))) \
             (device (vif (mac 00:16:3e:00:00:01))) (device (vif (mac 00:16:3e:00:00:02))))");
        let find = |xml: &str| find_device(&r, &parse_device(xml).unwrap());
        let found = |class: &str, reference: &str| Some((class.into(), reference.into()));
        // Disks by target, named by their Xen device number.
        assert_eq!(
            find("<disk><target dev='xvda'/></disk>").unwrap(),
            found("vbd", "51712")
        );
        assert_eq!(
            find("<disk><target dev='xvdb'/></disk>").unwrap(),
            found("tap", "51728")
        );
        assert_eq!(find("<disk><target dev='xvdc'/></disk>").unwrap(), None);
        assert!(find("<disk><source file='/a'/></disk>").is_err());
        // Interfaces by MAC address, named by their place.
        assert_eq!(
            find("<interface><mac address='00:16:3E:00:00:02'/></interface>").unwrap(),
            found("vif", "1")
        );
        assert_eq!(find("<interface/>").unwrap(), None);
        assert!(find("<hostdev/>").is_err());
        let mut r = r.clone();
        set_value(&mut r, "on_xend_start", "start");
        assert_eq!(r.get("on_xend_start"), Some("start"));
        assert_eq!(r.children("on_xend_start").count(), 1);
    }

    #[test]
    fn attached_devices_are_xends_device_sxp() {
        let el = |xml: &str| parse_device(xml).unwrap();
        let disk = to_sxp::device_to_sexpr(
            &el("<disk type='file'><source file='/x.img'/><target dev='xvdb'/><readonly/></disk>"),
            false,
        )
        .unwrap();
        assert_eq!(disk.head(), Some("vbd"));
        assert_eq!(
            (disk.get("dev"), disk.get("uname"), disk.get("mode")),
            (Some("xvdb"), Some("file:/x.img"), Some("r"))
        );
        let hvm = to_sxp::device_to_sexpr(
            &el("<disk type='block'><source dev='/dev/sdb'/><target dev='hdb'/></disk>"),
            true,
        )
        .unwrap();
        assert_eq!(hvm.get("dev"), Some("hdb:disk"));
        let nic = to_sxp::device_to_sexpr(
            &el("<interface type='bridge'><source bridge='br0'/><mac address='00:16:3e:00:00:02'/></interface>"),
            false,
        )
        .unwrap();
        assert_eq!(
            (nic.head(), nic.get("mac"), nic.get("bridge")),
            (Some("vif"), Some("00:16:3e:00:00:02"), Some("br0"))
        );
        assert_eq!(
            to_sxp::device_to_sexpr(&el("<controller/>"), false)
                .unwrap_err()
                .kind,
            ErrorKind::InvalidArgument
        );
    }

    #[test]
    fn error_mapping() {
        assert_eq!(
            xend_error("x", xend_message("(xend.err 'Domain is not halted.')")).kind,
            ErrorKind::InvalidState
        );
        assert_eq!(xend_message("(xend.err 'boom')"), "boom");
        assert_eq!(xend_error("x", "boom".into()).kind, ErrorKind::Backend);
    }
}
