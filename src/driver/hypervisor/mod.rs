//! The hypervisor driver: asks Xen directly through privcmd hypercalls for
//! domain state and info, vCPUs and their affinity, node info, free memory
//! per host and NUMA cell, and the version; and pauses, unpauses, destroys,
//! caps domains and pins vCPUs. It is the fastest source of state on
//! `xen:///`, so the dispatcher asks it first for those.
//!
//! Xen knows no names, so this driver does not list or look up domains: the
//! `DomainRef`s (name, UUID, id) come from xenstore, as in libvirt's
//! xen_unified. It checks that the id it is asked about still carries the
//! UUID it was given (Xen's domain handle is the UUID), so a reused id never
//! answers for another domain. It must never read a struct of an interface
//! version it does not know: see [`VERSIONS`].

pub mod caps;
pub mod poll;
pub mod sys;
#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests a panic is the failure report
mod tests;
pub mod vcpu;

use crate::driver::{Driver, DriverKind, Operation};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{CpuSet, DomainId, DomainInfo, DomainRef, Hypervisor, NodeInfo, State};
use crate::model::{SchedParam, Uuid, VcpuInfo, Version};
use sys::{DomctlSchedulerOp, Errno, GetDomainInfo, Hypercall, SysctlOut, XenDomctl, XenSysctl};

/// The domctl and sysctl interface versions of one Xen release. Xen refuses
/// (EACCES) any other version before reading the rest of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterfaceVersions {
    pub major: u32,
    pub minor: u32,
    pub sysctl: u32,
    pub domctl: u32,
}

/// The Xen releases whose structs this driver's layouts match, checked by
/// `tests/hypervisor_layout.rs` against libxen-dev. One entry per release:
/// adding one means checking its layouts (4.16's physinfo differs; 4.18
/// changed getdomaininfo's answer for a missing domain).
pub const VERSIONS: &[InterfaceVersions] = &[InterfaceVersions {
    major: 4,
    minor: 17,
    sysctl: 0x15,
    domctl: 0x15,
}];

/// Where privcmd lives: current kernels, then the xenfs file of old ones.
pub const DEFAULT_PATHS: [&str; 2] = ["/dev/xen/privcmd", "/proc/xen/privcmd"];

/// `XEN_DOMINF_*` bits (Xen 4.17 `domctl.h`).
pub mod flags {
    pub const DYING: u32 = 1 << 0;
    pub const HVM_GUEST: u32 = 1 << 1;
    pub const SHUTDOWN: u32 = 1 << 2;
    pub const PAUSED: u32 = 1 << 3;
    pub const BLOCKED: u32 = 1 << 4;
    pub const RUNNING: u32 = 1 << 5;
    pub const SHUTDOWN_SHIFT: u32 = 16;
    pub const SHUTDOWN_MASK: u32 = 0xff;
    /// `SHUTDOWN_crash` and `SHUTDOWN_watchdog` (`sched.h`).
    pub const REASON_CRASH: u32 = 3;
    pub const REASON_WATCHDOG: u32 = 4;
}

/// The state a domain's flags mean, testing bits in priority order (not
/// libvirt's exact-value match, which made paused+blocked "no state"). The
/// reason bits count only with the shutdown bit: they read 0xff otherwise.
pub fn state_from_flags(f: u32) -> State {
    if f & flags::DYING != 0 {
        return State::Shutdown;
    }
    if f & flags::SHUTDOWN != 0 {
        let reason = (f >> flags::SHUTDOWN_SHIFT) & flags::SHUTDOWN_MASK;
        return match reason {
            flags::REASON_CRASH | flags::REASON_WATCHDOG => State::Crashed,
            _ => State::ShutOff,
        };
    }
    if f & flags::PAUSED != 0 {
        State::Paused
    } else if f & flags::RUNNING != 0 {
        State::Running
    } else if f & flags::BLOCKED != 0 {
        State::Blocked
    } else {
        State::NoState
    }
}

/// The firmware HVM guests boot, where Debian's Xen 4.17 keeps it (and
/// where its libxl looks, as its log says when it is missing).
const HVMLOADER: &str = "/usr/lib/xen-4.17/boot/hvmloader";

