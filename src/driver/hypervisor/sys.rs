//! The privcmd system interface: the `#[repr(C)]` structs Xen 4.17 reads and
//! writes, the hypercall ioctl, and the hypercall buffers Xen may touch while
//! a call runs. Every `unsafe` of the hypervisor driver lives here.
//!
//! This module knows layouts and the kernel interface, nothing of domains:
//! the driver fills the structs and reads them back through the safe
//! [`Hypercall`] trait. `LAYOUTS` lists every struct for the layout test,
//! which compares it with Xen's own headers (`tests/hypervisor_layout.rs`).

use std::fs::{File, OpenOptions};
use std::io;
use std::mem::{offset_of, size_of};
use std::os::fd::AsRawFd;

/// A positive errno as Xen (through the kernel) reported it.
pub type Errno = i32;

/// `struct privcmd_hypercall` (Linux `xen/privcmd.h`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct PrivcmdHypercall {
    pub op: u64,
    pub arg: [u64; 5],
}

/// `_IOC(_IOC_NONE, 'P', 0, sizeof(struct privcmd_hypercall))`.
pub const IOCTL_PRIVCMD_HYPERCALL: u64 = (size_of::<PrivcmdHypercall>() as u64) << 16 | 0x50 << 8;

pub const HYPERVISOR_XEN_VERSION: u64 = 17;
pub const HYPERVISOR_SYSCTL: u64 = 35;
pub const HYPERVISOR_DOMCTL: u64 = 36;

pub const XENVER_VERSION: u32 = 0;
pub const XENVER_EXTRAVERSION: u32 = 1;
pub const XENVER_CAPABILITIES: u32 = 3;
/// `xen_extraversion_t` and `xen_capabilities_info_t` sizes.
pub const XENVER_EXTRAVERSION_LEN: usize = 16;
pub const XENVER_CAPABILITIES_LEN: usize = 1024;

pub const SYSCTL_PHYSINFO: u32 = 3;
pub const SYSCTL_SCHED_ID: u32 = 4;
pub const SYSCTL_GETDOMAININFOLIST: u32 = 6;
pub const SYSCTL_NUMAINFO: u32 = 17;
pub const DOMCTL_DESTROYDOMAIN: u32 = 2;
pub const DOMCTL_PAUSEDOMAIN: u32 = 3;
pub const DOMCTL_UNPAUSEDOMAIN: u32 = 4;
pub const DOMCTL_GETDOMAININFO: u32 = 5;
pub const DOMCTL_SETVCPUAFFINITY: u32 = 9;
pub const DOMCTL_MAX_MEM: u32 = 11;
pub const DOMCTL_GETVCPUINFO: u32 = 14;
pub const DOMCTL_SCHEDULER_OP: u32 = 16;
/// `XEN_DOMCTL_SCHEDOP_putinfo` and `_getinfo`: a domain's parameters.
pub const SCHEDOP_PUTINFO: u32 = 0;
pub const SCHEDOP_GETINFO: u32 = 1;
/// The schedulers whose parameters are a weight and a cap.
pub const SCHEDULER_CREDIT: u32 = 5;
pub const SCHEDULER_CREDIT2: u32 = 6;
pub const SCHEDULER_ARINC653: u32 = 7;
pub const SCHEDULER_RTDS: u32 = 8;
pub const SCHEDULER_NULL: u32 = 9;
pub const DOMCTL_GETVCPUAFFINITY: u32 = 25;
/// `XEN_VCPUAFFINITY_HARD`: the CPUs a vCPU may run on (what `xl vcpu-pin`
/// sets first); soft affinity is a scheduling preference domfs leaves alone.
pub const VCPUAFFINITY_HARD: u32 = 1;
/// `XEN_INVALID_MAX_VCPU_ID`: getdomaininfo's `max_vcpu_id` of a domain
/// without vCPUs.
pub const INVALID_MAX_VCPU_ID: u32 = !0;
/// `XEN_INVALID_MEM_SZ` (`~0U`, stored in a u64 field): numainfo's sizes of
/// a node that is not online.
pub const INVALID_MEM_SZ: u64 = 0xffff_ffff;

