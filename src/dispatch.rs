//! The front end, like libvirt.c: it owns argument checks and the read-only
//! rule, then asks the drivers in priority order. The first driver that
//! supports a call answers it; "not supported" moves on to the next driver and
//! any other error stops the search and is returned. It knows drivers only
//! through the `Driver` trait.
//!
//! The order differs per operation, as in libvirt's xen_unified: `ROUTES`
//! below says, for each operation, which drivers (by name) are asked first
//! and in what order; drivers a row does not name follow in connection
//! order, and an operation without a row uses connection order alone.

use crate::driver::{Driver, Operation};
use crate::error::{Error, ErrorKind, Result};
use crate::events::Bus;
use crate::model::{DomainDef, DomainId, DomainInfo, DomainRef, Hypervisor, NodeInfo, Uuid};
use std::path::Path;

/// When an answer lets the search go on to the next driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveOn {
    /// Only "not supported".
    Unsupported,
    /// Also "no such domain": on Xen each back end knows only some domains
    /// (xenstore and the hypervisor the running ones, xend also the defined
    /// ones), so one driver's "not found" is not the connection's.
    UnsupportedOrNoDomain,
}

/// One row of the routing table.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub op: Operation,
    /// Driver names (`Driver::name`) asked first, in this order.
    pub order: &'static [&'static str],
    pub move_on: MoveOn,
}

const HV: &str = "hypervisor";
const XEND: &str = "xend";
const XS: &str = "xenstore";

const fn route(op: Operation, order: &'static [&'static str], move_on: MoveOn) -> Route {
    Route { op, order, move_on }
}

use MoveOn::{Unsupported as NS, UnsupportedOrNoDomain as NS_OR_GONE};

/// Who answers what on a Xen connection, after libvirt's xen_unified: the
/// hypervisor first for information and state, xend first for definitions,
/// XML and lifecycle, xenstore first for lists, lookups, shutdown, reboot
/// and the memory target. A new driver slots in by its name: it is asked
/// where a row names it, and after the named ones everywhere else.
pub const ROUTES: &[Route] = &[
    route(Operation::ListActive, &[XS, HV, XEND], NS),
    route(Operation::ListDefined, &[XEND], NS),
    route(Operation::LookupByName, &[XS, XEND], NS_OR_GONE),
    route(Operation::LookupById, &[XS, HV, XEND], NS_OR_GONE),
    route(Operation::LookupByUuid, &[XS, HV, XEND], NS_OR_GONE),
    route(Operation::DomainInfo, &[HV, XEND, XS], NS_OR_GONE),
    route(Operation::DomainOsType, &[HV, XEND, XS], NS_OR_GONE),
    route(Operation::DomainXml, &[XEND, XS], NS_OR_GONE),
    route(Operation::DomainXmlInactive, &[XEND, XS], NS_OR_GONE),
    route(Operation::NodeInfo, &[HV, XEND], NS),
    route(Operation::Hypervisor, &[HV, XEND], NS),
    route(Operation::CreateXml, &[XEND], NS),
    route(Operation::DefineXml, &[XEND], NS),
    route(Operation::Undefine, &[XEND], NS),
    route(Operation::Start, &[XEND], NS),
    route(Operation::Shutdown, &[XS, XEND, HV], NS),
    route(Operation::Reboot, &[XS, XEND, HV], NS),
    route(Operation::Destroy, &[XEND, HV], NS),
    route(Operation::Suspend, &[XEND, HV], NS),
    route(Operation::Resume, &[XEND, HV], NS),
    route(Operation::Save, &[XEND], NS),
    route(Operation::Restore, &[XEND], NS),
    route(Operation::SetMemory, &[XS, XEND, HV], NS),
    route(Operation::SetMaxMemory, &[XEND, HV], NS),
    route(Operation::SetVcpus, &[XEND, HV], NS),
];

/// The row for `op`, if any.
pub fn route_of(op: Operation) -> Option<&'static Route> {
    ROUTES.iter().find(|r| r.op == op)
}