/// KiB in one Xen page (4 KiB frames on x86).
const PAGE_KIB: u64 = 4;
/// Domain ids from here on are reserved (`DOMID_FIRST_RESERVED`).
const DOMID_FIRST_RESERVED: u32 = 0x7ff0;
/// Entries asked for per `getdomaininfolist` call.
const LIST_BATCH: usize = 64;
/// Bytes in one Xen page.
const PAGE_BYTES: u64 = PAGE_KIB * 1024;
/// The most NUMA nodes asked for (x86 Xen's `MAX_NUMNODES`).
const MAX_NODES: u32 = 64;
/// The most vCPUs read for one domain: above Xen's own limits (HVM 128,
/// PV 8192 with `max_vcpu_id` counting from 0), so a garbled answer cannot
/// make a read issue millions of hypercalls.
const MAX_VCPUS: u32 = 8192;

/// What the hypervisor itself reports about one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HvDomain {
    pub id: DomainId,
    pub uuid: Uuid,
    pub flags: u32,
    pub info: DomainInfo,
}

/// What must follow a destroy besides Xen's part: the toolstack's
/// bookkeeping (its xenstore entries), which Xen never removes.
pub type AfterDestroy = Box<dyn Fn(DomainId, Uuid) -> Result<()> + Send + Sync>;

pub struct HypervisorDriver {
    hc: std::sync::Arc<dyn Hypercall>,
    iface: InterfaceVersions,
    /// `XENVER_extraversion`, e.g. `.7`.
    extra: String,
    after_destroy: Option<AfterDestroy>,
    /// How often the poller compares domain lists (see `poll`); None never.
    poll_every: Option<std::time::Duration>,
}

impl HypervisorDriver {
    /// Opens privcmd: `Some("none")` disables the driver (`Ok(None)`), a
    /// path must open, and without one the default paths are tried, a host
    /// without either being no Xen host (`Ok(None)`).
    pub fn open(path: Option<&str>) -> Result<Option<HypervisorDriver>> {
        let path = match path {
            Some("none") => return Ok(None),
            Some(p) => p.to_string(),
            None => match DEFAULT_PATHS
                .iter()
                .find(|p| std::path::Path::new(p).exists())
            {
                Some(p) => p.to_string(),
                None => return Ok(None),
            },
        };
        let privcmd = sys::Privcmd::open(&path).map_err(|e| {
            let kind = match e.kind() {
                std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
                _ => ErrorKind::NotConnected,
            };
            Error::new(kind, format!("cannot open the privcmd device {path}: {e}"))
        })?;
        if !privcmd.has_buffer_device() {
            log::info!("no /dev/xen/hypercall: hypercall buffers are locked memory");
        }
        HypervisorDriver::with_hypercall(Box::new(privcmd)).map(Some)
    }