/// The constants above under their C names, for the layout test.
pub const CONSTANTS: &[(&str, u64)] = &[
    ("__HYPERVISOR_xen_version", HYPERVISOR_XEN_VERSION),
    ("__HYPERVISOR_sysctl", HYPERVISOR_SYSCTL),
    ("__HYPERVISOR_domctl", HYPERVISOR_DOMCTL),
    ("IOCTL_PRIVCMD_HYPERCALL", IOCTL_PRIVCMD_HYPERCALL),
    ("XENVER_version", XENVER_VERSION as u64),
    ("XENVER_extraversion", XENVER_EXTRAVERSION as u64),
    ("XENVER_capabilities", XENVER_CAPABILITIES as u64),
    ("xen_extraversion_t", XENVER_EXTRAVERSION_LEN as u64),
    ("xen_capabilities_info_t", XENVER_CAPABILITIES_LEN as u64),
    ("XEN_SYSCTL_physinfo", SYSCTL_PHYSINFO as u64),
    (
        "XEN_SYSCTL_getdomaininfolist",
        SYSCTL_GETDOMAININFOLIST as u64,
    ),
    ("XEN_DOMCTL_destroydomain", DOMCTL_DESTROYDOMAIN as u64),
    ("XEN_DOMCTL_pausedomain", DOMCTL_PAUSEDOMAIN as u64),
    ("XEN_DOMCTL_unpausedomain", DOMCTL_UNPAUSEDOMAIN as u64),
    ("XEN_DOMCTL_getdomaininfo", DOMCTL_GETDOMAININFO as u64),
    ("XEN_DOMCTL_max_mem", DOMCTL_MAX_MEM as u64),
    ("XEN_SYSCTL_numainfo", SYSCTL_NUMAINFO as u64),
    ("XEN_DOMCTL_setvcpuaffinity", DOMCTL_SETVCPUAFFINITY as u64),
    ("XEN_DOMCTL_getvcpuinfo", DOMCTL_GETVCPUINFO as u64),
    ("XEN_DOMCTL_getvcpuaffinity", DOMCTL_GETVCPUAFFINITY as u64),
    ("XEN_VCPUAFFINITY_HARD", VCPUAFFINITY_HARD as u64),
    ("XEN_SYSCTL_sched_id", SYSCTL_SCHED_ID as u64),
    ("XEN_DOMCTL_scheduler_op", DOMCTL_SCHEDULER_OP as u64),
    ("XEN_DOMCTL_SCHEDOP_putinfo", SCHEDOP_PUTINFO as u64),
    ("XEN_DOMCTL_SCHEDOP_getinfo", SCHEDOP_GETINFO as u64),
    ("XEN_SCHEDULER_CREDIT", SCHEDULER_CREDIT as u64),
    ("XEN_SCHEDULER_CREDIT2", SCHEDULER_CREDIT2 as u64),
    ("XEN_SCHEDULER_ARINC653", SCHEDULER_ARINC653 as u64),
    ("XEN_SCHEDULER_RTDS", SCHEDULER_RTDS as u64),
    ("XEN_SCHEDULER_NULL", SCHEDULER_NULL as u64),
    ("XEN_INVALID_MAX_VCPU_ID", INVALID_MAX_VCPU_ID as u64),
    ("XEN_INVALID_MEM_SZ", INVALID_MEM_SZ),
];

/// `struct xen_arch_domainconfig` (x86).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArchDomainConfig {
    pub emulation_flags: u32,
    pub misc_flags: u32,
}

/// `struct xen_domctl_getdomaininfo` (Xen 4.17, 112 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GetDomainInfo {
    pub domain: u16,
    pub pad1: u16,
    pub flags: u32,
    pub tot_pages: u64,
    pub max_pages: u64,
    pub outstanding_pages: u64,
    pub shr_pages: u64,
    pub paged_pages: u64,
    pub shared_info_frame: u64,
    pub cpu_time: u64,
    pub nr_online_vcpus: u32,
    pub max_vcpu_id: u32,
    pub ssidref: u32,
    pub handle: [u8; 16],
    pub cpupool: u32,
    pub gpaddr_bits: u8,
    pub pad2: [u8; 7],
    pub arch_config: ArchDomainConfig,
}

/// `struct xen_domctl_max_mem`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DomctlMaxMem {
    pub max_memkb: u64,
}

/// `struct xen_domctl_getvcpuinfo` (24 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DomctlGetVcpuInfo {
    pub vcpu: u32,
    pub online: u8,
    pub blocked: u8,
    pub running: u8,
    pub pad0: u8,
    /// Nanoseconds.
    pub cpu_time: u64,
    /// The host CPU it runs on, or last ran on.
    pub cpu: u32,
    pub pad1: u32,
}

/// A guest handle: an address in this process that Xen writes through.
/// Only this module makes one (from a hypercall buffer it owns, right
/// before the call that uses it), so safe code cannot point Xen at any
/// other memory: the field is private and there is no constructor outside.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuestHandle(u64);

impl GuestHandle {
    /// The handle to nothing: Xen writes nowhere.
    pub const NULL: GuestHandle = GuestHandle(0);
}

/// `struct xen_sysctl_getdomaininfolist`. `buffer` is a guest handle: the
/// user address of the output array, which [`Hypercall::sysctl`] sets.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SysctlGetDomainInfoList {
    pub first_domain: u16,
    pub pad0: u16,
    pub max_domains: u32,
    pub buffer: GuestHandle,
    pub num_domains: u32,
    pub pad1: u32,
}

/// `struct xenctl_bitmap`: a guest handle to a byte map of `nr_bits` bits
/// (bit `n` is bit `n % 8` of byte `n / 8`). [`Hypercall::domctl`] sets
/// the handle and bounds `nr_bits` by the buffer it gives Xen.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XenctlBitmap {
    pub bitmap: GuestHandle,
    pub nr_bits: u32,
    pub pad: u32,
}

/// `struct xen_domctl_vcpuaffinity`, for both `getvcpuaffinity` and
/// `setvcpuaffinity` (in/out: Xen writes back the effective hard map).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DomctlVcpuAffinity {
    pub vcpu: u32,
    pub flags: u32,
    pub cpumap_hard: XenctlBitmap,
    pub cpumap_soft: XenctlBitmap,
}

/// `struct xen_sysctl_meminfo`: one NUMA node's sizes, in bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SysctlMeminfo {
    pub memsize: u64,
    pub memfree: u64,
}

/// `struct xen_sysctl_numainfo`. `meminfo` and `distance` are guest
/// handles that [`Hypercall::sysctl`] sets (distance always null: domfs
/// does not ask for the distance matrix).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SysctlNumaInfo {
    pub num_nodes: u32,
    pub pad: u32,
    pub meminfo: GuestHandle,
    pub distance: GuestHandle,
}

/// `struct xen_sysctl_physinfo` (Xen 4.17, 112 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SysctlPhysinfo {
    pub threads_per_core: u32,
    pub cores_per_socket: u32,
    pub nr_cpus: u32,
    pub max_cpu_id: u32,
    pub nr_nodes: u32,
    pub max_node_id: u32,
    pub cpu_khz: u32,
    pub capabilities: u32,
    pub arch_capabilities: u32,
    pub pad: u32,
    pub total_pages: u64,
    pub free_pages: u64,
    pub scrub_pages: u64,
    pub outstanding_pages: u64,
    pub max_mfn: u64,
    pub hw_cap: [u32; 8],
}

