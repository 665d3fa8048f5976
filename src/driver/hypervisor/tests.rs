//! Unit tests of the driver's logic over `FakeXen`, a test double (named as
//! such) of the hypercall seam: a real Xen runs only in the lab
//! (`scripts/xen-lab`), which checks the same operations against `xl`.
//! FakeXen follows Xen 4.17's documented behaviour: the interface version
//! check first (EACCES), getdomaininfo's next-higher-domain answer, EINVAL
//! for pausing itself, reference-counted pause.

use super::sys::{self, Errno, GetDomainInfo, Hypercall, SysctlOut, XenDomctl, XenSysctl};
use super::*;
use crate::model::{DomainName, VcpuState};
use std::sync::Mutex;

#[derive(Clone)]
struct FakeDomain {
    info: GetDomainInfo,
    pause_count: u32,
    /// Each vCPU's hard affinity, one bit per host CPU (None: all CPUs,
    /// Xen's default).
    affinity: Vec<Option<u64>>,
}

struct FakeXen {
    version: i64,
    iface: (u32, u32),
    /// False: the caller is a guest, and sysctl/domctl answer EPERM.
    control: bool,
    domains: Mutex<Vec<FakeDomain>>,
    /// Every domctl/sysctl command issued, in order.
    calls: Mutex<Vec<u32>>,
    /// Host CPUs (physinfo's `max_cpu_id + 1`; all online).
    cpus: u32,
    /// NUMA nodes: (memsize, memfree) in bytes; None is a node not online.
    nodes: Vec<Option<(u64, u64)>>,
}

const UNSHUT: u32 = 0xffff << 16;

fn dom_info(id: u16, uuid: u8, flags: u32, pages: u64) -> GetDomainInfo {
    GetDomainInfo {
        domain: id,
        flags,
        tot_pages: pages,
        max_pages: pages + 256,
        cpu_time: 1_500_000_000,
        nr_online_vcpus: 1,
        handle: [uuid; 16],
        ..Default::default()
    }
}

impl FakeXen {
    fn new() -> FakeXen {
        FakeXen {
            version: 0x40011,
            iface: (0x15, 0x15),
            control: true,
            domains: Mutex::new(vec![
                FakeDomain::new(GetDomainInfo {
                    max_pages: u64::from(u32::MAX),
                    max_vcpu_id: 1,
                    nr_online_vcpus: 2,
                    ..dom_info(0, 0, flags::RUNNING | UNSHUT, 131072)
                }),
                FakeDomain::new(dom_info(3, 3, flags::BLOCKED | UNSHUT, 32768)),
            ]),
            calls: Mutex::new(Vec::new()),
            cpus: 2,
            nodes: vec![Some((2 << 30, 1 << 30))],
        }
    }

    fn add(&self, info: GetDomainInfo) {
        let mut d = self.domains.lock().unwrap();
        d.push(FakeDomain::new(info));
        d.sort_by_key(|x| x.info.domain);
    }

    fn count(&self, cmd: u32) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|&&c| c == cmd)
            .count()
    }
}

impl FakeDomain {
    fn new(info: GetDomainInfo) -> FakeDomain {
        FakeDomain {
            info,
            pause_count: 0,
            affinity: vec![None; super::vcpu::vcpu_count(info.max_vcpu_id) as usize],
        }
    }
}

impl Hypercall for FakeXen {
    fn xen_version(&self, cmd: u32, out: Option<&mut [u8]>) -> std::result::Result<i64, Errno> {
        match (cmd, out) {
            (sys::XENVER_VERSION, None) => Ok(self.version),
            (sys::XENVER_EXTRAVERSION, Some(b)) => {
                b.fill(0);
                b[..2].copy_from_slice(b".7");
                Ok(0)
            }
            (sys::XENVER_CAPABILITIES, Some(b)) => {
                let caps = b"xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_64 ";
                b.fill(0);
                b[..caps.len()].copy_from_slice(caps);
                Ok(0)
            }
            _ => Err(libc::EINVAL),
        }
    }

