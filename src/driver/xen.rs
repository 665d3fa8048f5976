//! The Xen connection's policy, after libvirt's xen_unified: which back ends
//! `xen:///` opens and in what order, who is asked first for what
//! (`ROUTES`), who reports which event, and the toolstack's clean-up after
//! a destroy. The drivers stay ignorant of each other; what joins them on
//! Xen is here, and nowhere in the front end.
//!
//! Events: the hypervisor driver reports state changes it polls for
//! (pauses, crashes, memory and vCPUs), xenstore domains coming and going
//! and what is written behind domfs's back; libxl and xend the starts and
//! stops made through them, which a pair quicker than xenstore's listings
//! would otherwise hide. Where two report one start or stop, the change
//! feed keeps the first (`events::Bus`).

use super::dom0stats;
use super::hypervisor::{self, HypervisorDriver};
use super::libxl::{self, LibxlDriver};
use super::xend::XendDriver;
use super::xenstore::{self, XenstoreDriver};
use super::{Driver, DriverKind, Operation};
use crate::dispatch::{MoveOn, Route, Routes};
use crate::error::{Error, ErrorKind, Result};
use std::path::Path;

/// The `-o` options that choose and tune Xen's back ends.
#[derive(Debug, Clone, Copy, Default)]
pub struct XenOptions<'a> {
    /// xenstored's unix socket or the xenbus device.
    pub xenstore: Option<&'a str>,
    /// `unix:/PATH` or `http://HOST:PORT`.
    pub xend: Option<&'a str>,
    /// The privcmd device, or `none`.
    pub privcmd: Option<&'a str>,
    /// How often the hypervisor driver compares domain lists (ms; 0 never).
    pub poll_ms: Option<u64>,
    /// `none` to go without libxenlight.
    pub libxl: Option<&'a str>,
    /// Where the libxl driver keeps definitions.
    pub state_dir: Option<&'a str>,
    /// blkback's device directories, for disk counters.
    pub backend_devices: Option<&'a str>,
    /// The interface counters file.
    pub net_dev: Option<&'a str>,
}

const HV: DriverKind = DriverKind::Hypervisor;
const XEND: DriverKind = DriverKind::Xend;
const XS: DriverKind = DriverKind::Xenstore;
const LX: DriverKind = DriverKind::Libxl;

const fn route(op: Operation, order: &'static [DriverKind], move_on: MoveOn) -> Route {
    Route { op, order, move_on }
}

use MoveOn::{Unsupported as NS, UnsupportedOrNoDomain as NS_OR_GONE};