/// `struct xen_sysctl_sched_id`: the scheduler of cpupool 0.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SysctlSchedId {
    pub sched_id: u32,
}

/// `struct xen_domctl_scheduler_op` for the credit and credit2 schedulers:
/// their `u.credit` and `u.credit2` are the same two fields. The union's
/// other members (RTDS, and the per-vCPU form with a guest handle) are
/// never sent: `domctl` accepts this command only with those schedulers
/// and the domain-wide get and put.
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DomctlSchedulerOp {
    pub sched_id: u32,
    pub cmd: u32,
    pub weight: u16,
    pub cap: u16,
    pub pad: [u8; 12],
}

/// The 128-byte union `u` of `struct xen_sysctl`, restricted to the
/// commands domfs issues.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub union SysctlPayload {
    pub getdomaininfolist: SysctlGetDomainInfoList,
    pub physinfo: SysctlPhysinfo,
    pub numainfo: SysctlNumaInfo,
    pub sched_id: SysctlSchedId,
    pub pad: [u8; 128],
}

/// `struct xen_sysctl` (136 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct XenSysctl {
    pub cmd: u32,
    pub interface_version: u32,
    pub u: SysctlPayload,
}

/// The 128-byte union `u` of `struct xen_domctl`, restricted to the
/// commands domfs issues.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub union DomctlPayload {
    pub getdomaininfo: GetDomainInfo,
    pub max_mem: DomctlMaxMem,
    pub getvcpuinfo: DomctlGetVcpuInfo,
    pub vcpuaffinity: DomctlVcpuAffinity,
    pub scheduler_op: DomctlSchedulerOp,
    pub pad: [u8; 128],
}

/// `struct xen_domctl` (144 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct XenDomctl {
    pub cmd: u32,
    pub interface_version: u32,
    pub domain: u16,
    pub pad: [u16; 3],
    pub u: DomctlPayload,
}

impl XenSysctl {
    /// A zeroed request: Xen copies the whole struct both ways.
    pub fn new(cmd: u32, interface_version: u32) -> XenSysctl {
        XenSysctl {
            cmd,
            interface_version,
            u: SysctlPayload { pad: [0; 128] },
        }
    }
    pub fn getdomaininfolist(&self) -> SysctlGetDomainInfoList {
        // SAFETY: every variant is plain integers, valid for any bit pattern,
        // and the union is always fully initialised (created from `pad`).
        unsafe { self.u.getdomaininfolist }
    }
    pub fn set_getdomaininfolist(&mut self, v: SysctlGetDomainInfoList) {
        self.u.getdomaininfolist = v;
    }
    pub fn physinfo(&self) -> SysctlPhysinfo {
        // SAFETY: as in `getdomaininfolist`: plain integers, fully initialised.
        unsafe { self.u.physinfo }
    }
    pub fn set_physinfo(&mut self, v: SysctlPhysinfo) {
        self.u.physinfo = v;
    }
    pub fn numainfo(&self) -> SysctlNumaInfo {
        // SAFETY: as in `getdomaininfolist`: plain integers, fully initialised.
        unsafe { self.u.numainfo }
    }
    pub fn set_numainfo(&mut self, v: SysctlNumaInfo) {
        self.u.numainfo = v;
    }
    pub fn sched_id(&self) -> SysctlSchedId {
        // SAFETY: as in `getdomaininfolist`: plain integers, fully initialised.
        unsafe { self.u.sched_id }
    }
}

impl XenDomctl {
    /// A zeroed request for `domain`.
    pub fn new(cmd: u32, interface_version: u32, domain: u16) -> XenDomctl {
        XenDomctl {
            cmd,
            interface_version,
            domain,
            pad: [0; 3],
            u: DomctlPayload { pad: [0; 128] },
        }
    }
    pub fn getdomaininfo(&self) -> GetDomainInfo {
        // SAFETY: every variant is plain integers, valid for any bit pattern,
        // and the union is always fully initialised (created from `pad`).
        unsafe { self.u.getdomaininfo }
    }
    pub fn set_getdomaininfo(&mut self, v: GetDomainInfo) {
        self.u.getdomaininfo = v;
    }
    pub fn max_mem(&self) -> DomctlMaxMem {
        // SAFETY: as in `getdomaininfo`: plain integers, fully initialised.
        unsafe { self.u.max_mem }
    }
    pub fn set_max_mem(&mut self, v: DomctlMaxMem) {
        self.u.max_mem = v;
    }
    pub fn getvcpuinfo(&self) -> DomctlGetVcpuInfo {
        // SAFETY: as in `getdomaininfo`: plain integers, fully initialised.
        unsafe { self.u.getvcpuinfo }
    }
    pub fn set_getvcpuinfo(&mut self, v: DomctlGetVcpuInfo) {
        self.u.getvcpuinfo = v;
    }
    pub fn vcpuaffinity(&self) -> DomctlVcpuAffinity {
        // SAFETY: as in `getdomaininfo`: plain integers, fully initialised.
        unsafe { self.u.vcpuaffinity }
    }
    pub fn set_vcpuaffinity(&mut self, v: DomctlVcpuAffinity) {
        self.u.vcpuaffinity = v;
    }
    pub fn scheduler_op(&self) -> DomctlSchedulerOp {
        // SAFETY: as in `getdomaininfo`: plain integers, fully initialised.
        unsafe { self.u.scheduler_op }
    }
    pub fn set_scheduler_op(&mut self, v: DomctlSchedulerOp) {
        self.u.scheduler_op = v;
    }
}