    fn sysctl(&self, op: &mut XenSysctl, out: SysctlOut<'_>) -> std::result::Result<i64, Errno> {
        self.calls.lock().unwrap().push(op.cmd);
        if !self.control {
            return Err(libc::EPERM);
        }
        if op.interface_version != self.iface.0 {
            return Err(libc::EACCES);
        }
        match op.cmd {
            sys::SYSCTL_PHYSINFO => {
                op.set_physinfo(sys::SysctlPhysinfo {
                    threads_per_core: 1,
                    cores_per_socket: 2,
                    nr_cpus: self.cpus,
                    max_cpu_id: self.cpus - 1,
                    nr_nodes: 1,
                    cpu_khz: 2_400_000,
                    total_pages: 524_288,
                    free_pages: 100_000,
                    ..Default::default()
                });
                Ok(0)
            }
            sys::SYSCTL_GETDOMAININFOLIST => {
                let SysctlOut::Domains(out) = out else {
                    return Err(libc::EFAULT);
                };
                let mut req = op.getdomaininfolist();
                let max = (req.max_domains as usize).min(out.len());
                let doms = self.domains.lock().unwrap();
                let mut n = 0;
                for d in doms.iter().filter(|d| d.info.domain >= req.first_domain) {
                    if n == max {
                        break;
                    }
                    out[n] = d.info;
                    n += 1;
                }
                req.num_domains = n as u32;
                op.set_getdomaininfolist(req);
                Ok(0)
            }
            // As 4.17: null handles ask for the count; otherwise at most
            // num_nodes entries, and num_nodes says how many were written.
            sys::SYSCTL_NUMAINFO => {
                let mut req = op.numainfo();
                match out {
                    SysctlOut::None => req.num_nodes = self.nodes.len() as u32,
                    SysctlOut::Nodes(out) => {
                        let n = self.nodes.len().min(req.num_nodes as usize).min(out.len());
                        for (slot, node) in out.iter_mut().zip(&self.nodes).take(n) {
                            let (memsize, memfree) =
                                node.unwrap_or((sys::INVALID_MEM_SZ, sys::INVALID_MEM_SZ));
                            *slot = sys::SysctlMeminfo { memsize, memfree };
                        }
                        req.num_nodes = n as u32;
                    }
                    SysctlOut::Domains(_) => return Err(libc::EFAULT),
                }
                op.set_numainfo(req);
                Ok(0)
            }
            _ => Err(libc::ENOSYS),
        }
    }

