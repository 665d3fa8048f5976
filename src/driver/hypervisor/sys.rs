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
pub const SYSCTL_GETDOMAININFOLIST: u32 = 6;
pub const DOMCTL_DESTROYDOMAIN: u32 = 2;
pub const DOMCTL_PAUSEDOMAIN: u32 = 3;
pub const DOMCTL_UNPAUSEDOMAIN: u32 = 4;
pub const DOMCTL_GETDOMAININFO: u32 = 5;
pub const DOMCTL_MAX_MEM: u32 = 11;

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

/// The 128-byte union `u` of `struct xen_sysctl`, restricted to the
/// commands domfs issues.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub union SysctlPayload {
    pub getdomaininfolist: SysctlGetDomainInfoList,
    pub physinfo: SysctlPhysinfo,
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

/// "Issue this hypercall": the one seam between the driver's logic and the
/// kernel. [`Privcmd`] is the real one; the unit tests use a test double.
pub trait Hypercall: Send + Sync {
    /// `xen_version(cmd, out)`: the hypercall's result, `out` filled for
    /// the sub-ops that return a string.
    fn xen_version(&self, cmd: u32, out: Option<&mut [u8]>) -> Result<i64, Errno>;
    /// `sysctl(op)`. For `getdomaininfolist` the implementation points the
    /// request's buffer handle at memory Xen may write and copies at most
    /// `out.len()` entries back.
    fn sysctl(&self, op: &mut XenSysctl, out: Option<&mut [GetDomainInfo]>) -> Result<i64, Errno>;
    /// `domctl(op)`.
    fn domctl(&self, op: &mut XenDomctl) -> Result<i64, Errno>;
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
    /// at a buffer that is gone); a command whose handles this does not know
    /// is refused.
    fn sysctl(&self, op: &mut XenSysctl, out: Option<&mut [GetDomainInfo]>) -> Result<i64, Errno> {
        let head = size_of::<XenSysctl>().next_multiple_of(8);
        let n = out.as_ref().map_or(0, |o| o.len());
        let mut buf = self.buf(head + n * size_of::<GetDomainInfo>())?;
        match op.cmd {
            SYSCTL_GETDOMAININFOLIST => {
                let mut list = op.getdomaininfolist();
                if n > 0 {
                    list.buffer = GuestHandle(buf.addr(head));
                    list.max_domains = list.max_domains.min(n as u32);
                } else {
                    list.buffer = GuestHandle::NULL;
                    list.max_domains = 0;
                }
                op.set_getdomaininfolist(list);
            }
            SYSCTL_PHYSINFO if n == 0 => {}
            _ => return Err(libc::EINVAL),
        }
        let addr = buf.put(0, op);
        let r = self.call(HYPERVISOR_SYSCTL, addr, 0);
        *op = buf.get(0);
        let r = r?;
        if let Some(out) = out {
            let got = (op.getdomaininfolist().num_domains as usize).min(n);
            for (i, slot) in out.iter_mut().enumerate().take(got) {
                *slot = buf.get(head + i * size_of::<GetDomainInfo>());
            }
        }
        Ok(r)
    }

    /// Only commands without guest handles (the ones domfs issues).
    fn domctl(&self, op: &mut XenDomctl) -> Result<i64, Errno> {
        match op.cmd {
            DOMCTL_DESTROYDOMAIN | DOMCTL_PAUSEDOMAIN | DOMCTL_UNPAUSEDOMAIN
            | DOMCTL_GETDOMAININFO | DOMCTL_MAX_MEM => {}
            _ => return Err(libc::EINVAL),
        }
        let mut buf = self.buf(size_of::<XenDomctl>())?;
        let addr = buf.put(0, op);
        let r = self.call(HYPERVISOR_DOMCTL, addr, 0);
        *op = buf.get(0);
        r
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