pub struct Dispatcher {
    drivers: Vec<Box<dyn Driver>>,
    read_only: bool,
    events: Bus,
}

impl Dispatcher {
    /// `drivers` in priority order: the first is asked first. Each driver is
    /// handed the connection's change feed.
    pub fn new(drivers: Vec<Box<dyn Driver>>, read_only: bool) -> Dispatcher {
        let events = Bus::new();
        for d in &drivers {
            d.publish_to(events.clone());
        }
        Dispatcher {
            drivers,
            read_only,
            events,
        }
    }

    /// The connection's change feed: every driver publishes on it.
    pub fn events(&self) -> &Bus {
        &self.events
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    pub fn driver_names(&self) -> Vec<&str> {
        self.drivers.iter().map(|d| d.name()).collect()
    }

    /// The drivers to ask for `op`, in order: those its route names, then
    /// the others in connection order.
    pub fn order(&self, op: Operation) -> Vec<&dyn Driver> {
        let named = route_of(op).map_or(&[][..], |r| r.order);
        let mut out: Vec<&dyn Driver> = Vec::with_capacity(self.drivers.len());
        for name in named {
            out.extend(
                self.drivers
                    .iter()
                    .filter(|d| d.name() == *name)
                    .map(|d| d.as_ref()),
            );
        }
        out.extend(
            self.drivers
                .iter()
                .filter(|d| !named.contains(&d.name()))
                .map(|d| d.as_ref()),
        );
        out
    }

    /// Asks each driver in turn until one supports `op`. The one fallback
    /// rule: "not supported" moves on (and, where the route says so, "no such
    /// domain", which is returned if nobody finds it); any other answer is
    /// final.
    fn first<T>(&self, op: Operation, call: impl Fn(&dyn Driver) -> Result<T>) -> Result<T> {
        let move_on = route_of(op).map_or(MoveOn::Unsupported, |r| r.move_on);
        let mut not_found = None;
        for driver in self.order(op) {
            match call(driver) {
                Err(e) if e.is_not_supported() => {
                    log::trace!("{op}: driver {} does not support it", driver.name());
                }
                Err(e)
                    if e.kind == ErrorKind::NoDomain
                        && move_on == MoveOn::UnsupportedOrNoDomain =>
                {
                    log::trace!("{op}: driver {} does not know the domain", driver.name());
                    not_found.get_or_insert(e);
                }
                other => return other.map_err(|e| e.during(op)),
            }
        }
        if let Some(e) = not_found {
            return Err(e.during(op));
        }
        Err(Error {
            kind: ErrorKind::NotSupported,
            op: Some(op),
            message: format!(
                "operation not supported by any driver of this connection ({})",
                self.driver_names().join(", ")
            ),
        })
    }

    /// Refuses a change on a read-only connection before any driver sees it.
    fn writable(&self, op: Operation) -> Result<()> {
        if self.read_only {
            return Err(Error {
                kind: ErrorKind::ReadOnly,
                op: Some(op),
                message: "the connection is read-only".into(),
            });
        }
        Ok(())
    }

    /// Drivers receive absolute paths only: a back end may open the file in
    /// another process with another working directory (xend does).
    fn absolute(op: Operation, path: &Path) -> Result<()> {
        if path.as_os_str().is_empty() {
            return Err(Error::invalid("no file name given").during(op));
        }
        if !path.is_absolute() {
            return Err(
                Error::invalid(format!("'{}' is not an absolute path", path.display())).during(op),
            );
        }
        Ok(())
    }

    pub fn list_active(&self) -> Result<Vec<DomainRef>> {
        self.first(Operation::ListActive, |d| d.list_active())
    }
    pub fn list_defined(&self) -> Result<Vec<DomainRef>> {
        self.first(Operation::ListDefined, |d| d.list_defined())
    }
    /// Active domains, then defined ones. A connection none of whose drivers
    /// keeps definitions simply has no defined domains, so "not supported"
    /// for that half is an empty list, not an error.
    pub fn list_domains(&self) -> Result<Vec<DomainRef>> {
        let mut all = self.list_active()?;
        match self.list_defined() {
            Ok(defined) => {
                for d in defined {
                    if !all.iter().any(|a| a.uuid == d.uuid) {
                        all.push(d);
                    }
                }
            }
            Err(e) if e.is_not_supported() => {}
            Err(e) => return Err(e),
        }
        Ok(all)
    }
    pub fn lookup_by_name(&self, name: &str) -> Result<DomainRef> {
        self.first(Operation::LookupByName, |d| d.lookup_by_name(name))
    }
    pub fn lookup_by_id(&self, id: DomainId) -> Result<DomainRef> {
        self.first(Operation::LookupById, |d| d.lookup_by_id(id))
    }
    pub fn lookup_by_uuid(&self, uuid: Uuid) -> Result<DomainRef> {
        self.first(Operation::LookupByUuid, |d| d.lookup_by_uuid(uuid))
    }
    pub fn domain_info(&self, dom: &DomainRef) -> Result<DomainInfo> {
        self.first(Operation::DomainInfo, |d| d.domain_info(dom))
    }
    pub fn domain_os_type(&self, dom: &DomainRef) -> Result<String> {
        self.first(Operation::DomainOsType, |d| d.domain_os_type(dom))
    }
    pub fn domain_xml(&self, dom: &DomainRef) -> Result<DomainDef> {
        self.first(Operation::DomainXml, |d| d.domain_xml(dom))
    }
    pub fn domain_xml_inactive(&self, dom: &DomainRef) -> Result<DomainDef> {
        self.first(Operation::DomainXmlInactive, |d| d.domain_xml_inactive(dom))
    }
    pub fn node_info(&self) -> Result<NodeInfo> {
        self.first(Operation::NodeInfo, |d| d.node_info())
    }
    pub fn hypervisor(&self) -> Result<Hypervisor> {
        self.first(Operation::Hypervisor, |d| d.hypervisor())
    }

    /// Parses `xml` here, so every driver gets a checked definition and a bad
    /// document fails the same way whichever driver would have answered.
    pub fn create_xml(&self, xml: &str) -> Result<DomainRef> {
        let op = Operation::CreateXml;
        self.writable(op)?;
        let def = DomainDef::parse(xml).map_err(|e| Error::from(e).during(op))?;
        self.first(op, |d| d.create_xml(def.clone()))
    }
    pub fn define_xml(&self, xml: &str) -> Result<DomainRef> {
        let op = Operation::DefineXml;
        self.writable(op)?;
        let def = DomainDef::parse(xml).map_err(|e| Error::from(e).during(op))?;
        self.define(def)
    }
    /// Defines an already parsed definition (the filesystem checks the
    /// document of a domain's own `xml` file before redefining it).
    pub fn define(&self, def: DomainDef) -> Result<DomainRef> {
        let op = Operation::DefineXml;
        self.writable(op)?;
        self.first(op, |d| d.define_xml(def.clone()))
    }
    pub fn undefine(&self, dom: &DomainRef) -> Result<()> {
        self.writable(Operation::Undefine)?;
        self.first(Operation::Undefine, |d| d.undefine(dom))
    }
    pub fn start(&self, dom: &DomainRef) -> Result<()> {
        self.writable(Operation::Start)?;
        self.first(Operation::Start, |d| d.start(dom))
    }
    pub fn shutdown(&self, dom: &DomainRef) -> Result<()> {
        self.writable(Operation::Shutdown)?;
        self.first(Operation::Shutdown, |d| d.shutdown(dom))
    }
    pub fn reboot(&self, dom: &DomainRef) -> Result<()> {
        self.writable(Operation::Reboot)?;
        self.first(Operation::Reboot, |d| d.reboot(dom))
    }
    pub fn destroy(&self, dom: &DomainRef) -> Result<()> {
        self.writable(Operation::Destroy)?;
        self.first(Operation::Destroy, |d| d.destroy(dom))
    }
    pub fn suspend(&self, dom: &DomainRef) -> Result<()> {
        self.writable(Operation::Suspend)?;
        self.first(Operation::Suspend, |d| d.suspend(dom))
    }
    pub fn resume(&self, dom: &DomainRef) -> Result<()> {
        self.writable(Operation::Resume)?;
        self.first(Operation::Resume, |d| d.resume(dom))
    }
    pub fn save(&self, dom: &DomainRef, path: &Path) -> Result<()> {
        let op = Operation::Save;
        self.writable(op)?;
        Self::absolute(op, path)?;
        self.first(op, |d| d.save(dom, path))
    }
    pub fn restore(&self, path: &Path) -> Result<DomainRef> {
        let op = Operation::Restore;
        self.writable(op)?;
        Self::absolute(op, path)?;
        self.first(op, |d| d.restore(path))
    }
    pub fn set_memory(&self, dom: &DomainRef, kib: u64) -> Result<()> {
        let op = Operation::SetMemory;
        self.writable(op)?;
        if kib == 0 {
            return Err(Error::invalid("memory must be greater than 0").during(op));
        }
        self.first(op, |d| d.set_memory(dom, kib))
    }
    pub fn set_max_memory(&self, dom: &DomainRef, kib: u64) -> Result<()> {
        let op = Operation::SetMaxMemory;
        self.writable(op)?;
        if kib == 0 {
            return Err(Error::invalid("maximum memory must be greater than 0").during(op));
        }
        self.first(op, |d| d.set_max_memory(dom, kib))
    }
    pub fn set_vcpus(&self, dom: &DomainRef, count: u32) -> Result<()> {
        let op = Operation::SetVcpus;
        self.writable(op)?;
        if count == 0 {
            return Err(Error::invalid("vcpu count must be at least 1").during(op));
        }
        self.first(op, |d| d.set_vcpus(dom, count))
    }
}

#[cfg(test)]
mod tests {
    //! Dispatcher tests use scripted drivers (a test double, named as such):
    //! the order and fallback rules need drivers whose support is chosen per
    //! call, which no real back end offers. Drivers named `hv`, `xs`, `third`
    //! are unknown to `ROUTES`, so they test connection order; the routing
    //! tests name them as the real drivers are named.
    use super::*;
    use crate::model::{DomainName, State};
    use std::sync::{Arc, Mutex};