    fn domctl(
        &self,
        op: &mut XenDomctl,
        cpumap: Option<&mut [u8]>,
    ) -> std::result::Result<i64, Errno> {
        self.calls.lock().unwrap().push(op.cmd);
        if !self.control {
            return Err(libc::EPERM);
        }
        if op.interface_version != self.iface.1 {
            return Err(libc::EACCES);
        }
        let mut doms = self.domains.lock().unwrap();
        if op.cmd == sys::DOMCTL_GETDOMAININFO {
            // Xen 4.17: the asked-for domain or the next higher one.
            let d = doms
                .iter()
                .find(|d| d.info.domain >= op.domain)
                .ok_or(libc::ESRCH)?;
            op.domain = d.info.domain;
            op.set_getdomaininfo(d.info);
            return Ok(0);
        }
        let pos = doms
            .iter()
            .position(|d| d.info.domain == op.domain)
            .ok_or(libc::ESRCH)?;
        let d = &mut doms[pos];
        match op.cmd {
            sys::DOMCTL_PAUSEDOMAIN | sys::DOMCTL_UNPAUSEDOMAIN | sys::DOMCTL_DESTROYDOMAIN
                if op.domain == 0 =>
            {
                Err(libc::EINVAL)
            }
            sys::DOMCTL_PAUSEDOMAIN => {
                d.pause_count += 1;
                d.info.flags |= flags::PAUSED;
                Ok(0)
            }
            sys::DOMCTL_UNPAUSEDOMAIN => {
                d.pause_count = d.pause_count.checked_sub(1).ok_or(libc::EINVAL)?;
                if d.pause_count == 0 {
                    d.info.flags &= !flags::PAUSED;
                }
                Ok(0)
            }
            sys::DOMCTL_DESTROYDOMAIN => {
                doms.remove(pos);
                Ok(0)
            }
            sys::DOMCTL_MAX_MEM => {
                d.info.max_pages = op.max_mem().max_memkb >> 2;
                Ok(0)
            }
            sys::DOMCTL_GETVCPUINFO => {
                let mut v = op.getvcpuinfo();
                if v.vcpu as usize >= d.affinity.len() {
                    return Err(libc::EINVAL);
                }
                let online = v.vcpu < d.info.nr_online_vcpus;
                let pin = d.affinity[v.vcpu as usize].unwrap_or(!0);
                v.online = u8::from(online);
                v.blocked = u8::from(d.info.flags & flags::BLOCKED != 0);
                v.running = u8::from(d.info.flags & flags::RUNNING != 0);
                v.cpu_time = 1_000_000 * u64::from(v.vcpu + 1);
                v.cpu = pin.trailing_zeros().min(self.cpus - 1);
                op.set_getvcpuinfo(v);
                Ok(0)
            }
            // Xen 4.17's vcpu_affinity_domctl, for the hard map: the vCPU
            // must exist, the map must name an online CPU, and the map
            // comes back as Xen keeps it.
            sys::DOMCTL_GETVCPUAFFINITY | sys::DOMCTL_SETVCPUAFFINITY => {
                let a = op.vcpuaffinity();
                let map = cpumap.ok_or(libc::EFAULT)?;
                if a.vcpu as usize >= d.affinity.len() || a.flags != sys::VCPUAFFINITY_HARD {
                    return Err(libc::EINVAL);
                }
                let bits = a.cpumap_hard.nr_bits.min(map.len() as u32 * 8).min(64);
                let all = if self.cpus >= 64 {
                    !0
                } else {
                    (1u64 << self.cpus) - 1
                };
                if op.cmd == sys::DOMCTL_SETVCPUAFFINITY {
                    let mut want = 0u64;
                    for n in 0..bits {
                        if map[(n / 8) as usize] & (1 << (n % 8)) != 0 {
                            want |= 1 << n;
                        }
                    }
                    if want & all == 0 {
                        return Err(libc::EINVAL);
                    }
                    d.affinity[a.vcpu as usize] = Some(want);
                }
                let have = d.affinity[a.vcpu as usize].unwrap_or(!0);
                map.fill(0);
                for n in 0..bits {
                    if have & (1 << n) != 0 {
                        map[(n / 8) as usize] |= 1 << (n % 8);
                    }
                }
                Ok(0)
            }
            _ => Err(libc::ENOSYS),
        }
    }
}

/// Lets a test keep looking at the double after the driver took it.
struct Shared(std::sync::Arc<FakeXen>);
impl Hypercall for Shared {
    fn xen_version(&self, c: u32, o: Option<&mut [u8]>) -> std::result::Result<i64, Errno> {
        self.0.xen_version(c, o)
    }
    fn sysctl(&self, op: &mut XenSysctl, o: SysctlOut<'_>) -> std::result::Result<i64, Errno> {
        self.0.sysctl(op, o)
    }
    fn domctl(&self, op: &mut XenDomctl, m: Option<&mut [u8]>) -> std::result::Result<i64, Errno> {
        self.0.domctl(op, m)
    }
}

fn driver() -> (HypervisorDriver, std::sync::Arc<FakeXen>) {
    let xen = std::sync::Arc::new(FakeXen::new());
    let d = HypervisorDriver::with_hypercall(Box::new(Shared(xen.clone()))).unwrap();
    (d, xen)
}

fn dref(id: u32, uuid: u8) -> DomainRef {
    DomainRef {
        name: DomainName(format!("d{id}")),
        uuid: Uuid([uuid; 16]),
        id: Some(DomainId(id)),
    }
}

#[test]
fn state_follows_bit_priority() {
    let reason = |r: u32| flags::SHUTDOWN | (r << 16);
    assert_eq!(state_from_flags(flags::DYING | reason(3)), State::Shutdown);
    assert_eq!(state_from_flags(reason(3)), State::Crashed);
    assert_eq!(state_from_flags(reason(4)), State::Crashed);
    assert_eq!(state_from_flags(reason(0)), State::ShutOff);
    assert_eq!(state_from_flags(reason(1) | flags::PAUSED), State::ShutOff);
    // libvirt's exact match made these two "nostate".
    assert_eq!(
        state_from_flags(flags::PAUSED | flags::BLOCKED | UNSHUT),
        State::Paused
    );
    assert_eq!(
        state_from_flags(flags::RUNNING | flags::HVM_GUEST | 0x100 | UNSHUT),
        State::Running
    );
    assert_eq!(state_from_flags(flags::BLOCKED | UNSHUT), State::Blocked);
    // 0xffff in the reason bits without the shutdown bit means nothing.
    assert_eq!(state_from_flags(UNSHUT), State::NoState);
    assert_eq!(state_from_flags(0), State::NoState);
}