/// One struct's size and field offsets as Rust lays them out, named as in
/// Xen's C headers, for the layout test.
#[derive(Debug)]
pub struct Layout {
    pub name: &'static str,
    pub size: usize,
    pub fields: &'static [(&'static str, usize)],
}

/// Every struct the driver hands to Xen or the kernel.
pub const LAYOUTS: &[Layout] = &[
    Layout {
        name: "privcmd_hypercall",
        size: size_of::<PrivcmdHypercall>(),
        fields: &[
            ("op", offset_of!(PrivcmdHypercall, op)),
            ("arg", offset_of!(PrivcmdHypercall, arg)),
        ],
    },
    Layout {
        name: "xen_sysctl",
        size: size_of::<XenSysctl>(),
        fields: &[
            ("cmd", offset_of!(XenSysctl, cmd)),
            (
                "interface_version",
                offset_of!(XenSysctl, interface_version),
            ),
            ("u", offset_of!(XenSysctl, u)),
        ],
    },
    Layout {
        name: "xen_domctl",
        size: size_of::<XenDomctl>(),
        fields: &[
            ("cmd", offset_of!(XenDomctl, cmd)),
            (
                "interface_version",
                offset_of!(XenDomctl, interface_version),
            ),
            ("domain", offset_of!(XenDomctl, domain)),
            ("u", offset_of!(XenDomctl, u)),
        ],
    },
    Layout {
        name: "xen_sysctl_sched_id",
        size: size_of::<SysctlSchedId>(),
        fields: &[("sched_id", offset_of!(SysctlSchedId, sched_id))],
    },
    Layout {
        name: "xen_domctl_scheduler_op",
        size: size_of::<DomctlSchedulerOp>(),
        fields: &[
            ("sched_id", offset_of!(DomctlSchedulerOp, sched_id)),
            ("cmd", offset_of!(DomctlSchedulerOp, cmd)),
            ("u.credit.weight", offset_of!(DomctlSchedulerOp, weight)),
            ("u.credit.cap", offset_of!(DomctlSchedulerOp, cap)),
            ("u.credit2.weight", offset_of!(DomctlSchedulerOp, weight)),
            ("u.credit2.cap", offset_of!(DomctlSchedulerOp, cap)),
        ],
    },
    Layout {
        name: "xen_domctl_getdomaininfo",
        size: size_of::<GetDomainInfo>(),
        fields: &[
            ("domain", offset_of!(GetDomainInfo, domain)),
            ("flags", offset_of!(GetDomainInfo, flags)),
            ("tot_pages", offset_of!(GetDomainInfo, tot_pages)),
            ("max_pages", offset_of!(GetDomainInfo, max_pages)),
            (
                "outstanding_pages",
                offset_of!(GetDomainInfo, outstanding_pages),
            ),
            ("shr_pages", offset_of!(GetDomainInfo, shr_pages)),
            ("paged_pages", offset_of!(GetDomainInfo, paged_pages)),
            (
                "shared_info_frame",
                offset_of!(GetDomainInfo, shared_info_frame),
            ),
            ("cpu_time", offset_of!(GetDomainInfo, cpu_time)),
            (
                "nr_online_vcpus",
                offset_of!(GetDomainInfo, nr_online_vcpus),
            ),
            ("max_vcpu_id", offset_of!(GetDomainInfo, max_vcpu_id)),
            ("ssidref", offset_of!(GetDomainInfo, ssidref)),
            ("handle", offset_of!(GetDomainInfo, handle)),
            ("cpupool", offset_of!(GetDomainInfo, cpupool)),
            ("gpaddr_bits", offset_of!(GetDomainInfo, gpaddr_bits)),
            ("arch_config", offset_of!(GetDomainInfo, arch_config)),
        ],
    },
    Layout {
        name: "xen_arch_domainconfig",
        size: size_of::<ArchDomainConfig>(),
        fields: &[
            (
                "emulation_flags",
                offset_of!(ArchDomainConfig, emulation_flags),
            ),
            ("misc_flags", offset_of!(ArchDomainConfig, misc_flags)),
        ],
    },
    Layout {
        name: "xen_domctl_max_mem",
        size: size_of::<DomctlMaxMem>(),
        fields: &[("max_memkb", offset_of!(DomctlMaxMem, max_memkb))],
    },
    Layout {
        name: "xen_domctl_getvcpuinfo",
        size: size_of::<DomctlGetVcpuInfo>(),
        fields: &[
            ("vcpu", offset_of!(DomctlGetVcpuInfo, vcpu)),
            ("online", offset_of!(DomctlGetVcpuInfo, online)),
            ("blocked", offset_of!(DomctlGetVcpuInfo, blocked)),
            ("running", offset_of!(DomctlGetVcpuInfo, running)),
            ("cpu_time", offset_of!(DomctlGetVcpuInfo, cpu_time)),
            ("cpu", offset_of!(DomctlGetVcpuInfo, cpu)),
        ],
    },
    Layout {
        name: "xenctl_bitmap",
        size: size_of::<XenctlBitmap>(),
        fields: &[
            ("bitmap", offset_of!(XenctlBitmap, bitmap)),
            ("nr_bits", offset_of!(XenctlBitmap, nr_bits)),
        ],
    },
    Layout {
        name: "xen_domctl_vcpuaffinity",
        size: size_of::<DomctlVcpuAffinity>(),
        fields: &[
            ("vcpu", offset_of!(DomctlVcpuAffinity, vcpu)),
            ("flags", offset_of!(DomctlVcpuAffinity, flags)),
            ("cpumap_hard", offset_of!(DomctlVcpuAffinity, cpumap_hard)),
            ("cpumap_soft", offset_of!(DomctlVcpuAffinity, cpumap_soft)),
        ],
    },
    Layout {
        name: "xen_sysctl_meminfo",
        size: size_of::<SysctlMeminfo>(),
        fields: &[
            ("memsize", offset_of!(SysctlMeminfo, memsize)),
            ("memfree", offset_of!(SysctlMeminfo, memfree)),
        ],
    },
    Layout {
        name: "xen_sysctl_numainfo",
        size: size_of::<SysctlNumaInfo>(),
        fields: &[
            ("num_nodes", offset_of!(SysctlNumaInfo, num_nodes)),
            ("meminfo", offset_of!(SysctlNumaInfo, meminfo)),
            ("distance", offset_of!(SysctlNumaInfo, distance)),
        ],
    },
    Layout {
        name: "xen_sysctl_getdomaininfolist",
        size: size_of::<SysctlGetDomainInfoList>(),
        fields: &[
            (
                "first_domain",
                offset_of!(SysctlGetDomainInfoList, first_domain),
            ),
            (
                "max_domains",
                offset_of!(SysctlGetDomainInfoList, max_domains),
            ),
            ("buffer", offset_of!(SysctlGetDomainInfoList, buffer)),
            (
                "num_domains",
                offset_of!(SysctlGetDomainInfoList, num_domains),
            ),
        ],
    },
    Layout {
        name: "xen_sysctl_physinfo",
        size: size_of::<SysctlPhysinfo>(),
        fields: &[
            (
                "threads_per_core",
                offset_of!(SysctlPhysinfo, threads_per_core),
            ),
            (
                "cores_per_socket",
                offset_of!(SysctlPhysinfo, cores_per_socket),
            ),
            ("nr_cpus", offset_of!(SysctlPhysinfo, nr_cpus)),
            ("max_cpu_id", offset_of!(SysctlPhysinfo, max_cpu_id)),
            ("nr_nodes", offset_of!(SysctlPhysinfo, nr_nodes)),
            ("max_node_id", offset_of!(SysctlPhysinfo, max_node_id)),
            ("cpu_khz", offset_of!(SysctlPhysinfo, cpu_khz)),
            ("capabilities", offset_of!(SysctlPhysinfo, capabilities)),
            (
                "arch_capabilities",
                offset_of!(SysctlPhysinfo, arch_capabilities),
            ),
            ("total_pages", offset_of!(SysctlPhysinfo, total_pages)),
            ("free_pages", offset_of!(SysctlPhysinfo, free_pages)),
            ("scrub_pages", offset_of!(SysctlPhysinfo, scrub_pages)),
            (
                "outstanding_pages",
                offset_of!(SysctlPhysinfo, outstanding_pages),
            ),
            ("max_mfn", offset_of!(SysctlPhysinfo, max_mfn)),
            ("hw_cap", offset_of!(SysctlPhysinfo, hw_cap)),
        ],
    },
];