/// Who answers what on a Xen connection, after libvirt's xen_unified and
/// its libxl driver: the hypervisor first for information and state;
/// libxl (where it is loaded: dom0 of Xen 4.17) first for definitions,
/// lifecycle, save and restore, memory and vCPU counts, with xend after it
/// for the hosts that still run one; xenstore first for lists and lookups
/// of running domains. Lookups and a domain's values move on past a driver
/// that does not know the domain: each back end knows only some. Those
/// reads, and the list of active domains, also move on past a back end
/// that failed (`MoveOn::UnsupportedOrNoDomain`), so a dead xenstored
/// leaves the others' answers readable. A driver the connection lacks is
/// simply skipped, so without libxl the order is the one before it.
pub const ROUTES: Routes = &[
    route(Operation::ListActive, &[XS, HV, XEND], NS_OR_GONE),
    route(Operation::ListDefined, &[LX, XEND], NS),
    route(Operation::LookupByName, &[XS, LX, XEND], NS_OR_GONE),
    route(Operation::LookupById, &[XS, HV, LX, XEND], NS_OR_GONE),
    route(Operation::LookupByUuid, &[XS, HV, LX, XEND], NS_OR_GONE),
    route(Operation::DomainInfo, &[HV, LX, XEND, XS], NS_OR_GONE),
    route(Operation::DomainOsType, &[HV, LX, XEND, XS], NS_OR_GONE),
    route(Operation::DomainXml, &[LX, XEND, XS], NS_OR_GONE),
    route(Operation::DomainXmlInactive, &[LX, XEND, XS], NS_OR_GONE),
    route(Operation::NodeInfo, &[HV, XEND], NS),
    route(Operation::Hypervisor, &[HV, XEND], NS),
    route(Operation::CreateXml, &[LX, XEND], NS),
    route(Operation::DefineXml, &[LX, XEND], NS),
    route(Operation::Undefine, &[LX, XEND], NS),
    route(Operation::Start, &[LX, XEND], NS),
    route(Operation::Shutdown, &[LX, XS, XEND, HV], NS),
    route(Operation::Reboot, &[LX, XS, XEND, HV], NS),
    route(Operation::Destroy, &[LX, XEND, HV], NS),
    route(Operation::Suspend, &[LX, XEND, HV], NS),
    route(Operation::Resume, &[LX, XEND, HV], NS),
    route(Operation::Save, &[LX, XEND], NS),
    route(Operation::Restore, &[LX, XEND], NS),
    route(Operation::SetMemory, &[LX, XS, XEND, HV], NS),
    route(Operation::SetMaxMemory, &[LX, XEND, HV], NS),
    route(Operation::SetVcpus, &[LX, XEND, HV], NS),
    // As xen_unified sent them: the hypervisor answers vCPUs, pinning and
    // free memory for running domains, libxl (or xend) the definitions of
    // shut-off ones; autostart is the toolstack's.
    route(Operation::DomainMaxVcpus, &[HV, LX, XEND], NS_OR_GONE),
    route(Operation::DomainAutostart, &[LX, XEND], NS_OR_GONE),
    route(Operation::SetAutostart, &[LX, XEND], NS),
    route(Operation::NodeFreeMemory, &[HV], NS),
    route(Operation::NodeCellsFreeMemory, &[HV], NS),
    route(Operation::DomainVcpuInfo, &[HV, XEND], NS_OR_GONE),
    route(Operation::PinVcpu, &[HV, XEND], NS),
    // As xen_unified sent them (the scheduler and capabilities to the
    // hypervisor, devices and dumps to the toolstack).
    route(Operation::DomainSchedulerType, &[HV, XEND], NS_OR_GONE),
    route(Operation::DomainSchedulerParams, &[HV, XEND], NS_OR_GONE),
    route(Operation::SetSchedulerParam, &[HV, XEND], NS),
    route(Operation::NodeCapabilities, &[HV, XEND], NS),
    route(Operation::CoreDump, &[LX, XEND], NS),
    route(Operation::AttachDevice, &[LX, XEND], NS),
    route(Operation::DetachDevice, &[LX, XEND], NS),
    // Counters are dom0's (blkback, netback); xenstore has the devices
    // that name them.
    route(Operation::DomainBlockStats, &[XS, XEND], NS_OR_GONE),
    route(Operation::DomainInterfaceStats, &[XS, XEND], NS_OR_GONE),
];

/// xenstored's socket; Xen 4.15 and later have no read-only one.
pub const XENSTORE_SOCKET: &str = "/var/run/xenstored/socket";
/// The kernel's xenbus devices, tried after the socket as libxenstore does.
pub const XENBUS_DEVICES: [&str; 2] = ["/dev/xen/xenbus", "/proc/xen/xenbus"];
/// How often the hypervisor is asked for changes no watch reports.
pub const DEFAULT_POLL_MS: u64 = 500;
pub const PRIVCMD_DEVICE: &str = "/dev/xen/privcmd";

/// Opens every Xen back end this build has and can reach, in libvirt's
/// registration order (hypervisor, xend, xenstore; `ROUTES` then orders
/// them per operation). A back end that is absent is skipped with an
/// info log; with none at all the mount fails naming each endpoint tried.
/// How long `-o retry` waits in dom0 for xenstored's socket before it
/// settles for the kernel's xenbus device.
pub const SOCKET_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// Only the initial domain has the xenbus back-end device; the kernel makes
/// it at boot, before any Xen service runs.
const XENBUS_BACKEND: &str = "/dev/xen/xenbus_backend";

/// Whether `-o retry` should open the connection now, `waited` after it
/// began. At a dom0's boot the Xen service loads privcmd and mounts xenfs
/// before it starts xenstored, so an attempt in that gap finds the
/// hypervisor and the kernel's xenbus device but not xenstored's socket; the
/// device answers once xenstored runs, but never again after the daemon is
/// restarted, while the socket's client reconnects. So in dom0, with no
/// `-o xenstore=` given, domfs waits for the socket, for up to
/// `SOCKET_PATIENCE` (a xenstore stub domain has no socket in dom0).
pub fn ready(opts: &XenOptions<'_>, waited: std::time::Duration) -> Result<()> {
    ready_at(
        opts,
        waited,
        Path::new(XENBUS_BACKEND),
        Path::new(XENSTORE_SOCKET),
    )
}

