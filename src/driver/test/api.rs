//! What libvirt 9's test driver answers for the Xen-era calls beyond the
//! lifecycle, as pure functions of the host: the capabilities document,
//! the statistics' rule (numbers that grow with the clock, so a reader sees
//! them move), and the core dump's content. Checked against `virsh -c
//! test:///default` in `tests/api.rs`.

use crate::model::{BlockStats, InterfaceStats, NodeInfo};
use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// The scheduler libvirt's test driver reports, with its one parameter.
pub const SCHEDULER: &str = "fair";
pub const WEIGHT: &str = "weight";
/// The weight it always reports; a new weight is accepted and not kept
/// (libvirt 9's `testDomainSetSchedulerParametersFlags` checks the value's
/// type and discards it, so `virsh schedinfo` shows 50 after any `--set`).
pub const DEFAULT_WEIGHT: u64 = 50;

/// The architecture of the host and of every guest the test driver offers.
const ARCH: &str = "i686";

/// What a core dump holds: the test driver's marker, NUL included.
pub const DUMP_CONTENT: &[u8] = b"TestGuestMagic\0";

/// The clock as the test driver reads it: seconds and microseconds.
fn clock() -> (u64, u64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    (secs, secs * 1_000_000 + u64::from(now.subsec_micros()))
}

/// Block counters now: fractions of the clock in microseconds, errors from
/// its seconds.
pub fn block_stats() -> BlockStats {
    let (secs, base) = clock();
    BlockStats {
        rd_req: base / 10,
        rd_bytes: base / 20,
        wr_req: base / 30,
        wr_bytes: base / 40,
        errs: secs / 2,
    }
}

/// Interface counters now, by the same rule.
pub fn interface_stats() -> InterfaceStats {
    let (secs, base) = clock();
    InterfaceStats {
        rx_bytes: base / 10,
        rx_packets: base / 100,
        rx_errs: secs,
        rx_drop: secs / 2,
        tx_bytes: base / 20,
        tx_packets: base / 110,
        tx_errs: secs / 3,
        tx_drop: secs / 4,
    }
}

/// The capabilities document of a test host whose NUMA cells hold
/// `cells_kib` each, the node's CPUs shared evenly between them: libvirt's
/// layout, blank lines included, so it equals `virsh capabilities`. Cell N's
/// small pages are (N+1)*4 KiB, as the test driver numbers them.
pub fn capabilities(node: &NodeInfo, cells_kib: &[u64]) -> String {
    let cells = cells_kib.len().max(1) as u32;
    let per_cell = node.cpus / cells;
    let small = |cell: usize| (cell as u64 + 1) * 4;
    let mut x = String::from("<capabilities>\n\n  <host>\n    <cpu>\n");
    let _ = writeln!(x, "      <arch>{ARCH}</arch>");
    x.push_str("      <features>\n        <pae/>\n        <nonpae/>\n      </features>\n");
    // The same four sizes whatever the cells: libvirt 9 lists 4 and 8 KiB
    // pages for its example host too, which has no cells.
    for size in [small(0), small(1), 2048, 1_048_576] {
        let _ = writeln!(x, "      <pages unit='KiB' size='{size}'/>");
    }
    x.push_str("    </cpu>\n    <power_management/>\n    <iommu support='no'/>\n");
    let _ = writeln!(x, "    <topology>\n      <cells num='{}'>", cells_kib.len());
    for (i, kib) in cells_kib.iter().enumerate() {
        let _ = writeln!(x, "        <cell id='{i}'>");
        let _ = writeln!(x, "          <memory unit='KiB'>{kib}</memory>");
        let _ = writeln!(
            x,
            "          <pages unit='KiB' size='{}'>{}</pages>",
            small(i),
            kib / small(i)
        );
        x.push_str("          <pages unit='KiB' size='2048'>0</pages>\n");
        x.push_str("          <pages unit='KiB' size='1048576'>0</pages>\n");
        let _ = writeln!(x, "          <cpus num='{per_cell}'>");
        for core in 0..per_cell {
            let id = i as u32 * per_cell + core;
            let _ = writeln!(
                x,
                "            <cpu id='{id}' socket_id='{i}' die_id='0' core_id='{core}' siblings='{id}'/>"
            );
        }
        x.push_str("          </cpus>\n        </cell>\n");
    }
    x.push_str("      </cells>\n    </topology>\n");
    x.push_str("    <secmodel>\n      <model>testSecurity</model>\n      <doi></doi>\n    </secmodel>\n  </host>\n\n");
    for os in ["hvm", "xen"] {
        let _ = writeln!(x, "  <guest>\n    <os_type>{os}</os_type>");
        let _ = writeln!(x, "    <arch name='{ARCH}'>");
        x.push_str("      <wordsize>32</wordsize>\n      <emulator>/usr/bin/test-hv</emulator>\n      <domain type='test'/>\n    </arch>\n");
        x.push_str(
            "    <features>\n      <pae/>\n      <nonpae/>\n    </features>\n  </guest>\n\n",
        );
    }
    x.push_str("</capabilities>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_grow_with_the_clock() {
        let a = block_stats();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = block_stats();
        assert!(b.rd_req > a.rd_req && b.wr_bytes >= a.wr_bytes);
        assert_eq!(a.rd_req / 2, a.rd_bytes, "{a:?}");
        let n = interface_stats();
        assert!(n.rx_bytes > n.rx_packets && n.rx_errs >= n.tx_drop);
    }

    #[test]
    fn capabilities_list_every_cell_and_cpu() {
        let node = super::super::host::default_node();
        let caps = capabilities(&node, &[1024, 2048]);
        assert_eq!(caps.matches("<cpu id=").count(), 16);
        assert!(caps.contains("<cell id='1'>\n          <memory unit='KiB'>2048</memory>\n          <pages unit='KiB' size='8'>256</pages>"));
        assert!(crate::model::xml::parse_tree(&caps).is_ok());
    }
}