    /// A scripted driver: supports the listed operations, answering each with
    /// either success or the given error kind, and records every call.
    struct Scripted {
        name: &'static str,
        answers: Vec<(Operation, std::result::Result<(), ErrorKind>)>,
        calls: Arc<Mutex<Vec<String>>>,
    }

    impl Scripted {
        fn answer(&self, op: Operation) -> Result<()> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("{}:{}", self.name, op.as_str()));
            match self.answers.iter().find(|(o, _)| *o == op) {
                None => Err(Error::not_supported(op)),
                Some((_, Ok(()))) => Ok(()),
                Some((_, Err(kind))) => Err(Error::new(*kind, format!("{} failed", self.name))),
            }
        }
    }

    fn dom() -> DomainRef {
        DomainRef {
            name: DomainName("d".into()),
            uuid: Uuid([1; 16]),
            id: Some(DomainId(1)),
        }
    }

    impl Driver for Scripted {
        fn name(&self) -> &str {
            self.name
        }
        fn suspend(&self, _dom: &DomainRef) -> Result<()> {
            self.answer(Operation::Suspend)
        }
        fn resume(&self, _dom: &DomainRef) -> Result<()> {
            self.answer(Operation::Resume)
        }
        fn domain_info(&self, _dom: &DomainRef) -> Result<DomainInfo> {
            self.answer(Operation::DomainInfo).map(|()| DomainInfo {
                state: State::Running,
                max_memory_kib: 1,
                memory_kib: 1,
                vcpus: 1,
                cpu_time_ns: 0,
            })
        }
        fn domain_os_type(&self, _dom: &DomainRef) -> Result<String> {
            self.answer(Operation::DomainOsType)
                .map(|()| self.name.to_string())
        }
        fn list_active(&self) -> Result<Vec<DomainRef>> {
            self.answer(Operation::ListActive).map(|()| vec![dom()])
        }
        fn list_defined(&self) -> Result<Vec<DomainRef>> {
            self.answer(Operation::ListDefined).map(|()| {
                let mut other = dom();
                other.uuid = Uuid([2; 16]);
                other.id = None;
                vec![dom(), other]
            })
        }
        fn set_vcpus(&self, _dom: &DomainRef, _n: u32) -> Result<()> {
            self.answer(Operation::SetVcpus)
        }
    }

    type Script = Vec<(Operation, std::result::Result<(), ErrorKind>)>;

    fn setup(scripts: Vec<(&'static str, Script)>) -> (Dispatcher, Arc<Mutex<Vec<String>>>) {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let drivers = scripts
            .into_iter()
            .map(|(name, answers)| {
                Box::new(Scripted {
                    name,
                    answers,
                    calls: calls.clone(),
                }) as Box<dyn Driver>
            })
            .collect();
        (Dispatcher::new(drivers, false), calls)
    }

    #[test]
    fn first_supporting_driver_answers_in_priority_order() {
        let (d, calls) = setup(vec![
            ("hv", vec![(Operation::Resume, Ok(()))]),
            ("xs", vec![]),
            (
                "third",
                vec![
                    (Operation::Suspend, Ok(())),
                    (Operation::DomainInfo, Ok(())),
                ],
            ),
            ("test", vec![(Operation::DomainInfo, Ok(()))]),
        ]);
        d.suspend(&dom()).unwrap();
        assert_eq!(
            *calls.lock().unwrap(),
            ["hv:suspend", "xs:suspend", "third:suspend"]
        );
        calls.lock().unwrap().clear();
        d.domain_info(&dom()).unwrap();
        assert_eq!(
            *calls.lock().unwrap(),
            ["hv:domain info", "xs:domain info", "third:domain info"]
        );
        calls.lock().unwrap().clear();
        d.resume(&dom()).unwrap();
        assert_eq!(*calls.lock().unwrap(), ["hv:resume"]);
    }

    #[test]
    fn each_operation_finds_its_own_driver() {
        let (d, calls) = setup(vec![
            ("hv", vec![(Operation::DomainInfo, Ok(()))]),
            ("xs", vec![(Operation::ListActive, Ok(()))]),
            (
                "third",
                vec![
                    (Operation::DomainOsType, Ok(())),
                    (Operation::ListDefined, Ok(())),
                ],
            ),
        ]);
        assert_eq!(d.domain_os_type(&dom()).unwrap(), "third");
        d.domain_info(&dom()).unwrap();
        // The union of both lists, the active entry winning a duplicate.
        let all = d.list_domains().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].id, Some(DomainId(1)));
        assert_eq!(all[1].uuid, Uuid([2; 16]));
        assert_eq!(
            *calls.lock().unwrap(),
            [
                "hv:domain os type",
                "xs:domain os type",
                "third:domain os type",
                "hv:domain info",
                "hv:list active domains",
                "xs:list active domains",
                "hv:list defined domains",
                "xs:list defined domains",
                "third:list defined domains",
            ]
        );
    }

    #[test]
    fn without_a_driver_for_definitions_only_active_domains_are_listed() {
        let (d, _) = setup(vec![("xs", vec![(Operation::ListActive, Ok(()))])]);
        assert_eq!(d.list_domains().unwrap(), vec![dom()]);
        let (d, _) = setup(vec![("hv", vec![])]);
        assert_eq!(
            d.list_domains().unwrap_err().kind,
            ErrorKind::NotSupported,
            "with no driver for active domains listing is not supported"
        );
    }

    #[test]
    fn a_real_error_stops_the_search_and_is_returned() {
        let (d, calls) = setup(vec![
            (
                "xs",
                vec![(Operation::Suspend, Err(ErrorKind::InvalidState))],
            ),
            ("third", vec![(Operation::Suspend, Ok(()))]),
        ]);
        let e = d.suspend(&dom()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidState);
        assert_eq!(e.errno(), libc::EBUSY);
        assert_eq!(e.op, Some(Operation::Suspend));
        assert_eq!(e.message, "xs failed");
        assert_eq!(*calls.lock().unwrap(), ["xs:suspend"]);
    }

    #[test]
    fn backend_errors_keep_their_kind() {
        let (d, _) = setup(vec![(
            "third",
            vec![(Operation::Suspend, Err(ErrorKind::NotConnected))],
        )]);
        assert_eq!(d.suspend(&dom()).unwrap_err().errno(), libc::ENOTCONN);
    }

    #[test]
    fn unsupported_everywhere_names_the_operation() {
        let (d, calls) = setup(vec![("hv", vec![]), ("xs", vec![])]);
        let e = d.reboot(&dom()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotSupported);
        assert_eq!(e.errno(), libc::EOPNOTSUPP);
        assert_eq!(e.op, Some(Operation::Reboot));
        assert!(e.to_string().starts_with("reboot: operation not supported"));
        assert!(e.to_string().contains("hv, xs"));
        // The defaults answered without touching the scripted calls.
        assert!(calls.lock().unwrap().is_empty());
    }

    #[test]
    fn no_driver_at_all_is_not_supported() {
        let d = Dispatcher::new(vec![], false);
        assert_eq!(d.node_info().unwrap_err().kind, ErrorKind::NotSupported);
    }

    #[test]
    fn front_end_checks_come_before_any_driver() {
        let (d, calls) = setup(vec![("x", vec![(Operation::SetVcpus, Ok(()))])]);
        assert_eq!(
            d.set_vcpus(&dom(), 0).unwrap_err().kind,
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            d.set_memory(&dom(), 0).unwrap_err().kind,
            ErrorKind::InvalidArgument
        );
        let e = d.save(&dom(), Path::new("relative.img")).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        assert!(e.message.contains("not an absolute path"));
        let e = d.create_xml("<domain").unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        assert_eq!(e.op, Some(Operation::CreateXml));
        assert!(calls.lock().unwrap().is_empty());
        d.set_vcpus(&dom(), 2).unwrap();
    }

    #[test]
    fn read_only_connection_refuses_changes_but_answers_reads() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let drv = Scripted {
            name: "x",
            answers: vec![
                (Operation::Suspend, Ok(())),
                (Operation::DomainInfo, Ok(())),
            ],
            calls: calls.clone(),
        };
        let d = Dispatcher::new(vec![Box::new(drv)], true);
        let e = d.suspend(&dom()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::ReadOnly);
        assert_eq!(e.errno(), libc::EROFS);
        assert!(d.domain_info(&dom()).is_ok());
        assert_eq!(*calls.lock().unwrap(), ["x:domain info"]);
    }

    /// Scripted drivers under the real drivers' names, given in libvirt's
    /// registration order (hypervisor, xend, xenstore) plus one the table
    /// does not know.
    fn xen_setup(
        answers: Vec<(Operation, std::result::Result<(), ErrorKind>)>,
    ) -> (Dispatcher, Arc<Mutex<Vec<String>>>) {
        setup(vec![
            ("hypervisor", answers.clone()),
            ("other", answers.clone()),
            ("xend", answers.clone()),
            ("xenstore", answers),
        ])
    }

    #[test]
    fn routes_order_drivers_per_operation() {
        let ops = [
            Operation::Suspend,
            Operation::DomainInfo,
            Operation::DomainOsType,
            Operation::ListActive,
            Operation::SetVcpus,
        ];
        // Every driver declines: the whole order shows in the calls.
        let (d, calls) = xen_setup(vec![]);
        let e = d.suspend(&dom()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotSupported);
        assert_eq!(
            *calls.lock().unwrap(),
            [
                "xend:suspend",
                "hypervisor:suspend",
                "other:suspend",
                "xenstore:suspend"
            ]
        );
        for op in ops {
            let names: Vec<&str> = d.order(op).iter().map(|x| x.name()).collect();
            let expect: &[&str] = match op {
                Operation::Suspend | Operation::SetVcpus => {
                    &["xend", "hypervisor", "other", "xenstore"]
                }
                Operation::DomainInfo | Operation::DomainOsType => {
                    &["hypervisor", "xend", "xenstore", "other"]
                }
                Operation::ListActive => &["xenstore", "hypervisor", "xend", "other"],
                _ => unreachable!(),
            };
            assert_eq!(names, expect, "{op}");
        }
        for (op, first) in [
            (Operation::Shutdown, "xenstore"),
            (Operation::Reboot, "xenstore"),
            (Operation::SetMemory, "xenstore"),
            (Operation::LookupByName, "xenstore"),
            (Operation::DomainXml, "xend"),
            (Operation::DefineXml, "xend"),
            (Operation::Start, "xend"),
            (Operation::NodeInfo, "hypervisor"),
        ] {
            assert_eq!(d.order(op)[0].name(), first, "{op}");
        }
    }

    #[test]
    fn every_operation_has_one_route_naming_known_drivers() {
        use std::collections::HashSet;
        let mut seen = HashSet::new();
        for r in ROUTES {
            assert!(seen.insert(r.op), "{} routed twice", r.op);
            for n in r.order {
                assert!([HV, XEND, XS].contains(n), "{}: unknown driver {n}", r.op);
            }
        }
        assert_eq!(seen.len(), 25, "one route per Operation");
    }

    #[test]
    fn the_first_driver_in_the_route_answers() {
        let (d, calls) = xen_setup(vec![
            (Operation::Suspend, Ok(())),
            (Operation::DomainInfo, Ok(())),
            (Operation::ListActive, Ok(())),
        ]);
        d.suspend(&dom()).unwrap();
        d.domain_info(&dom()).unwrap();
        d.list_active().unwrap();
        assert_eq!(
            *calls.lock().unwrap(),
            [
                "xend:suspend",
                "hypervisor:domain info",
                "xenstore:list active domains"
            ]
        );
    }

    #[test]
    fn a_domain_one_driver_does_not_know_is_asked_of_the_next() {
        // Domain info: the hypervisor does not know the domain (an inactive
        // one only xend keeps), xend answers.
        let (d, calls) = setup(vec![
            (
                "hypervisor",
                vec![(Operation::DomainInfo, Err(ErrorKind::NoDomain))],
            ),
            ("xend", vec![(Operation::DomainInfo, Ok(()))]),
        ]);
        d.domain_info(&dom()).unwrap();
        assert_eq!(
            *calls.lock().unwrap(),
            ["hypervisor:domain info", "xend:domain info"]
        );
        // Nobody knows it: "no domain", not "not supported".
        let (d, _) = setup(vec![
            (
                "hypervisor",
                vec![(Operation::DomainInfo, Err(ErrorKind::NoDomain))],
            ),
            ("xend", vec![]),
        ]);
        let e = d.domain_info(&dom()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::NoDomain);
        assert_eq!(e.op, Some(Operation::DomainInfo));
        // For a change, "no domain" is final: no other driver acts.
        let (d, calls) = setup(vec![
            ("xend", vec![(Operation::Suspend, Err(ErrorKind::NoDomain))]),
            ("hypervisor", vec![(Operation::Suspend, Ok(()))]),
        ]);
        assert_eq!(d.suspend(&dom()).unwrap_err().kind, ErrorKind::NoDomain);
        assert_eq!(*calls.lock().unwrap(), ["xend:suspend"]);
    }
}