fn ready_at(
    opts: &XenOptions<'_>,
    waited: std::time::Duration,
    backend_dev: &Path,
    socket: &Path,
) -> Result<()> {
    if opts.xenstore.is_some() || waited >= SOCKET_PATIENCE || !backend_dev.exists() {
        return Ok(());
    }
    if socket.exists() {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::NotConnected,
        format!(
            "dom0 without xenstored's socket {} yet (the Xen service starts the daemon); \
             waiting up to {} s for it before using the xenbus device",
            socket.display(),
            SOCKET_PATIENCE.as_secs()
        ),
    ))
}

pub fn open(opts: &XenOptions<'_>) -> Result<Vec<Box<dyn Driver>>> {
    let mut drivers: Vec<Box<dyn Driver>> = Vec::new();
    let mut tried: Vec<String> = Vec::new();

    if let Some(v) = opts.privcmd {
        check_privcmd(v)?;
    }
    if let Some(v) = opts.libxl {
        check_libxl(v)?;
    }
    for (key, value) in [
        ("state_dir", opts.state_dir),
        ("backend_devices", opts.backend_devices),
        ("net_dev", opts.net_dev),
    ] {
        if let Some(v) = value.filter(|v| !v.starts_with('/')) {
            return Err(Error::invalid(format!("{key}={v}: use an absolute path")));
        }
    }
    let defaults = dom0stats::Roots::default();
    let counters = dom0stats::Roots {
        backend_devices: opts
            .backend_devices
            .map_or(defaults.backend_devices, Into::into),
        net_dev: opts.net_dev.map_or(defaults.net_dev, Into::into),
    };
    let mut hv = None;
    match HypervisorDriver::open(opts.privcmd) {
        Ok(Some(d)) => {
            log::info!("xen:///: hypervisor through privcmd");
            let every = std::time::Duration::from_millis(opts.poll_ms.unwrap_or(DEFAULT_POLL_MS));
            hv = Some(d.poll_every(every));
        }
        Ok(None) if opts.privcmd.is_some() => {
            tried.push("hypervisor: turned off (privcmd=none)".into())
        }
        Ok(None) => tried.push(format!(
            "hypervisor: no privcmd device ({})",
            hypervisor::DEFAULT_PATHS.join(", ")
        )),
        // A missing or refused device (named or default), or an unknown
        // Xen release: go on without it, loudly, since state and info then
        // come from slower back ends; the mount fails only with no back end.
        Err(e) => {
            log::warn!("xen:///: hypervisor driver off: {e}");
            tried.push(format!("hypervisor: {}", e.message));
        }
    }

    if let Some(url) = opts.xend {
        check_xend(url)?;
        // A xend that does not answer now is not counted as reachable.
        match XendDriver::from_url(url).and_then(|d| d.hypervisor().map(|_| d)) {
            Ok(d) => {
                log::info!("xen:///: xend at {url}");
                drivers.push(Box::new(d));
            }
            Err(e) => tried.push(format!("xend ({url}): {e}")),
        }
    }

    let endpoints: Vec<String> = match opts.xenstore {
        Some(p) => vec![p.to_string()],
        None => std::iter::once(XENSTORE_SOCKET)
            .chain(XENBUS_DEVICES)
            .map(String::from)
            .collect(),
    };
    for ep in &endpoints {
        match XenstoreDriver::open(Path::new(ep), xenstore::client::DEFAULT_TIMEOUT) {
            Ok(d) => {
                log::info!("xen:///: xenstore through {ep}");
                drivers.push(Box::new(d.counters_under(counters.clone())));
                hv = hv.map(|h| h.after_destroy(forget_in_xenstore(ep.into())));
                break;
            }
            Err(e) => tried.push(format!("xenstore ({ep}): {}", e.message)),
        }
    }
    if let Some(h) = hv {
        drivers.insert(0, Box::new(h));
    }

    // libxl needs xenstored and privcmd itself, so it comes last; its
    // context is made here, after any daemonising fork, in dom0 only.
    match opts.libxl {
        Some(_) => tried.push("libxl: turned off (libxl=none)".into()),
        None => match LibxlDriver::open(
            &libxl::state_dir(opts.state_dir),
            log::log_enabled!(log::Level::Debug),
        ) {
            Ok(d) => {
                log::info!("xen:///: libxl ({})", libxl::sys::LIBXENLIGHT);
                drivers.push(Box::new(d));
            }
            Err(e) => tried.push(format!("libxl: {e}")),
        },
    }

    for t in &tried {
        log::info!("xen:///: skipped {t}");
    }
    if drivers.is_empty() {
        return Err(Error::new(
            ErrorKind::NotConnected,
            format!("no Xen back end is reachable; tried {}", tried.join("; ")),
        ));
    }
    Ok(drivers)
}