#[test]
fn info_converts_pages_and_checks_the_uuid() {
    let (d, _) = driver();
    let info = d.domain_info(&dref(3, 3)).unwrap();
    assert_eq!(info.state, State::Blocked);
    assert_eq!(info.memory_kib, 32768 * 4);
    assert_eq!(info.max_memory_kib, (32768 + 256) * 4);
    assert_eq!(info.vcpus, 1);
    assert_eq!(info.cpu_time_ns, 1_500_000_000);
    // Id 3 now belongs to another UUID: the old reference is gone.
    let e = d.domain_info(&dref(3, 9)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::NoDomain);
    assert!(e.message.contains("another domain"), "{e}");
}

#[test]
fn dom0_without_a_cap_reports_the_host_memory_as_maximum() {
    let (d, _) = driver();
    let info = d.domain_info(&dref(0, 0)).unwrap();
    assert_eq!(info.max_memory_kib, 524_288 * 4);
    assert_eq!(info.memory_kib, 131072 * 4);
}

#[test]
fn a_missing_domain_is_not_answered_by_the_next_one() {
    let (d, _) = driver();
    // FakeXen, like 4.17, answers id 1 with domain 3.
    let e = d.domain_info(&dref(1, 3)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::NoDomain);
    assert_eq!(e.errno(), libc::ENODEV);
    assert!(e.message.contains("domain 1 does not exist"), "{e}");
    // Past the last domain Xen says ESRCH.
    let e = d.domain_info(&dref(7, 7)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::NoDomain);
    // Reserved ids never reach Xen.
    assert_eq!(
        d.domain_by_id(DomainId(0x7ff0)).unwrap_err().kind,
        ErrorKind::NoDomain
    );
}

#[test]
fn inactive_domains_are_left_to_other_drivers() {
    let (d, _) = driver();
    let mut r = dref(3, 3);
    r.id = None;
    assert!(d.domain_info(&r).unwrap_err().is_not_supported());
    assert!(d.suspend(&r).unwrap_err().is_not_supported());
}

#[test]
fn names_come_from_xenstore_not_from_here() {
    let (d, _) = driver();
    assert!(d.list_active().unwrap_err().is_not_supported());
    assert!(d.lookup_by_name("d3").unwrap_err().is_not_supported());
    assert!(d.lookup_by_id(DomainId(3)).unwrap_err().is_not_supported());
}

#[test]
fn listing_pages_through_every_domain() {
    let (d, xen) = driver();
    for id in 10..(10 + 2 * LIST_BATCH as u16) {
        xen.add(dom_info(id, id as u8, flags::RUNNING | UNSHUT, 1024));
    }
    let all = d.domains().unwrap();
    assert_eq!(all.len(), 2 + 2 * LIST_BATCH);
    let ids: Vec<u32> = all.iter().map(|h| h.id.0).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(ids, sorted, "ascending and without duplicates");
    assert_eq!(all[1].uuid, Uuid([3; 16]));
    assert_eq!(all[1].info.state, State::Blocked);
    // Three batches: 64 + 64 + 2.
    let lists = xen
        .calls
        .lock()
        .unwrap()
        .iter()
        .filter(|&&c| c == sys::SYSCTL_GETDOMAININFOLIST)
        .count();
    assert_eq!(lists, 3);
}

#[test]
fn suspend_and_resume_follow_the_state_table() {
    let (d, _) = driver();
    let r = dref(3, 3);
    d.suspend(&r).unwrap();
    assert_eq!(d.domain_info(&r).unwrap().state, State::Paused);
    // A second pause would stack in Xen's count: refused here instead.
    let e = d.suspend(&r).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidState);
    assert_eq!(e.errno(), libc::EBUSY);
    d.resume(&r).unwrap();
    assert_eq!(d.domain_info(&r).unwrap().state, State::Blocked);
    assert_eq!(d.resume(&r).unwrap_err().kind, ErrorKind::InvalidState);
}