    /// Asks Xen its version and picks the matching interface versions;
    /// an unknown release is refused, never guessed at.
    pub fn with_hypercall(hc: Box<dyn Hypercall>) -> Result<HypervisorDriver> {
        let v = hc
            .xen_version(sys::XENVER_VERSION, None)
            .map_err(|e| xen_error("xen_version", e))?;
        let (major, minor) = ((v >> 16) as u32, (v & 0xffff) as u32);
        let iface = VERSIONS
            .iter()
            .find(|i| (i.major, i.minor) == (major, minor))
            .copied()
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotSupported,
                    format!(
                        "the hypervisor is Xen {major}.{minor}, whose domctl/sysctl interface \
                         this build does not know; it knows {}",
                        known_versions()
                    ),
                )
            })?;
        let mut buf = [0u8; sys::XENVER_EXTRAVERSION_LEN];
        hc.xen_version(sys::XENVER_EXTRAVERSION, Some(&mut buf))
            .map_err(|e| xen_error("xen_version extraversion", e))?;
        let driver = HypervisorDriver {
            hc: std::sync::Arc::from(hc),
            iface,
            extra: c_string(&buf),
            after_destroy: None,
            poll_every: None,
        };
        // One sysctl now: a guest's privcmd (EPERM) or a refused interface
        // version (EACCES) shows at open, not on the first read.
        driver.physinfo()?;
        Ok(driver)
    }

    /// Compares domain lists every `every` once the driver publishes
    /// (`poll_ms`); a zero interval turns polling off.
    pub fn poll_every(mut self, every: std::time::Duration) -> HypervisorDriver {
        self.poll_every = (!every.is_zero()).then_some(every);
        self
    }

    /// Runs `f` after every successful destroy (the connection removes the
    /// domain's xenstore entries there, as libxl's destroy does).
    pub fn after_destroy(mut self, f: AfterDestroy) -> HypervisorDriver {
        self.after_destroy = Some(f);
        self
    }

    /// `XENVER_capabilities`: e.g. `xen-3.0-x86_64 hvm-3.0-x86_32 ...`.
    pub fn capabilities(&self) -> Result<Vec<String>> {
        let mut buf = vec![0u8; sys::XENVER_CAPABILITIES_LEN];
        self.hc
            .xen_version(sys::XENVER_CAPABILITIES, Some(&mut buf))
            .map_err(|e| xen_error("xen_version capabilities", e))?;
        Ok(c_string(&buf)
            .split_whitespace()
            .map(str::to_string)
            .collect())
    }

    /// The extra version string (`XENVER_extraversion`).
    pub fn extra_version(&self) -> &str {
        &self.extra
    }

    /// Explains an errno of a domctl or sysctl; EACCES is how Xen refuses an
    /// interface version, so that message names both sides.
    fn ctl_error(&self, what: &str, e: Errno) -> Error {
        if e == libc::EACCES {
            return Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "{what}: Xen refused the request (EACCES): domfs sent the interface \
                     versions of Xen {}.{} (sysctl {:#x}, domctl {:#x}); a hypervisor of \
                     another release answers so",
                    self.iface.major, self.iface.minor, self.iface.sysctl, self.iface.domctl
                ),
            );
        }
        xen_error(what, e)
    }

    fn domctl(&self, what: &str, cmd: u32, id: DomainId) -> Result<XenDomctl> {
        let domid = domid(id)?;
        let mut op = XenDomctl::new(cmd, self.iface.domctl, domid);
        self.hc
            .domctl(&mut op, None)
            .map_err(|e| self.ctl_error(what, e))?;
        Ok(op)
    }

    /// `getdomaininfo` for exactly `id`: Xen 4.17 answers with the next
    /// higher domain when `id` is gone, so the returned id is checked.
    fn raw_info(&self, id: DomainId) -> Result<GetDomainInfo> {
        let op = self.domctl("getdomaininfo", sys::DOMCTL_GETDOMAININFO, id)?;
        let info = op.getdomaininfo();
        if u32::from(info.domain) != id.0 {
            return Err(Error::no_domain(format!("domain {id} does not exist")));
        }
        Ok(info)
    }

    /// Info of the domain `dom` names, refusing a reused id.
    fn checked_info(&self, dom: &DomainRef, op: Operation) -> Result<GetDomainInfo> {
        let Some(id) = dom.id else {
            // Inactive domains are xend's; Xen has never heard of them.
            return Err(Error::not_supported(op));
        };
        let info = self.raw_info(id)?;
        if info.handle != dom.uuid.0 {
            return Err(Error::no_domain(format!(
                "domain {id} is now another domain (uuid {}, not {})",
                Uuid(info.handle),
                dom.uuid
            )));
        }
        Ok(info)
    }

    fn to_info(&self, raw: &GetDomainInfo) -> Result<DomainInfo> {
        Ok(DomainInfo {
            state: state_from_flags(raw.flags),
            max_memory_kib: if raw.max_pages >= u64::from(u32::MAX) {
                // "No limit" (dom0 without dom0_mem=max:): the host's memory.
                self.physinfo()?.total_pages.saturating_mul(PAGE_KIB)
            } else {
                raw.max_pages.saturating_mul(PAGE_KIB)
            },
            memory_kib: raw.tot_pages.saturating_mul(PAGE_KIB),
            vcpus: raw.nr_online_vcpus,
            cpu_time_ns: raw.cpu_time,
        })
    }

    /// Every domain Xen has, in id order (`getdomaininfolist`), with its
    /// UUID and info: what the hypervisor alone can say.
    pub fn domains(&self) -> Result<Vec<HvDomain>> {
        let mut out = Vec::new();
        let mut first: u32 = 0;
        let mut batch = vec![GetDomainInfo::default(); LIST_BATCH];
        while first < DOMID_FIRST_RESERVED {
            let mut op = XenSysctl::new(sys::SYSCTL_GETDOMAININFOLIST, self.iface.sysctl);
            op.set_getdomaininfolist(sys::SysctlGetDomainInfoList {
                first_domain: first as u16,
                max_domains: LIST_BATCH as u32,
                ..Default::default()
            });
            self.hc
                .sysctl(&mut op, SysctlOut::Domains(&mut batch))
                .map_err(|e| self.ctl_error("getdomaininfolist", e))?;
            let n = (op.getdomaininfolist().num_domains as usize).min(LIST_BATCH);
            for raw in &batch[..n] {
                let id = u32::from(raw.domain);
                if id < first || id >= DOMID_FIRST_RESERVED {
                    return Err(Error::backend(format!(
                        "getdomaininfolist from {first} answered domain {id}"
                    )));
                }
                out.push(HvDomain {
                    id: DomainId(id),
                    uuid: Uuid(raw.handle),
                    flags: raw.flags,
                    info: self.to_info(raw)?,
                });
            }
            match out.last() {
                Some(last) if n == LIST_BATCH => first = last.id.0 + 1,
                _ => break,
            }
        }
        Ok(out)
    }

    /// What Xen says of domain `id`, whatever its UUID.
    pub fn domain_by_id(&self, id: DomainId) -> Result<HvDomain> {
        let raw = self.raw_info(id)?;
        Ok(HvDomain {
            id,
            uuid: Uuid(raw.handle),
            flags: raw.flags,
            info: self.to_info(&raw)?,
        })
    }

    fn physinfo(&self) -> Result<sys::SysctlPhysinfo> {
        let mut op = XenSysctl::new(sys::SYSCTL_PHYSINFO, self.iface.sysctl);
        self.hc
            .sysctl(&mut op, SysctlOut::None)
            .map_err(|e| self.ctl_error("physinfo", e))?;
        Ok(op.physinfo())
    }

    /// The scheduler of cpupool 0, which every domain domfs shows runs in
    /// unless moved (`xl cpupool-*`).
    fn sched_id(&self) -> Result<u32> {
        let mut op = XenSysctl::new(sys::SYSCTL_SCHED_ID, self.iface.sysctl);
        self.hc
            .sysctl(&mut op, SysctlOut::None)
            .map_err(|e| self.ctl_error("sched_id", e))?;
        Ok(op.sched_id().sched_id)
    }

    /// A weight-and-cap scheduler's parameters of `domain` (credit or
    /// credit2); other schedulers have none domfs shows.
    fn sched_params(&self, domain: u16, sched_id: u32) -> Result<Option<DomctlSchedulerOp>> {
        if !matches!(sched_id, sys::SCHEDULER_CREDIT | sys::SCHEDULER_CREDIT2) {
            return Ok(None);
        }
        let mut op = XenDomctl::new(sys::DOMCTL_SCHEDULER_OP, self.iface.domctl, domain);
        op.set_scheduler_op(DomctlSchedulerOp {
            sched_id,
            cmd: sys::SCHEDOP_GETINFO,
            ..DomctlSchedulerOp::default()
        });
        self.hc
            .domctl(&mut op, None)
            .map_err(|e| self.ctl_error("scheduler_op", e))?;
        Ok(Some(op.scheduler_op()))
    }

    /// The host CPUs a CPU map covers: `max_cpu_id + 1`, as libxl sizes its
    /// maps (CPUs that are offline still have their bit).
    fn cpu_bits(&self) -> Result<u32> {
        let p = self.physinfo()?;
        Ok(p.max_cpu_id
            .saturating_add(1)
            .min(crate::model::cpulist::MAX_CPU + 1))
    }

    /// `getvcpuaffinity` or `setvcpuaffinity` of the hard map: `map` goes
    /// to Xen and comes back as Xen wrote it.
    fn affinity(
        &self,
        cmd: u32,
        domain: u16,
        vcpu: u32,
        map: &mut [u8],
    ) -> std::result::Result<(), Errno> {
        let mut ctl = XenDomctl::new(cmd, self.iface.domctl, domain);
        ctl.set_vcpuaffinity(sys::DomctlVcpuAffinity {
            vcpu,
            flags: sys::VCPUAFFINITY_HARD,
            cpumap_hard: sys::XenctlBitmap {
                nr_bits: u32::try_from(map.len() * 8).unwrap_or(u32::MAX),
                ..Default::default()
            },
            ..Default::default()
        });
        self.hc.domctl(&mut ctl, Some(map))?;
        Ok(())
    }

    /// Each vCPU Xen has for the domain, `0..=max_vcpu_id` as `xl
    /// vcpu-list` lists them (offline ones too).
    fn vcpus(&self, raw: &GetDomainInfo) -> Result<Vec<VcpuInfo>> {
        let count = vcpu::vcpu_count(raw.max_vcpu_id);
        if count > MAX_VCPUS {
            return Err(Error::backend(format!(
                "getdomaininfo says domain {} has {count} vCPUs, more than Xen allows",
                raw.domain
            )));
        }
        let bits = self.cpu_bits()?;
        let mut out = Vec::with_capacity(count as usize);
        for n in 0..count {
            let mut ctl = XenDomctl::new(sys::DOMCTL_GETVCPUINFO, self.iface.domctl, raw.domain);
            ctl.set_getvcpuinfo(sys::DomctlGetVcpuInfo {
                vcpu: n,
                ..Default::default()
            });
            self.hc
                .domctl(&mut ctl, None)
                .map_err(|e| self.ctl_error("getvcpuinfo", e))?;
            let info = ctl.getvcpuinfo();
            let mut map = vec![0u8; vcpu::map_len(bits)];
            self.affinity(sys::DOMCTL_GETVCPUAFFINITY, raw.domain, n, &mut map)
                .map_err(|e| self.ctl_error("getvcpuaffinity", e))?;
            out.push(vcpu::vcpu_info(
                &sys::DomctlGetVcpuInfo { vcpu: n, ..info },
                vcpu::cpus_from_map(&map, bits),
            ));
        }
        Ok(out)
    }

    /// `numainfo`: how many nodes Xen has, then their sizes.
    fn nodes(&self) -> Result<Vec<sys::SysctlMeminfo>> {
        let mut op = XenSysctl::new(sys::SYSCTL_NUMAINFO, self.iface.sysctl);
        self.hc
            .sysctl(&mut op, SysctlOut::None)
            .map_err(|e| self.ctl_error("numainfo", e))?;
        let want = op.numainfo().num_nodes.min(MAX_NODES);
        let mut nodes = vec![sys::SysctlMeminfo::default(); want as usize];
        let mut op = XenSysctl::new(sys::SYSCTL_NUMAINFO, self.iface.sysctl);
        op.set_numainfo(sys::SysctlNumaInfo {
            num_nodes: want,
            ..Default::default()
        });
        self.hc
            .sysctl(&mut op, SysctlOut::Nodes(&mut nodes))
            .map_err(|e| self.ctl_error("numainfo", e))?;
        nodes.truncate(op.numainfo().num_nodes.min(want) as usize);
        Ok(nodes)
    }

    /// Checks the state table, then issues a domctl that changes `dom`.
    fn lifecycle(&self, dom: &DomainRef, op: Operation, cmd: u32) -> Result<()> {
        let raw = self.checked_info(dom, op)?;
        let state = state_from_flags(raw.flags);
        Error::check_state(op, state, dom.name.as_str())?;
        let id = DomainId(u32::from(raw.domain));
        let mut ctl = XenDomctl::new(cmd, self.iface.domctl, raw.domain);
        self.hc.domctl(&mut ctl, None).map_err(|e| match e {
            // Xen's EINVAL here: the domain we run in, or a pause count
            // that would leave its range.
            libc::EINVAL | libc::EOVERFLOW => Error::state(format!(
                "Xen refused to {op} domain {id} ({}); domfs cannot {op} the domain it \
                 runs in",
                errno_name(e)
            )),
            _ => self.ctl_error(op.as_str(), e),
        })?;
        Ok(())
    }
}