/// The toolstack's half of a destroy, after Xen's: libxl removes the
/// domain's xenstore entries (`/local/domain/N`, its `/vm` entry,
/// `/libxl/N`, its backends in dom0), and nothing else does, so without this
/// a destroyed domain would stay listed.
fn forget_in_xenstore(endpoint: std::path::PathBuf) -> hypervisor::AfterDestroy {
    use xenstore::client::{Client, ClientError, DEFAULT_TIMEOUT};
    use xenstore::wire::ErrName;
    let fail = |what: &str, e: ClientError| {
        Error::backend(format!("removing its xenstore entries: {what}: {e}"))
    };
    Box::new(move |id, uuid| {
        let c = Client::connect(&endpoint, DEFAULT_TIMEOUT).map_err(|e| fail("connect", e))?;
        let home = format!("/local/domain/{id}");
        let mut paths = Vec::new();
        match c.read_string(0, &format!("{home}/vm")) {
            Ok(vm) if vm.starts_with("/vm/") && !vm.contains("..") => paths.push(vm),
            _ => paths.push(format!("/vm/{uuid}")),
        }
        match c.directory(0, "/local/domain/0/backend") {
            Ok(kinds) => paths.extend(
                kinds
                    .iter()
                    .map(|k| format!("/local/domain/0/backend/{k}/{id}")),
            ),
            Err(e) if e.is(ErrName::Enoent) => {}
            Err(e) => return Err(fail("backends", e)),
        }
        paths.push(format!("/libxl/{id}"));
        paths.push(home);
        for p in &paths {
            match c.rm(0, p) {
                Ok(()) => {}
                Err(e) if e.is(ErrName::Enoent) => {}
                Err(e) => return Err(fail(p, e)),
            }
        }
        Ok(())
    })
}

/// Checks `-o xend=`: `unix:/ABSOLUTE/PATH` or `http://HOST:PORT`.
pub fn check_xend(url: &str) -> Result<()> {
    let ok = if let Some(path) = url.strip_prefix("unix:") {
        path.starts_with('/')
    } else if let Some(rest) = url.strip_prefix("http://") {
        let hostport = rest.trim_end_matches('/');
        matches!(hostport.rsplit_once(':'), Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok())
    } else {
        false
    };
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "xend={url}: use unix:/ABSOLUTE/PATH or http://HOST:PORT"
        )))
    }
}

/// Checks `-o libxl=`: only `none` (libxl is used wherever it can be).
pub fn check_libxl(value: &str) -> Result<()> {
    if value == "none" {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "libxl={value}: only libxl=none is known (libxl is used where it loads)"
        )))
    }
}

/// Checks `-o privcmd=`: an absolute device path or `none`.
pub fn check_privcmd(value: &str) -> Result<()> {
    if value == "none" || value.starts_with('/') {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "privcmd={value}: use an absolute device path or none"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_one_route() {
        use std::collections::HashSet;
        let mut seen = HashSet::new();
        for r in ROUTES {
            assert!(seen.insert(r.op), "{} routed twice", r.op);
        }
        assert_eq!(seen.len(), Operation::ALL.len(), "one route per Operation");
    }

    /// In dom0 (the back-end device exists) the socket is awaited, for up to
    /// SOCKET_PATIENCE; elsewhere, or with `-o xenstore=`, nothing is.
    #[test]
    fn retry_waits_for_the_socket_in_dom0_only() {
        use std::time::Duration;
        let dir = std::env::temp_dir().join(format!("domfs-ready-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (dev, sock) = (dir.join("xenbus_backend"), dir.join("socket"));
        let _ = std::fs::remove_file(&dev);
        let _ = std::fs::remove_file(&sock);
        let none = XenOptions::default();
        let early = Duration::from_secs(1);
        ready_at(&none, early, &dev, &sock).unwrap();
        std::fs::write(&dev, "").unwrap();
        let e = ready_at(&none, early, &dev, &sock).unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotConnected);
        assert!(e.message.contains("socket"), "{}", e.message);
        ready_at(&none, SOCKET_PATIENCE, &dev, &sock).unwrap();
        let named = XenOptions {
            xenstore: Some("/dev/xen/xenbus"),
            ..XenOptions::default()
        };
        ready_at(&named, early, &dev, &sock).unwrap();
        std::fs::write(&sock, "").unwrap();
        ready_at(&none, early, &dev, &sock).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
