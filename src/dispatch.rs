//! The front end, like libvirt.c: it owns argument checks and the read-only
//! rule, then asks the drivers that support a call in priority order. The
//! first answers; "not supported" moves on to the next driver and any other
//! error stops the search and is returned. It knows drivers only through the
//! `Driver` trait and the routing table its connection brings.
//!
//! A dispatcher may exist before its drivers do (`-o retry`): until
//! `attach` hands them over, every call fails with ENOTCONN and the reason,
//! and nothing is supported. Being "not connected yet" is its state, so no
//! operation can be forgotten on the way.

use crate::driver::{Driver, DriverKind, Operation};
use crate::error::{Error, ErrorKind, Result};
use crate::events::Bus;
use crate::model::{
    BlockStats, CpuSet, DomainDef, DomainId, DomainInfo, DomainRef, Hypervisor, InterfaceStats,
    NodeInfo, SchedParam, Uuid, VcpuInfo,
};
use crate::sync::lock;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

/// When an answer lets the search go on to the next driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveOn {
    /// Only "not supported".
    Unsupported,
    /// Also "no such domain": on Xen each back end knows only some domains
    /// (xenstore and the hypervisor the running ones, xend also the defined
    /// ones), so one driver's "not found" is not the connection's. These
    /// are reads, so they also move on past a back end that failed (down,
    /// too slow, answering nonsense): the next one may know the answer, and
    /// one broken back end must not hide what the others serve.
    UnsupportedOrNoDomain,
}

/// One row of a connection's routing table: for `op`, the kinds of driver
/// asked first and in what order; drivers a row does not name follow in
/// connection order, and an operation without a row uses connection order
/// alone.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub op: Operation,
    pub order: &'static [DriverKind],
    pub move_on: MoveOn,
}

/// A connection's routing table.
pub type Routes = &'static [Route];

/// Front-end argument checks, named by the operation declarations
/// (`model::operation`): each takes references to the operation's
/// arguments and refuses before any driver sees them.
mod checks {
    use super::*;

    pub fn none<T>(_: T) -> Result<()> {
        Ok(())
    }

    /// Drivers receive absolute paths only: a back end may open the file in
    /// another process with another working directory (xend does).
    pub fn absolute_path((path,): (&&Path,)) -> Result<()> {
        if path.as_os_str().is_empty() {
            return Err(Error::invalid("no file name given"));
        }
        if !path.is_absolute() {
            return Err(Error::invalid(format!(
                "'{}' is not an absolute path",
                path.display()
            )));
        }
        Ok(())
    }

    pub fn absolute_image((_, path): (&&DomainRef, &&Path)) -> Result<()> {
        absolute_path((path,))
    }

    pub fn memory((_, kib): (&&DomainRef, &u64)) -> Result<()> {
        match kib {
            0 => Err(Error::invalid("memory must be greater than 0")),
            _ => Ok(()),
        }
    }

    pub fn max_memory((_, kib): (&&DomainRef, &u64)) -> Result<()> {
        match kib {
            0 => Err(Error::invalid("maximum memory must be greater than 0")),
            _ => Ok(()),
        }
    }

    /// An empty set would leave the vCPU nowhere to run (the parser
    /// refuses one; this keeps every caller to the same rule).
    pub fn cpu_list((_, _, cpus): (&&DomainRef, &u32, &CpuSet)) -> Result<()> {
        if cpus.is_empty() {
            return Err(Error::invalid("a vCPU must be pinned to at least one CPU"));
        }
        Ok(())
    }

    /// A device fragment must be one `<disk>` or `<interface>` element
    /// (the devices the Xen-era API attaches), well formed.
    pub fn device_xml((_, xml): (&&DomainRef, &&str)) -> Result<()> {
        let root = crate::driver::parse_device(xml)?;
        match root.name.as_str() {
            "disk" | "interface" => Ok(()),
            other => Err(Error::invalid(format!(
                "<{other}> is not a device domfs attaches (a <disk> or an <interface>)"
            ))),
        }
    }

    pub fn vcpus((_, count): (&&DomainRef, &u32)) -> Result<()> {
        match count {
            0 => Err(Error::invalid("vcpu count must be at least 1")),
            _ => Ok(()),
        }
    }
}