#[test]
fn xen_refusing_dom0_operations_is_a_state_error() {
    let (d, _) = driver();
    let e = d.suspend(&dref(0, 0)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidState);
    assert!(e.message.contains("EINVAL"), "{e}");
    assert_eq!(
        d.destroy(&dref(0, 0)).unwrap_err().kind,
        ErrorKind::InvalidState
    );
}

#[test]
fn destroy_removes_even_a_shut_down_domain() {
    let (d, xen) = driver();
    xen.add(dom_info(5, 5, flags::SHUTDOWN, 10));
    let r = dref(5, 5);
    assert_eq!(d.domain_info(&r).unwrap().state, State::ShutOff);
    d.destroy(&r).unwrap();
    assert_eq!(d.domain_info(&r).unwrap_err().kind, ErrorKind::NoDomain);
    assert_eq!(d.destroy(&r).unwrap_err().kind, ErrorKind::NoDomain);
}

#[test]
fn destroy_runs_the_after_destroy_step_once_xen_is_done() {
    let (d, xen) = driver();
    let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let xen2 = xen.clone();
    let d = d.after_destroy(Box::new(move |id, uuid| {
        // Xen no longer has the domain when the step runs.
        assert!(xen2
            .domains
            .lock()
            .unwrap()
            .iter()
            .all(|x| u32::from(x.info.domain) != id.0));
        log.lock().unwrap().push((id, uuid));
        Err(Error::backend("xenstore unreachable"))
    }));
    let e = d.destroy(&dref(3, 3)).unwrap_err();
    assert_eq!(*seen.lock().unwrap(), [(DomainId(3), Uuid([3; 16]))]);
    assert_eq!(e.kind, ErrorKind::Backend);
    assert!(e.message.contains("domain 3 destroyed, but"), "{e}");
    // A refused destroy runs nothing.
    assert!(d.destroy(&dref(0, 0)).is_err());
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[test]
fn set_max_memory_sends_kib() {
    let (d, _) = driver();
    let r = dref(3, 3);
    d.set_max_memory(&r, 262_144).unwrap();
    assert_eq!(d.domain_info(&r).unwrap().max_memory_kib, 262_144);
}

#[test]
fn node_info_and_version() {
    let (d, _) = driver();
    let n = d.node_info().unwrap();
    assert_eq!(
        (n.cpus, n.mhz, n.nodes, n.sockets, n.cores, n.threads),
        (2, 2400, 1, 1, 2, 1)
    );
    assert_eq!(n.memory_kib, 2 * 1024 * 1024);
    let h = d.hypervisor().unwrap();
    assert_eq!(h.kind, "Xen");
    assert_eq!(h.version.to_string(), "4.17.7");
    assert_eq!(d.extra_version(), ".7");
    assert_eq!(
        d.capabilities().unwrap(),
        ["xen-3.0-x86_64", "hvm-3.0-x86_32", "hvm-3.0-x86_64"]
    );
}

#[test]
fn an_unknown_release_is_refused_with_both_versions_named() {
    let mut xen = FakeXen::new();
    xen.version = 0x40013;
    let e = HypervisorDriver::with_hypercall(Box::new(xen))
        .err()
        .unwrap();
    assert_eq!(e.kind, ErrorKind::NotSupported);
    assert!(e.message.contains("Xen 4.19"), "{e}");
    assert!(
        e.message.contains("Xen 4.17 (sysctl 0x15, domctl 0x15)"),
        "{e}"
    );
}

#[test]
fn an_interface_version_mismatch_names_the_versions() {
    // A hypervisor that says 4.17 but speaks domctl 0x16 (a patched build).
    let mut xen = FakeXen::new();
    xen.iface = (0x15, 0x16);
    let d = HypervisorDriver::with_hypercall(Box::new(xen)).unwrap();
    let e = d.domain_info(&dref(3, 3)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::PermissionDenied);
    assert!(e.message.contains("domctl 0x15"), "{e}");
    assert!(e.message.contains("Xen 4.17"), "{e}");
    // physinfo still works: only the domctl side differs.
    assert!(d.node_info().is_ok());
}

#[test]
fn refusals_show_at_open() {
    // A sysctl interface Xen refuses (EACCES) names the versions.
    let mut xen = FakeXen::new();
    xen.iface = (0x14, 0x15);
    let e = HypervisorDriver::with_hypercall(Box::new(xen))
        .err()
        .unwrap();
    assert_eq!(e.kind, ErrorKind::PermissionDenied);
    assert!(e.message.contains("sysctl 0x15"), "{e}");
    // A guest's privcmd: Xen answers EPERM to anyone but dom0.
    let mut xen = FakeXen::new();
    xen.control = false;
    let e = HypervisorDriver::with_hypercall(Box::new(xen))
        .err()
        .unwrap();
    assert_eq!(e.kind, ErrorKind::PermissionDenied);
    assert!(e.message.contains("control domain"), "{e}");
}

#[test]
fn open_none_disables_and_a_bad_path_fails() {
    assert!(HypervisorDriver::open(Some("none")).unwrap().is_none());
    let e = HypervisorDriver::open(Some("/nonexistent/privcmd"))
        .err()
        .unwrap();
    assert_eq!(e.kind, ErrorKind::NotConnected);
    assert!(e.message.contains("/nonexistent/privcmd"), "{e}");
}

#[test]
fn max_vcpus_is_the_highest_vcpu_id_plus_one() {
    let (d, xen) = driver();
    assert_eq!(d.domain_max_vcpus(&dref(0, 0)).unwrap(), 2);
    assert_eq!(d.domain_max_vcpus(&dref(3, 3)).unwrap(), 1);
    xen.add(GetDomainInfo {
        max_vcpu_id: sys::INVALID_MAX_VCPU_ID,
        nr_online_vcpus: 0,
        ..dom_info(6, 6, UNSHUT, 16)
    });
    assert_eq!(d.domain_max_vcpus(&dref(6, 6)).unwrap(), 0);
    assert!(d.domain_vcpu_info(&dref(6, 6)).unwrap().is_empty());
    // A reused id answers for nobody.
    assert_eq!(
        d.domain_max_vcpus(&dref(3, 9)).unwrap_err().kind,
        ErrorKind::NoDomain
    );
}

#[test]
fn vcpu_info_lists_every_vcpu_with_its_affinity() {
    let (d, xen) = driver();
    let v = d.domain_vcpu_info(&dref(0, 0)).unwrap();
    let got: Vec<String> = v
        .iter()
        .map(|v| {
            format!(
                "{} {} {:?} {} {}",
                v.number, v.state, v.cpu, v.cpu_time_ns, v.affinity
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            "0 running Some(0) 1000000 0-1",
            "1 running Some(0) 2000000 0-1"
        ]
    );
    assert_eq!(
        d.domain_vcpu_info(&dref(3, 3)).unwrap()[0].state,
        VcpuState::Blocked
    );
    // Four vCPUs, two online: xl vcpu-list lists all four.
    xen.add(GetDomainInfo {
        max_vcpu_id: 3,
        nr_online_vcpus: 2,
        ..dom_info(7, 7, flags::RUNNING | UNSHUT, 16)
    });
    let v = d.domain_vcpu_info(&dref(7, 7)).unwrap();
    assert_eq!(v.len(), 4);
    assert_eq!(v[1].state, VcpuState::Running);
    assert_eq!(v[2].state, VcpuState::Offline);
    assert_eq!(v[3].cpu, None);
    assert!(d
        .domain_vcpu_info(&DomainRef {
            id: None,
            ..dref(7, 7)
        })
        .unwrap_err()
        .is_not_supported());
}

#[test]
fn pinning_sets_the_hard_affinity() {
    let (d, _) = driver();
    let r = dref(3, 3);
    d.pin_vcpu(&r, 0, "1".parse().unwrap()).unwrap();
    let v = &d.domain_vcpu_info(&r).unwrap()[0];
    assert_eq!(v.affinity.to_string(), "1");
    assert_eq!(v.cpu, Some(1));
    d.pin_vcpu(&r, 0, "0-1".parse().unwrap()).unwrap();
    assert_eq!(
        d.domain_vcpu_info(&r).unwrap()[0].affinity.to_string(),
        "0-1"
    );
}

#[test]
fn a_bad_pin_fails_einval_before_xen_and_changes_nothing() {
    let (d, xen) = driver();
    let r = dref(3, 3);
    d.pin_vcpu(&r, 0, "1".parse().unwrap()).unwrap();
    let sets = xen.count(sys::DOMCTL_SETVCPUAFFINITY);
    // The host has CPUs 0-1 (max_cpu_id 1).
    let e = d.pin_vcpu(&r, 0, "0,2".parse().unwrap()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidArgument);
    assert_eq!(e.errno(), libc::EINVAL);
    assert!(
        e.message.contains("CPU 2") && e.message.contains("0-1"),
        "{e}"
    );
    // A vCPU the domain lacks.
    let e = d.pin_vcpu(&r, 1, "0".parse().unwrap()).unwrap_err();
    assert_eq!(e.errno(), libc::EINVAL);
    assert!(e.message.contains("vcpu 1 is not present"), "{e}");
    assert_eq!(
        xen.count(sys::DOMCTL_SETVCPUAFFINITY),
        sets,
        "Xen never asked"
    );
    assert_eq!(d.domain_vcpu_info(&r).unwrap()[0].affinity.to_string(), "1");
}

#[test]
fn pinning_follows_the_state_table_and_the_uuid() {
    let (d, xen) = driver();
    xen.add(dom_info(5, 5, flags::SHUTDOWN, 10));
    let e = d
        .pin_vcpu(&dref(5, 5), 0, "0".parse().unwrap())
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidState);
    let e = d
        .pin_vcpu(&dref(3, 9), 0, "0".parse().unwrap())
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NoDomain);
    assert_eq!(xen.count(sys::DOMCTL_SETVCPUAFFINITY), 0);
}

