//! The pure half of vCPUs and NUMA cells on Xen: CPU lists to and from
//! `xenctl_bitmap` byte maps, and `getvcpuinfo`, `getdomaininfo` and
//! `numainfo` answers to the model's values. No hypercalls here; the
//! driver (`mod.rs`) issues them and these functions read what came back.

use super::sys::{DomctlGetVcpuInfo, SysctlMeminfo, INVALID_MAX_VCPU_ID, INVALID_MEM_SZ};
use crate::model::{CpuSet, VcpuInfo, VcpuState};

/// The CPUs of a map Xen fills for `nr_bits` host CPUs, in `xenctl_bitmap`
/// order (bit `n % 8` of byte `n / 8`). Bits past `nr_bits` or past the
/// map are not CPUs of this host and are ignored.
pub fn cpus_from_map(map: &[u8], nr_bits: u32) -> CpuSet {
    (0..nr_bits)
        .filter(|&n| {
            map.get((n / 8) as usize)
                .is_some_and(|byte| byte & (1 << (n % 8)) != 0)
        })
        .collect()
}

/// The byte map of `cpus` for a host with CPUs `0..nr_bits`. A CPU the
/// host lacks is refused (its number is the error), so a pin never reaches
/// Xen naming one.
pub fn map_from_cpus(cpus: &CpuSet, nr_bits: u32) -> Result<Vec<u8>, u32> {
    let mut map = vec![0u8; map_len(nr_bits)];
    for n in cpus.iter() {
        if n >= nr_bits {
            return Err(n);
        }
        map[(n / 8) as usize] |= 1 << (n % 8);
    }
    Ok(map)
}

/// Bytes in a map of `nr_bits` bits.
pub fn map_len(nr_bits: u32) -> usize {
    nr_bits.div_ceil(8) as usize
}

/// The vCPUs a domain has: `max_vcpu_id + 1`, none when Xen says the
/// domain has no vCPUs (`XEN_INVALID_MAX_VCPU_ID`).
pub fn vcpu_count(max_vcpu_id: u32) -> u32 {
    if max_vcpu_id == INVALID_MAX_VCPU_ID {
        0
    } else {
        max_vcpu_id.saturating_add(1)
    }
}

/// One vCPU as `getvcpuinfo` describes it, with its hard affinity. As
/// `xl vcpu-list` reads the flags: offline first; an online vCPU is
/// blocked when Xen says so, else running (libvirt's vCPU states have no
/// "runnable": a vCPU waiting for a CPU, or of a paused domain, counts as
/// running, as libvirt's Xen driver reported it). Only an online vCPU has
/// a CPU.
pub fn vcpu_info(raw: &DomctlGetVcpuInfo, affinity: CpuSet) -> VcpuInfo {
    let state = if raw.online == 0 {
        VcpuState::Offline
    } else if raw.blocked != 0 && raw.running == 0 {
        VcpuState::Blocked
    } else {
        VcpuState::Running
    };
    VcpuInfo {
        number: raw.vcpu,
        state,
        cpu: (raw.online != 0).then_some(raw.cpu),
        cpu_time_ns: raw.cpu_time,
        affinity,
    }
}