/// The array a sysctl's guest handle points at, as the caller sees it:
/// [`Hypercall::sysctl`] gives Xen a buffer of the same length and copies
/// at most that many entries back.
pub enum SysctlOut<'a> {
    None,
    /// For `getdomaininfolist`.
    Domains(&'a mut [GetDomainInfo]),
    /// For `numainfo`.
    Nodes(&'a mut [SysctlMeminfo]),
}

impl SysctlOut<'_> {
    fn len(&self) -> usize {
        match self {
            SysctlOut::None => 0,
            SysctlOut::Domains(o) => o.len(),
            SysctlOut::Nodes(o) => o.len(),
        }
    }
    fn entry_size(&self) -> usize {
        match self {
            SysctlOut::None => 0,
            SysctlOut::Domains(_) => size_of::<GetDomainInfo>(),
            SysctlOut::Nodes(_) => size_of::<SysctlMeminfo>(),
        }
    }
}

/// "Issue this hypercall": the one seam between the driver's logic and the
/// kernel. [`Privcmd`] is the real one; the unit tests use a test double.
pub trait Hypercall: Send + Sync {
    /// `xen_version(cmd, out)`: the hypercall's result, `out` filled for
    /// the sub-ops that return a string.
    fn xen_version(&self, cmd: u32, out: Option<&mut [u8]>) -> Result<i64, Errno>;
    /// `sysctl(op)`. For `getdomaininfolist` and `numainfo` the
    /// implementation points the request's handles at memory Xen may write,
    /// caps the count asked for at `out`'s length and copies at most that
    /// many entries back.
    fn sysctl(&self, op: &mut XenSysctl, out: SysctlOut<'_>) -> Result<i64, Errno>;
    /// `domctl(op)`. For `getvcpuaffinity` and `setvcpuaffinity` (hard
    /// affinity only), `cpumap` is the CPU byte map: sent to Xen, and
    /// replaced by the map Xen writes back; `nr_bits` is capped at its size.
    fn domctl(&self, op: &mut XenDomctl, cpumap: Option<&mut [u8]>) -> Result<i64, Errno>;
}

const PAGE: usize = 4096;

/// Memory Xen may read and write while a hypercall runs: pages from
/// `/dev/xen/hypercall` (never migrated or swapped), or, on kernels without
/// that device, locked anonymous pages kept out of forks, as libxencall does.
struct HypercallBuf {
    ptr: *mut u8,
    len: usize,
}

impl HypercallBuf {
    fn new(bytes: usize, device: Option<&File>) -> io::Result<HypercallBuf> {
        let len = bytes.max(1).div_ceil(PAGE) * PAGE;
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let ptr = match device {
            Some(dev) => {
                // SAFETY: a fresh shared mapping of the buffer device; the
                // kernel picks the address, nothing else aliases it.
                unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        len,
                        prot,
                        libc::MAP_SHARED,
                        dev.as_raw_fd(),
                        0,
                    )
                }
            }
            None => {
                // SAFETY: a fresh private anonymous mapping; no aliasing.
                unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        len,
                        prot,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_LOCKED,
                        -1,
                        0,
                    )
                }
            }
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let buf = HypercallBuf {
            ptr: ptr.cast(),
            len,
        };
        if device.is_none() {
            // SAFETY: `ptr..ptr+len` is the mapping made above.
            if unsafe { libc::madvise(ptr, len, libc::MADV_DONTFORK) } != 0 {
                return Err(io::Error::last_os_error());
            }
            // Touch every page so it is present when Xen copies.
            // SAFETY: the mapping is `len` writable bytes.
            unsafe { std::ptr::write_bytes(buf.ptr, 0, len) };
        }
        Ok(buf)
    }

    /// Copies `value` to offset `at` and returns its address.
    fn put<T: Copy>(&mut self, at: usize, value: &T) -> u64 {
        assert!(at % std::mem::align_of::<T>() == 0 && at + size_of::<T>() <= self.len);
        // SAFETY: in bounds and aligned (checked above); T is plain old data.
        unsafe {
            let p = self.ptr.add(at).cast::<T>();
            p.write(*value);
            p as u64
        }
    }

    /// Copies `bytes` to offset `at` and returns their address.
    fn put_bytes(&mut self, at: usize, bytes: &[u8]) -> u64 {
        assert!(at + bytes.len() <= self.len);
        // SAFETY: in bounds (checked above); `bytes` is caller memory, never
        // inside this mapping, so the ranges do not overlap.
        unsafe {
            let p = self.ptr.add(at);
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
            p as u64
        }
    }

    fn get<T: Copy>(&self, at: usize) -> T {
        assert!(at % std::mem::align_of::<T>() == 0 && at + size_of::<T>() <= self.len);
        // SAFETY: in bounds and aligned (checked above); the bytes were
        // written as a T by `put` or by Xen, and every T used here is plain
        // integers, valid for any bit pattern.
        unsafe { self.ptr.add(at).cast::<T>().read() }
    }

    fn bytes(&self, at: usize, n: usize) -> &[u8] {
        assert!(at + n <= self.len);
        // SAFETY: in bounds (checked above); the mapping lives as long as self.
        unsafe { std::slice::from_raw_parts(self.ptr.add(at), n) }
    }

    fn addr(&self, at: usize) -> u64 {
        self.ptr as u64 + at as u64
    }
}