#[test]
fn free_memory_of_the_node_and_its_cells() {
    let mut xen = FakeXen::new();
    xen.nodes = vec![Some((2 << 30, 1 << 30)), None, Some((4 << 30, 3 << 30))];
    let xen = std::sync::Arc::new(xen);
    let d = HypervisorDriver::with_hypercall(Box::new(Shared(xen.clone()))).unwrap();
    assert_eq!(d.node_free_memory().unwrap(), 100_000 * 4096);
    // Node 1 is not online: Xen says XEN_INVALID_MEM_SZ, domfs 0.
    assert_eq!(d.node_cells_free_memory().unwrap(), [1 << 30, 0, 3 << 30]);
    assert_eq!(xen.count(sys::SYSCTL_NUMAINFO), 2, "count, then sizes");
    // Three cells: each with its size (none for the one not online) and,
    // as the CPUs' nodes are not asked, no CPU list.
    let caps = d.node_capabilities().unwrap();
    assert!(caps.contains("<cells num='3'>"), "{caps}");
    assert!(caps.contains("<memory unit='KiB'>2097152</memory>"));
    assert!(caps.contains("<memory unit='KiB'>0</memory>"));
    assert!(!caps.contains("<cpus "));
}

#[test]
fn capabilities_come_from_xens_guest_kinds_and_the_host() {
    let (d, _) = driver();
    assert!(d.supports(Operation::NodeCapabilities));
    let caps = d.node_capabilities().unwrap();
    for part in [
        "<os_type>xen</os_type>\n    <arch name='x86_64'>",
        "<os_type>hvm</os_type>\n    <arch name='i686'>",
        "<os_type>hvm</os_type>\n    <arch name='x86_64'>",
        "<cpus num='2'>",
    ] {
        assert!(caps.contains(part), "{part} missing from {caps}");
    }
}

#[test]
fn the_new_operations_are_supported() {
    let (d, _) = driver();
    for op in [
        Operation::DomainMaxVcpus,
        Operation::DomainVcpuInfo,
        Operation::PinVcpu,
        Operation::NodeFreeMemory,
        Operation::NodeCellsFreeMemory,
    ] {
        assert!(d.supports(op), "{op}");
    }
    assert!(!d.supports(Operation::SetAutostart));
}