fn known_versions() -> String {
    VERSIONS
        .iter()
        .map(|i| {
            format!(
                "Xen {}.{} (sysctl {:#x}, domctl {:#x})",
                i.major, i.minor, i.sysctl, i.domctl
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A scheduler's name as `xl` prints it (`XEN_SCHEDULER_*`).
fn scheduler_name(id: u32) -> &'static str {
    match id {
        sys::SCHEDULER_CREDIT => "credit",
        sys::SCHEDULER_CREDIT2 => "credit2",
        sys::SCHEDULER_ARINC653 => "arinc653",
        sys::SCHEDULER_RTDS => "rtds",
        sys::SCHEDULER_NULL => "null",
        _ => "unknown",
    }
}

fn domid(id: DomainId) -> Result<u16> {
    if id.0 >= DOMID_FIRST_RESERVED {
        return Err(Error::no_domain(format!(
            "{id} is not a domain id (Xen's ids end below {DOMID_FIRST_RESERVED})"
        )));
    }
    Ok(id.0 as u16)
}

/// The text before the first NUL, lossily as UTF-8.
fn c_string(buf: &[u8]) -> String {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn errno_name(e: Errno) -> String {
    match e {
        libc::EPERM => "EPERM".into(),
        libc::ESRCH => "ESRCH".into(),
        libc::EACCES => "EACCES".into(),
        libc::EFAULT => "EFAULT".into(),
        libc::EINVAL => "EINVAL".into(),
        libc::ENOSYS => "ENOSYS".into(),
        libc::EOVERFLOW => "EOVERFLOW".into(),
        _ => format!("errno {e}"),
    }
}

/// The errno of a hypercall as the one error type.
fn xen_error(what: &str, e: Errno) -> Error {
    let name = errno_name(e);
    match e {
        libc::ESRCH => Error::no_domain(format!("{what}: no such domain ({name})")),
        libc::EPERM | libc::EACCES => Error::new(
            ErrorKind::PermissionDenied,
            format!("{what}: Xen refused ({name}); only the control domain (dom0) may ask"),
        ),
        libc::EFAULT => Error::backend(format!(
            "{what}: Xen could not reach the hypercall buffer ({name})"
        )),
        _ => Error::backend(format!("{what}: hypercall failed ({name})")),
    }
}

impl Driver for HypervisorDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Hypervisor
    }

    fn supports(&self, op: Operation) -> bool {
        match op {
            Operation::DomainInfo
            | Operation::NodeInfo
            | Operation::Hypervisor
            | Operation::Suspend
            | Operation::Resume
            | Operation::Destroy
            | Operation::SetMaxMemory
            | Operation::DomainMaxVcpus
            | Operation::NodeFreeMemory
            | Operation::NodeCellsFreeMemory
            | Operation::DomainVcpuInfo
            | Operation::PinVcpu => true,
            Operation::ListActive
            | Operation::ListDefined
            | Operation::LookupByName
            | Operation::LookupById
            | Operation::LookupByUuid
            | Operation::DomainOsType
            | Operation::DomainXml
            | Operation::DomainXmlInactive
            | Operation::CreateXml
            | Operation::DefineXml
            | Operation::Undefine
            | Operation::Start
            | Operation::Shutdown
            | Operation::Reboot
            | Operation::Save
            | Operation::Restore
            | Operation::SetMemory
            | Operation::SetVcpus => false,
            // Autostart is the toolstack's (libxl), not Xen's.
            Operation::DomainAutostart | Operation::SetAutostart => false,
            Operation::DomainSchedulerType
            | Operation::DomainSchedulerParams
            | Operation::SetSchedulerParam => true,
            Operation::NodeCapabilities => true,
            // Dumps and devices are the toolstack's (libxl); statistics
            // are not served here yet.
            Operation::CoreDump
            | Operation::AttachDevice
            | Operation::DetachDevice
            | Operation::DomainBlockStats
            | Operation::DomainInterfaceStats => false,
        }
    }

    /// Starts the poller (see `poll`) on a second handle to the same
    /// hypercall interface.
    fn publish_to(&self, bus: crate::events::Bus) {
        let Some(every) = self.poll_every else { return };
        let twin = HypervisorDriver {
            hc: self.hc.clone(),
            iface: self.iface,
            extra: self.extra.clone(),
            after_destroy: None,
            poll_every: None,
        };
        if let Err(e) = std::thread::Builder::new()
            .name("hv-poll".into())
            .spawn(move || poll::run(twin, bus, every))
        {
            log::warn!("hypervisor: no polling: {e}");
        }
    }

    fn domain_info(&self, dom: &DomainRef) -> Result<DomainInfo> {
        let raw = self.checked_info(dom, Operation::DomainInfo)?;
        self.to_info(&raw)
    }

    fn node_info(&self) -> Result<NodeInfo> {
        let p = self.physinfo()?;
        let nodes = p.nr_nodes.max(1);
        let per_socket = p.cores_per_socket.max(1) * p.threads_per_core.max(1);
        Ok(NodeInfo {
            model: std::env::consts::ARCH.to_string(),
            cpus: p.nr_cpus,
            mhz: p.cpu_khz / 1000,
            nodes,
            // libvirt's legacy driver: CPUs spread evenly over the cells.
            sockets: (p.nr_cpus / (nodes * per_socket)).max(1),
            cores: p.cores_per_socket,
            threads: p.threads_per_core,
            memory_kib: p.total_pages.saturating_mul(PAGE_KIB),
        })
    }

    fn hypervisor(&self) -> Result<Hypervisor> {
        let release = Version::xen_release(&self.extra);
        Ok(Hypervisor {
            kind: "Xen".into(),
            version: Version {
                major: self.iface.major,
                minor: self.iface.minor,
                release,
            },
        })
    }

    fn suspend(&self, dom: &DomainRef) -> Result<()> {
        self.lifecycle(dom, Operation::Suspend, sys::DOMCTL_PAUSEDOMAIN)
    }

    fn resume(&self, dom: &DomainRef) -> Result<()> {
        self.lifecycle(dom, Operation::Resume, sys::DOMCTL_UNPAUSEDOMAIN)
    }

    /// Any domain Xen still has can be destroyed, including one that shut
    /// down or crashed and waits for its toolstack: no state check.
    fn destroy(&self, dom: &DomainRef) -> Result<()> {
        let raw = self.checked_info(dom, Operation::Destroy)?;
        let mut ctl = XenDomctl::new(sys::DOMCTL_DESTROYDOMAIN, self.iface.domctl, raw.domain);
        self.hc.domctl(&mut ctl, None).map_err(|e| match e {
            libc::EINVAL => Error::state(format!(
                "Xen refused to destroy domain {} (EINVAL): domfs cannot destroy the domain \
                 it runs in",
                raw.domain
            )),
            _ => self.ctl_error("destroy", e),
        })?;
        match &self.after_destroy {
            Some(f) => f(DomainId(u32::from(raw.domain)), Uuid(raw.handle)).map_err(|e| {
                Error::new(
                    e.kind,
                    format!("domain {} destroyed, but: {}", raw.domain, e.message),
                )
            }),
            None => Ok(()),
        }
    }

    /// Xen caps a running domain's allocation at once (it does not reclaim
    /// memory already above the cap), so the model's "only when shut off"
    /// rule, which is the test driver's, does not apply here.
    fn set_max_memory(&self, dom: &DomainRef, kib: u64) -> Result<()> {
        let raw = self.checked_info(dom, Operation::SetMaxMemory)?;
        let mut ctl = XenDomctl::new(sys::DOMCTL_MAX_MEM, self.iface.domctl, raw.domain);
        ctl.set_max_mem(sys::DomctlMaxMem { max_memkb: kib });
        self.hc
            .domctl(&mut ctl, None)
            .map_err(|e| self.ctl_error("max_mem", e))?;
        Ok(())
    }

    fn domain_max_vcpus(&self, dom: &DomainRef) -> Result<u32> {
        let raw = self.checked_info(dom, Operation::DomainMaxVcpus)?;
        Ok(vcpu::vcpu_count(raw.max_vcpu_id))
    }

    fn domain_vcpu_info(&self, dom: &DomainRef) -> Result<Vec<VcpuInfo>> {
        let raw = self.checked_info(dom, Operation::DomainVcpuInfo)?;
        self.vcpus(&raw)
    }

    /// Sets the hard affinity, as `xl vcpu-pin DOM VCPU LIST` does. Every
    /// CPU must be one the host has (below physinfo's `max_cpu_id + 1`),
    /// checked before Xen is asked, so a bad list changes nothing; Xen
    /// itself refuses (EINVAL) a set with no CPU of the domain's pool.
    fn pin_vcpu(&self, dom: &DomainRef, vcpu: u32, cpus: CpuSet) -> Result<()> {
        let raw = self.checked_info(dom, Operation::PinVcpu)?;
        Error::check_state(
            Operation::PinVcpu,
            state_from_flags(raw.flags),
            dom.name.as_str(),
        )?;
        let count = vcpu::vcpu_count(raw.max_vcpu_id);
        if vcpu >= count {
            return Err(Error::invalid(format!(
                "vcpu {vcpu} is not present: domain '{}' has {count}",
                dom.name
            )));
        }
        let bits = self.cpu_bits()?;
        let mut map = vcpu::map_from_cpus(&cpus, bits).map_err(|missing| {
            Error::invalid(format!(
                "CPU {missing} in '{cpus}' is not on this host (it has CPUs 0-{})",
                bits.saturating_sub(1)
            ))
        })?;
        self.affinity(sys::DOMCTL_SETVCPUAFFINITY, raw.domain, vcpu, &mut map)
            .map_err(|e| match e {
                libc::EINVAL => Error::invalid(format!(
                    "Xen refused to pin vcpu {vcpu} of '{}' to {cpus} (EINVAL): none of \
                     those CPUs is online in the domain's CPU pool",
                    dom.name
                )),
                _ => self.ctl_error("setvcpuaffinity", e),
            })
    }

    /// The scheduler's name as `xl` and libvirt's libxl driver give it.
    fn domain_scheduler_type(&self, dom: &DomainRef) -> Result<String> {
        self.checked_info(dom, Operation::DomainSchedulerType)?;
        Ok(scheduler_name(self.sched_id()?).to_string())
    }

    /// Credit's and credit2's weight and cap (`xl sched-credit`,
    /// `xl sched-credit2`); none for the other schedulers.
    fn domain_scheduler_params(&self, dom: &DomainRef) -> Result<Vec<SchedParam>> {
        let raw = self.checked_info(dom, Operation::DomainSchedulerParams)?;
        let Some(p) = self.sched_params(raw.domain, self.sched_id()?)? else {
            return Ok(Vec::new());
        };
        Ok(vec![
            SchedParam {
                name: "weight".into(),
                value: u64::from(p.weight),
            },
            SchedParam {
                name: "cap".into(),
                value: u64::from(p.cap),
            },
        ])
    }

    /// Sets one of weight and cap, keeping the other as it is (libxl reads
    /// both and writes both back, as here). Weight is 1-65535 and cap
    /// 0-65535 (0: no cap), checked before Xen is asked; Xen refuses
    /// (EINVAL) a cap above 100 per vCPU.
    fn set_scheduler_param(&self, dom: &DomainRef, name: &str, value: u64) -> Result<()> {
        let raw = self.checked_info(dom, Operation::SetSchedulerParam)?;
        let id = self.sched_id()?;
        let Some(mut p) = self.sched_params(raw.domain, id)? else {
            return Err(Error::invalid(format!(
                "the {} scheduler has no parameter '{name}'",
                scheduler_name(id)
            )));
        };
        let fits = |lo: u64| u16::try_from(value).ok().filter(|v| u64::from(*v) >= lo);
        match (name, fits(1), fits(0)) {
            ("weight", Some(w), _) => p.weight = w,
            ("cap", _, Some(c)) => p.cap = c,
            ("weight", None, _) => {
                return Err(Error::invalid(format!(
                    "weight {value} is out of range (1-65535)"
                )))
            }
            ("cap", _, None) => {
                return Err(Error::invalid(format!(
                    "cap {value} is out of range (0-65535, 0 for none)"
                )))
            }
            _ => {
                return Err(Error::invalid(format!(
                    "the {} scheduler has no parameter '{name}' (weight, cap)",
                    scheduler_name(id)
                )))
            }
        }
        let mut op = XenDomctl::new(sys::DOMCTL_SCHEDULER_OP, self.iface.domctl, raw.domain);
        op.set_scheduler_op(DomctlSchedulerOp {
            cmd: sys::SCHEDOP_PUTINFO,
            ..p
        });
        self.hc.domctl(&mut op, None).map_err(|e| match e {
            libc::EINVAL => Error::invalid(format!(
                "Xen refused {name} {value} for '{}' (EINVAL)",
                dom.name
            )),
            _ => self.ctl_error("scheduler_op", e),
        })?;
        Ok(())
    }

    /// physinfo's free pages, in bytes (libvirt's `nodeGetFreeMemory`).
    fn node_free_memory(&self) -> Result<u64> {
        Ok(self.physinfo()?.free_pages.saturating_mul(PAGE_BYTES))
    }

    /// libvirt's capabilities of this host: Xen's guest kinds and the NUMA
    /// cells (with their CPUs where there is one cell, so all are its).
    fn node_capabilities(&self) -> Result<String> {
        let tokens = self.capabilities()?;
        let p = self.physinfo()?;
        let nodes = self.nodes()?;
        let all_cpus = || Some((0..p.nr_cpus).collect::<Vec<u32>>());
        let cells: Vec<caps::Cell> = if nodes.len() <= 1 {
            vec![caps::Cell {
                memory_kib: p.total_pages.saturating_mul(PAGE_KIB),
                cpus: all_cpus(),
            }]
        } else {
            nodes
                .iter()
                .map(|n| caps::Cell {
                    memory_kib: if n.memsize == sys::INVALID_MEM_SZ {
                        0
                    } else {
                        n.memsize / 1024
                    },
                    cpus: None,
                })
                .collect()
        };
        Ok(caps::capabilities(
            &tokens,
            &cells,
            std::env::consts::ARCH,
            HVMLOADER,
        ))
    }

    /// numainfo's free bytes of each node, by node number.
    fn node_cells_free_memory(&self) -> Result<Vec<u64>> {
        Ok(self.nodes()?.iter().map(vcpu::cell_free_bytes).collect())
    }
}