impl Drop for HypercallBuf {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `new` made; nothing borrows it
        // past `self`.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// The privcmd device (and the hypercall buffer device when present).
pub struct Privcmd {
    privcmd: File,
    buffers: Option<File>,
}

impl Privcmd {
    /// Opens `path` read-write, and `/dev/xen/hypercall` if it exists.
    pub fn open(path: &str) -> io::Result<Privcmd> {
        let privcmd = OpenOptions::new().read(true).write(true).open(path)?;
        let buffers = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/xen/hypercall")
            .ok();
        Ok(Privcmd { privcmd, buffers })
    }

    /// Whether buffers come from `/dev/xen/hypercall` (else locked memory).
    pub fn has_buffer_device(&self) -> bool {
        self.buffers.is_some()
    }

    fn buf(&self, bytes: usize) -> Result<HypercallBuf, Errno> {
        HypercallBuf::new(bytes, self.buffers.as_ref())
            .map_err(|e| e.raw_os_error().unwrap_or(libc::ENOMEM))
    }

    fn call(&self, op: u64, arg0: u64, arg1: u64) -> Result<i64, Errno> {
        let mut hc = PrivcmdHypercall {
            op,
            arg: [arg0, arg1, 0, 0, 0],
        };
        // SAFETY: the ioctl reads a `privcmd_hypercall` from `hc`, which
        // lives across the call; pointers inside `arg` point into hypercall
        // buffers that outlive the call (the callers hold them).
        let r = unsafe {
            libc::ioctl(
                self.privcmd.as_raw_fd(),
                IOCTL_PRIVCMD_HYPERCALL as libc::Ioctl,
                &mut hc as *mut PrivcmdHypercall,
            )
        };
        if r < 0 {
            Err(io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO))
        } else {
            Ok(i64::from(r))
        }
    }
}

impl Hypercall for Privcmd {
    fn xen_version(&self, cmd: u32, out: Option<&mut [u8]>) -> Result<i64, Errno> {
        match out {
            None => self.call(HYPERVISOR_XEN_VERSION, u64::from(cmd), 0),
            Some(out) => {
                let buf = self.buf(out.len())?;
                let r = self.call(HYPERVISOR_XEN_VERSION, u64::from(cmd), buf.addr(0))?;
                out.copy_from_slice(buf.bytes(0, out.len()));
                Ok(r)
            }
        }
    }