pub struct Dispatcher {
    /// Set once, when the connection opens (at once, or later with retry).
    drivers: OnceLock<Vec<Box<dyn Driver>>>,
    /// Why the connection is not open yet.
    waiting: Mutex<String>,
    routes: Routes,
    read_only: bool,
    events: Bus,
}

impl Dispatcher {
    /// `drivers` in priority order: the first is asked first, unless
    /// `routes` says otherwise for an operation. Each driver is handed the
    /// connection's change feed.
    pub fn new(drivers: Vec<Box<dyn Driver>>, routes: Routes, read_only: bool) -> Dispatcher {
        let d = Dispatcher::waiting(String::new(), routes, read_only);
        d.attach(drivers);
        d
    }

    /// A connection that is not open yet: every call fails with ENOTCONN
    /// and `reason` until `attach`.
    pub fn waiting(reason: String, routes: Routes, read_only: bool) -> Dispatcher {
        Dispatcher {
            drivers: OnceLock::new(),
            waiting: Mutex::new(reason),
            routes,
            read_only,
            events: Bus::new(),
        }
    }

    /// Says why the connection is still not open.
    pub fn still_waiting(&self, reason: String) {
        *lock(&self.waiting) = reason;
    }

    /// The connection opened: from now on the drivers answer. Only the
    /// first call has any effect.
    pub fn attach(&self, drivers: Vec<Box<dyn Driver>>) {
        for d in &drivers {
            d.publish_to(self.events.clone());
        }
        if self.drivers.set(drivers).is_err() {
            log::error!("a connection was attached twice; the second is ignored");
        }
    }

    pub fn is_connected(&self) -> bool {
        self.drivers.get().is_some()
    }

    /// The connection's change feed: every driver publishes on it.
    pub fn events(&self) -> &Bus {
        &self.events
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    fn drivers(&self) -> &[Box<dyn Driver>] {
        self.drivers.get().map_or(&[], |d| d.as_slice())
    }

    pub fn driver_names(&self) -> Vec<&'static str> {
        self.drivers().iter().map(|d| d.kind().as_str()).collect()
    }

    /// Whether some driver of the connection carries out `op` now, asked
    /// without calling any back end (nothing, before it connects; no change
    /// on a read-only connection).
    pub fn supports(&self, op: Operation) -> bool {
        !(op.is_change() && self.read_only) && self.drivers().iter().any(|d| d.supports(op))
    }

    fn route(&self, op: Operation) -> Option<&'static Route> {
        self.routes.iter().find(|r| r.op == op)
    }

    /// The drivers that support `op`, in the order they are asked: those its
    /// route names, then the others in connection order.
    pub fn order(&self, op: Operation) -> Vec<&dyn Driver> {
        let named = self.route(op).map_or(&[][..], |r| r.order);
        let able = || self.drivers().iter().filter(|d| d.supports(op));
        let mut out: Vec<&dyn Driver> = Vec::with_capacity(self.drivers().len());
        for kind in named {
            out.extend(able().filter(|d| d.kind() == *kind).map(|d| d.as_ref()));
        }
        out.extend(
            able()
                .filter(|d| !named.contains(&d.kind()))
                .map(|d| d.as_ref()),
        );
        out
    }

    /// Asks each driver that supports `op` in turn. The one fallback rule:
    /// "not supported" moves on (and, where the route says so, "no such
    /// domain", which is returned if nobody finds it); any other answer is
    /// final.
    fn first<T>(&self, op: Operation, call: impl Fn(&dyn Driver) -> Result<T>) -> Result<T> {
        if !self.is_connected() {
            let reason = self.waiting.lock().map(|r| r.clone()).unwrap_or_default();
            return Err(Error {
                kind: ErrorKind::NotConnected,
                op: Some(op),
                message: reason,
            });
        }
        let move_on = self.route(op).map_or(MoveOn::Unsupported, |r| r.move_on);
        let (mut not_found, mut failed) = (None, None);
        for driver in self.order(op) {
            match call(driver) {
                Err(e) if e.is_not_supported() => {
                    log::trace!("{op}: driver {} does not support it", driver.kind());
                }
                Err(e)
                    if e.kind == ErrorKind::NoDomain
                        && move_on == MoveOn::UnsupportedOrNoDomain =>
                {
                    log::trace!("{op}: driver {} does not know the domain", driver.kind());
                    not_found.get_or_insert(e);
                }
                Err(e)
                    if matches!(
                        e.kind,
                        ErrorKind::NotConnected | ErrorKind::TimedOut | ErrorKind::Backend
                    ) && move_on == MoveOn::UnsupportedOrNoDomain =>
                {
                    log::info!(
                        "{op}: driver {} failed, asking the next: {e}",
                        driver.kind()
                    );
                    failed.get_or_insert(e);
                }
                other => return other.map_err(|e| e.during(op)),
            }
        }
        // A failed back end might have known the domain: its failure says
        // more than another's "not found".
        if let Some(e) = failed.or(not_found) {
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
        if op.is_change() && self.read_only {
            return Err(Error {
                kind: ErrorKind::ReadOnly,
                op: Some(op),
                message: "the connection is read-only".into(),
            });
        }
        Ok(())
    }

    /// Active domains, then defined ones. A connection none of whose drivers
    /// keeps definitions simply has no defined domains, so "not supported"
    /// for that half is an empty list, not an error. When the keeper of
    /// definitions fails (xend dead or answering garbage), the active
    /// domains another back end lists are still listed and the failure is
    /// logged: one broken back end must not hide what the others serve.
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
            Err(e) => log::warn!("listing the active domains only: {e}"),
        }
        Ok(all)
    }

    /// Parses a written document here, so every driver gets a checked
    /// definition and a bad one fails the same way whichever driver would
    /// have answered.
    fn parse(op: Operation, xml: &str) -> Result<DomainDef> {
        DomainDef::parse(xml).map_err(|e| Error::from(e).during(op))
    }

    pub fn create_xml_text(&self, xml: &str) -> Result<DomainRef> {
        let op = Operation::CreateXml;
        self.writable(op)?;
        self.create_xml(Self::parse(op, xml)?)
    }

    pub fn define_xml_text(&self, xml: &str) -> Result<DomainRef> {
        let op = Operation::DefineXml;
        self.writable(op)?;
        self.define_xml(Self::parse(op, xml)?)
    }
}