/// A NUMA node's free memory in bytes; a node that is not online (Xen
/// reports `XEN_INVALID_MEM_SZ`) has none, as libvirt's libxl driver
/// answers for it.
pub fn cell_free_bytes(node: &SysctlMeminfo) -> u64 {
    if node.memfree == INVALID_MEM_SZ || node.memsize == INVALID_MEM_SZ {
        0
    } else {
        node.memfree
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests a panic is the failure report
mod tests {
    use super::*;

    fn set(list: &str) -> CpuSet {
        list.parse().unwrap()
    }

    #[test]
    fn maps_are_little_endian_bits_per_byte() {
        assert_eq!(map_from_cpus(&set("0"), 8).unwrap(), [0x01]);
        assert_eq!(map_from_cpus(&set("1"), 2).unwrap(), [0x02]);
        assert_eq!(map_from_cpus(&set("0-3,6"), 8).unwrap(), [0x4f]);
        assert_eq!(map_from_cpus(&set("7-8"), 16).unwrap(), [0x80, 0x01]);
        assert_eq!(map_from_cpus(&set("9,15"), 12).unwrap_err(), 15);
        // 12 bits need two bytes; CPU 11 is the last one the host has.
        assert_eq!(map_from_cpus(&set("11"), 12).unwrap(), [0x00, 0x08]);
        assert_eq!(map_len(0), 0);
        assert_eq!(map_len(1), 1);
        assert_eq!(map_len(64), 8);
        assert_eq!(map_len(65), 9);
    }

    #[test]
    fn a_cpu_the_host_lacks_is_named() {
        // A host with CPUs 0-1 (max_cpu_id 1): CPU 2 is refused.
        assert_eq!(map_from_cpus(&set("0,2"), 2).unwrap_err(), 2);
        assert_eq!(map_from_cpus(&set("4095"), 2).unwrap_err(), 4095);
        assert!(map_from_cpus(&set("0-1"), 2).is_ok());
    }

    #[test]
    fn maps_decode_to_lists_and_round_trip() {
        assert_eq!(cpus_from_map(&[0xff], 2).to_string(), "0-1");
        // Xen's default affinity: every bit set, as many as the map holds.
        assert_eq!(cpus_from_map(&[0xff, 0xff], 12).to_string(), "0-11");
        assert_eq!(cpus_from_map(&[0x4f], 8).to_string(), "0-3,6");
        assert_eq!(cpus_from_map(&[0x00, 0x01], 16).to_string(), "8");
        // A map shorter than its bit count stops where the bytes stop.
        assert_eq!(cpus_from_map(&[0x81], 64).to_string(), "0,7");
        assert!(cpus_from_map(&[0x00], 8).is_empty());
        for list in ["0", "1", "0-1", "3,5-6", "0-3,6,63", "8-15"] {
            let map = map_from_cpus(&set(list), 64).unwrap();
            assert_eq!(cpus_from_map(&map, 64).to_string(), list);
        }
    }

    #[test]
    fn vcpuinfo_decodes_as_xl_reads_it() {
        let raw = DomctlGetVcpuInfo {
            vcpu: 2,
            online: 1,
            blocked: 1,
            running: 0,
            cpu_time: 1_234_567_890,
            cpu: 1,
            ..Default::default()
        };
        let v = vcpu_info(&raw, set("0-1"));
        assert_eq!(v.number, 2);
        assert_eq!(v.state, VcpuState::Blocked);
        assert_eq!(v.cpu, Some(1));
        assert_eq!(v.cpu_time_ns, 1_234_567_890);
        assert_eq!(v.affinity, set("0-1"));
        let running = DomctlGetVcpuInfo {
            running: 1,
            blocked: 0,
            ..raw
        };
        assert_eq!(vcpu_info(&running, set("0")).state, VcpuState::Running);
        // Runnable (neither flag) is running in libvirt's states.
        let runnable = DomctlGetVcpuInfo {
            running: 0,
            blocked: 0,
            ..raw
        };
        assert_eq!(vcpu_info(&runnable, set("0")).state, VcpuState::Running);
        let offline = DomctlGetVcpuInfo {
            online: 0,
            blocked: 1,
            ..raw
        };
        let v = vcpu_info(&offline, set("0"));
        assert_eq!(v.state, VcpuState::Offline);
        assert_eq!(v.cpu, None, "an offline vCPU runs nowhere");
    }

    #[test]
    fn counts_and_cells() {
        assert_eq!(vcpu_count(0), 1);
        assert_eq!(vcpu_count(3), 4);
        assert_eq!(vcpu_count(INVALID_MAX_VCPU_ID), 0);
        let online = SysctlMeminfo {
            memsize: 2 << 30,
            memfree: 1 << 30,
        };
        assert_eq!(cell_free_bytes(&online), 1 << 30);
        let offline = SysctlMeminfo {
            memsize: INVALID_MEM_SZ,
            memfree: INVALID_MEM_SZ,
        };
        assert_eq!(cell_free_bytes(&offline), 0);
    }
}