    /// Every guest handle of the request is set here, from `buf`, whatever
    /// the caller left in it (a handle copied from an earlier answer points
    /// at a buffer that is gone), and every count Xen writes up to is capped
    /// at the buffer's entries; a command whose handles this does not know,
    /// or an output array of the wrong kind, is refused.
    fn sysctl(&self, op: &mut XenSysctl, mut out: SysctlOut<'_>) -> Result<i64, Errno> {
        let head = size_of::<XenSysctl>().next_multiple_of(8);
        let n = out.len();
        let mut buf = self.buf(head + n * out.entry_size())?;
        let array = |buf: &HypercallBuf| {
            if n > 0 {
                GuestHandle(buf.addr(head))
            } else {
                GuestHandle::NULL
            }
        };
        let bound = u32::try_from(n).unwrap_or(u32::MAX);
        match (op.cmd, &out) {
            (SYSCTL_GETDOMAININFOLIST, SysctlOut::None | SysctlOut::Domains(_)) => {
                let mut list = op.getdomaininfolist();
                list.buffer = array(&buf);
                list.max_domains = list.max_domains.min(bound);
                op.set_getdomaininfolist(list);
            }
            // With both handles null Xen only reports how many nodes it has.
            (SYSCTL_NUMAINFO, SysctlOut::None | SysctlOut::Nodes(_)) => {
                let mut numa = op.numainfo();
                numa.meminfo = array(&buf);
                numa.distance = GuestHandle::NULL;
                if n > 0 {
                    numa.num_nodes = numa.num_nodes.min(bound);
                }
                op.set_numainfo(numa);
            }
            (SYSCTL_PHYSINFO | SYSCTL_SCHED_ID, SysctlOut::None) => {}
            _ => return Err(libc::EINVAL),
        }
        let addr = buf.put(0, op);
        let r = self.call(HYPERVISOR_SYSCTL, addr, 0);
        *op = buf.get(0);
        let r = r?;
        match &mut out {
            SysctlOut::None => {}
            SysctlOut::Domains(o) => {
                let got = (op.getdomaininfolist().num_domains as usize).min(n);
                for (i, slot) in o.iter_mut().enumerate().take(got) {
                    *slot = buf.get(head + i * size_of::<GetDomainInfo>());
                }
            }
            SysctlOut::Nodes(o) => {
                let got = (op.numainfo().num_nodes as usize).min(n);
                for (i, slot) in o.iter_mut().enumerate().take(got) {
                    *slot = buf.get(head + i * size_of::<SysctlMeminfo>());
                }
            }
        }
        Ok(r)
    }