macro_rules! declare_front_end {
    ($(
        $(#[$meta:meta])*
        $variant:ident $name:literal $kind:ident($states:ident) $command:expr,
            fn $method:ident($($arg:ident: $ty:ty),*) -> $ret:ty, $check:ident;
    )*) => {
        impl Dispatcher {
            $(
                $(#[$meta])*
                #[allow(clippy::clone_on_copy)]
                pub fn $method(&self, $($arg: $ty),*) -> Result<$ret> {
                    let op = Operation::$variant;
                    self.writable(op)?;
                    checks::$check(($(&$arg,)*)).map_err(|e| e.during(op))?;
                    self.first(op, |d| d.$method($(Clone::clone(&$arg)),*))
                }
            )*
        }
    };
}

crate::with_operations!(declare_front_end);

#[cfg(test)]
mod tests {
    //! Dispatcher tests use scripted drivers (a test double, named as such):
    //! the order and fallback rules need drivers whose support is chosen per
    //! call, which no real back end offers. Drivers labelled `hv`, `xs`,
    //! `third` are of the test kind, unknown to the Xen routes, so they test
    //! connection order; the routing tests give them the real drivers' kinds.
    use super::*;
    use crate::driver::xen::ROUTES;
    use crate::model::{DomainName, State};
    use std::sync::{Arc, Mutex};

    /// A scripted driver: supports the listed operations, answering each with
    /// either success or the given error kind, and records every call.
    struct Scripted {
        name: &'static str,
        kind: DriverKind,
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
        fn kind(&self) -> DriverKind {
            self.kind
        }
        fn supports(&self, op: Operation) -> bool {
            self.answers.iter().any(|(o, _)| *o == op)
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

    fn kind_of(name: &str) -> DriverKind {
        match name {
            "hypervisor" => DriverKind::Hypervisor,
            "xend" => DriverKind::Xend,
            "xenstore" => DriverKind::Xenstore,
            _ => DriverKind::Test,
        }
    }

    fn setup(scripts: Vec<(&'static str, Script)>) -> (Dispatcher, Arc<Mutex<Vec<String>>>) {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let drivers = scripts
            .into_iter()
            .map(|(name, answers)| {
                Box::new(Scripted {
                    name,
                    kind: kind_of(name),
                    answers,
                    calls: calls.clone(),
                }) as Box<dyn Driver>
            })
            .collect();
        (Dispatcher::new(drivers, ROUTES, false), calls)
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
            ["third:suspend"],
            "drivers that do not support it are not asked"
        );
        calls.lock().unwrap().clear();
        d.domain_info(&dom()).unwrap();
        assert_eq!(*calls.lock().unwrap(), ["third:domain info"]);
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
                "third:domain os type",
                "hv:domain info",
                "xs:list active domains",
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
    fn a_failing_keeper_of_definitions_leaves_the_active_list() {
        let (d, _) = setup(vec![
            ("xs", vec![(Operation::ListActive, Ok(()))]),
            (
                "third",
                vec![(Operation::ListDefined, Err(ErrorKind::Backend))],
            ),
        ]);
        assert_eq!(d.list_domains().unwrap(), vec![dom()]);
        let (d, _) = setup(vec![(
            "xs",
            vec![(Operation::ListActive, Err(ErrorKind::NotConnected))],
        )]);
        assert_eq!(
            d.list_domains().unwrap_err().kind,
            ErrorKind::NotConnected,
            "without the active list there is nothing to show"
        );
    }

    #[test]
    fn reads_move_on_past_a_failed_back_end() {
        // DomainInfo's Xen route moves on past "no such domain".
        let (d, calls) = setup(vec![
            (
                "xs",
                vec![(Operation::DomainInfo, Err(ErrorKind::NotConnected))],
            ),
            ("third", vec![(Operation::DomainInfo, Ok(()))]),
        ]);
        d.domain_info(&dom()).unwrap();
        assert_eq!(
            *calls.lock().unwrap(),
            ["xs:domain info", "third:domain info"]
        );
        let (d, _) = setup(vec![
            (
                "xs",
                vec![(Operation::DomainInfo, Err(ErrorKind::TimedOut))],
            ),
            (
                "third",
                vec![(Operation::DomainInfo, Err(ErrorKind::NoDomain))],
            ),
        ]);
        assert_eq!(d.domain_info(&dom()).unwrap_err().kind, ErrorKind::TimedOut);
        // A change never moves on: the first back end may have half done it.
        let (d, calls) = setup(vec![
            (
                "xs",
                vec![(Operation::SetVcpus, Err(ErrorKind::NotConnected))],
            ),
            ("third", vec![(Operation::SetVcpus, Ok(()))]),
        ]);
        assert!(d.set_vcpus(&dom(), 1).is_err());
        assert_eq!(*calls.lock().unwrap(), ["xs:setvcpus"]);
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
        let (d, calls) = setup(vec![("hypervisor", vec![]), ("xenstore", vec![])]);
        assert!(!d.supports(Operation::Reboot));
        let e = d.reboot(&dom()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotSupported);
        assert_eq!(e.errno(), libc::EOPNOTSUPP);
        assert_eq!(e.op, Some(Operation::Reboot));
        assert!(e.to_string().starts_with("reboot: operation not supported"));
        assert!(e.to_string().contains("hypervisor, xenstore"));
        // Nobody was asked: the connection knew without calling.
        assert!(calls.lock().unwrap().is_empty());
    }

    #[test]
    fn no_driver_at_all_is_not_supported() {
        let d = Dispatcher::new(vec![], &[], false);
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
        let e = d.create_xml_text("<domain").unwrap_err();
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
            kind: DriverKind::Test,
            answers: vec![
                (Operation::Suspend, Ok(())),
                (Operation::DomainInfo, Ok(())),
            ],
            calls: calls.clone(),
        };
        let d = Dispatcher::new(vec![Box::new(drv)], &[], true);
        assert!(
            !d.supports(Operation::Suspend),
            "no change on a read-only connection"
        );
        assert!(d.supports(Operation::DomainInfo));
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
        let declines = Operation::ALL
            .iter()
            .map(|op| (*op, Err(ErrorKind::NotSupported)))
            .collect();
        let (d, calls) = xen_setup(declines);
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
            let names: Vec<&str> = d.order(op).iter().map(|x| x.kind().as_str()).collect();
            let expect: &[&str] = match op {
                Operation::Suspend | Operation::SetVcpus => {
                    &["xend", "hypervisor", "test", "xenstore"]
                }
                Operation::DomainInfo | Operation::DomainOsType => {
                    &["hypervisor", "xend", "xenstore", "test"]
                }
                Operation::ListActive => &["xenstore", "hypervisor", "xend", "test"],
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
            assert_eq!(d.order(op)[0].kind().as_str(), first, "{op}");
        }
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