    /// The commands domfs issues: those without guest handles, and the
    /// hard-affinity get and set, whose one bitmap handle is set here to a
    /// copy of `cpumap` (the soft map's handle is null, with no bits).
    fn domctl(&self, op: &mut XenDomctl, cpumap: Option<&mut [u8]>) -> Result<i64, Errno> {
        let head = size_of::<XenDomctl>().next_multiple_of(8);
        let map_len = cpumap.as_ref().map_or(0, |m| m.len());
        let mut buf = self.buf(head + map_len)?;
        match (op.cmd, &cpumap) {
            (
                DOMCTL_DESTROYDOMAIN | DOMCTL_PAUSEDOMAIN | DOMCTL_UNPAUSEDOMAIN
                | DOMCTL_GETDOMAININFO | DOMCTL_MAX_MEM | DOMCTL_GETVCPUINFO,
                None,
            ) => {}
            // Only the weight-and-cap schedulers, domain-wide: no member
            // with a guest handle is ever read by Xen.
            (DOMCTL_SCHEDULER_OP, None) => {
                let sched = op.scheduler_op();
                let known = matches!(sched.sched_id, SCHEDULER_CREDIT | SCHEDULER_CREDIT2);
                let domain_wide = matches!(sched.cmd, SCHEDOP_GETINFO | SCHEDOP_PUTINFO);
                if !known || !domain_wide {
                    return Err(libc::EINVAL);
                }
                op.set_scheduler_op(DomctlSchedulerOp {
                    pad: [0; 12],
                    ..sched
                });
            }
            (DOMCTL_GETVCPUAFFINITY | DOMCTL_SETVCPUAFFINITY, Some(map)) if !map.is_empty() => {
                let mut aff = op.vcpuaffinity();
                if aff.flags != VCPUAFFINITY_HARD {
                    return Err(libc::EINVAL);
                }
                let bits = u32::try_from(map_len.saturating_mul(8)).unwrap_or(u32::MAX);
                aff.cpumap_hard = XenctlBitmap {
                    bitmap: GuestHandle(buf.put_bytes(head, map)),
                    nr_bits: aff.cpumap_hard.nr_bits.min(bits),
                    pad: 0,
                };
                aff.cpumap_soft = XenctlBitmap::default();
                op.set_vcpuaffinity(aff);
            }
            _ => return Err(libc::EINVAL),
        }
        let addr = buf.put(0, op);
        let r = self.call(HYPERVISOR_DOMCTL, addr, 0);
        *op = buf.get(0);
        let r = r?;
        if let Some(map) = cpumap {
            map.copy_from_slice(buf.bytes(head, map_len));
        }
        Ok(r)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn sizes_match_the_documented_abi() {
        assert_eq!(IOCTL_PRIVCMD_HYPERCALL, 0x0030_5000);
        assert_eq!(size_of::<XenSysctl>(), 136);
        assert_eq!(size_of::<XenDomctl>(), 144);
        assert_eq!(size_of::<GetDomainInfo>(), 112);
        assert_eq!(size_of::<SysctlPhysinfo>(), 112);
        assert_eq!(size_of::<SysctlGetDomainInfoList>(), 24);
        assert_eq!(size_of::<DomctlGetVcpuInfo>(), 24);
        assert_eq!(size_of::<DomctlVcpuAffinity>(), 40);
        assert_eq!(size_of::<SysctlNumaInfo>(), 24);
    }

    #[test]
    fn locked_buffers_round_trip_values() {
        // The fallback allocation (no buffer device), on any Linux host.
        let mut b = HypercallBuf::new(10, None).unwrap();
        assert_eq!(b.len, PAGE);
        let v = DomctlMaxMem { max_memkb: 42 };
        let addr = b.put(8, &v);
        assert_eq!(addr, b.addr(8));
        assert_eq!(b.get::<DomctlMaxMem>(8), v);
    }

    /// A privcmd that is not one: every ioctl that reaches the kernel
    /// fails with ENOTTY, so EINVAL means the allowlist refused first.
    fn not_privcmd() -> Privcmd {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .unwrap();
        Privcmd {
            privcmd: f,
            buffers: None,
        }
    }

    fn affinity_op(cmd: u32, flags: u32, nr_bits: u32) -> XenDomctl {
        let mut op = XenDomctl::new(cmd, 0x15, 1);
        op.set_vcpuaffinity(DomctlVcpuAffinity {
            flags,
            cpumap_hard: XenctlBitmap {
                nr_bits,
                ..Default::default()
            },
            ..Default::default()
        });
        op
    }

    fn sched_op(sched_id: u32, cmd: u32) -> XenDomctl {
        let mut op = XenDomctl::new(DOMCTL_SCHEDULER_OP, 0x15, 1);
        op.set_scheduler_op(DomctlSchedulerOp {
            sched_id,
            cmd,
            ..DomctlSchedulerOp::default()
        });
        op
    }

    #[test]
    fn domctl_refuses_what_its_allowlist_does_not_name() {
        let p = not_privcmd();
        let mut map = [0u8; 2];
        let get = DOMCTL_GETVCPUAFFINITY;
        let refused = [
            (affinity_op(get, VCPUAFFINITY_HARD, 16), false),
            (affinity_op(get, 2, 16), true),
            (affinity_op(get, VCPUAFFINITY_HARD | 2, 16), true),
            (XenDomctl::new(DOMCTL_GETVCPUINFO, 0x15, 1), true),
            // setvcpucontext has a handle this module does not know.
            (XenDomctl::new(12, 0x15, 1), false),
            // RTDS's per-vCPU form carries a handle; only credit and
            // credit2, domain-wide, pass.
            (sched_op(SCHEDULER_RTDS, SCHEDOP_GETINFO), false),
            (sched_op(SCHEDULER_CREDIT, 2), false),
            (sched_op(SCHEDULER_CREDIT2, SCHEDOP_PUTINFO), true),
        ];
        for (mut op, with_map) in refused {
            let m = with_map.then_some(&mut map[..]);
            assert_eq!(p.domctl(&mut op, m), Err(libc::EINVAL), "cmd {}", op.cmd);
        }
        let mut op = affinity_op(DOMCTL_SETVCPUAFFINITY, VCPUAFFINITY_HARD, 16);
        assert_eq!(p.domctl(&mut op, Some(&mut [])), Err(libc::EINVAL));
    }

    #[test]
    fn domctl_sets_the_bitmap_handle_and_bounds_its_bits() {
        let p = not_privcmd();
        let mut map = [0u8; 2];
        // The caller asks for more bits than its map holds, with a stray
        // soft handle left over: both are redone before the call.
        let mut op = affinity_op(DOMCTL_SETVCPUAFFINITY, VCPUAFFINITY_HARD, 4096);
        let mut aff = op.vcpuaffinity();
        aff.cpumap_soft.nr_bits = 64;
        op.set_vcpuaffinity(aff);
        assert_eq!(p.domctl(&mut op, Some(&mut map)), Err(libc::ENOTTY));
        let sent = op.vcpuaffinity();
        assert_eq!(sent.cpumap_hard.nr_bits, 16);
        assert_ne!(sent.cpumap_hard.bitmap, GuestHandle::NULL);
        assert_eq!(sent.cpumap_soft, XenctlBitmap::default());
        let mut op = XenDomctl::new(DOMCTL_GETVCPUINFO, 0x15, 1);
        assert_eq!(p.domctl(&mut op, None), Err(libc::ENOTTY));
    }

    #[test]
    fn sysctl_pairs_each_command_with_its_array() {
        let p = not_privcmd();
        let mut nodes = [SysctlMeminfo::default(); 2];
        let mut doms = [GetDomainInfo::default(); 2];
        let mut op = XenSysctl::new(SYSCTL_NUMAINFO, 0x15);
        assert_eq!(
            p.sysctl(&mut op, SysctlOut::Domains(&mut doms)),
            Err(libc::EINVAL)
        );
        let mut op = XenSysctl::new(SYSCTL_PHYSINFO, 0x15);
        assert_eq!(
            p.sysctl(&mut op, SysctlOut::Nodes(&mut nodes)),
            Err(libc::EINVAL)
        );
        let mut op = XenSysctl::new(SYSCTL_GETDOMAININFOLIST, 0x15);
        assert_eq!(
            p.sysctl(&mut op, SysctlOut::Nodes(&mut nodes)),
            Err(libc::EINVAL)
        );
        // numainfo: num_nodes capped at the array, distance always null.
        let mut op = XenSysctl::new(SYSCTL_NUMAINFO, 0x15);
        op.set_numainfo(SysctlNumaInfo {
            num_nodes: 64,
            ..Default::default()
        });
        assert_eq!(
            p.sysctl(&mut op, SysctlOut::Nodes(&mut nodes)),
            Err(libc::ENOTTY)
        );
        let sent = op.numainfo();
        assert_eq!(sent.num_nodes, 2);
        assert_ne!(sent.meminfo, GuestHandle::NULL);
        assert_eq!(sent.distance, GuestHandle::NULL);
        // Without an array both handles are null: the count query.
        let mut op = XenSysctl::new(SYSCTL_NUMAINFO, 0x15);
        assert_eq!(p.sysctl(&mut op, SysctlOut::None), Err(libc::ENOTTY));
        assert_eq!(op.numainfo().meminfo, GuestHandle::NULL);
    }

    #[test]
    fn union_accessors_see_what_was_set() {
        let mut d = XenDomctl::new(5, 0x15, 3);
        assert_eq!(d.getdomaininfo(), GetDomainInfo::default());
        d.set_max_mem(DomctlMaxMem { max_memkb: 7 });
        assert_eq!(d.max_mem().max_memkb, 7);
        let mut s = XenSysctl::new(3, 0x15);
        s.set_physinfo(SysctlPhysinfo {
            nr_cpus: 2,
            ..Default::default()
        });
        assert_eq!(s.physinfo().nr_cpus, 2);
    }
}
