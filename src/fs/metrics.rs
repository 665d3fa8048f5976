//! The `metrics` file: every domain's numbers in the Prometheus text
//! exposition format (version 0.0.4), so a node exporter's textfile
//! collector or a scrape through a small HTTP shim can read the mount.
//! Pure: domain records in, text out.

use crate::model::{BlockStats, DomainInfo, DomainRef, InterfaceStats};
use std::fmt::Write;

/// One metric family: name, type, help text and its value for a domain.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    value: fn(&DomainInfo) -> String,
}

const FAMILIES: [Family; 5] = [
    Family {
        name: "domfs_domain_state",
        kind: "gauge",
        help: "The domain's state as libvirt's virDomainState code (0 nostate, 1 running, 2 blocked, 3 paused, 4 shutdown, 5 shutoff, 6 crashed).",
        value: |i| i.state.code().to_string(),
    },
    Family {
        name: "domfs_domain_cpu_seconds_total",
        kind: "counter",
        help: "CPU time the domain has used, in seconds.",
        value: |i| seconds(i.cpu_time_ns),
    },
    Family {
        name: "domfs_domain_memory_bytes",
        kind: "gauge",
        help: "The domain's current memory (balloon target), in bytes.",
        value: |i| i.memory_kib.saturating_mul(1024).to_string(),
    },
    Family {
        name: "domfs_domain_memory_max_bytes",
        kind: "gauge",
        help: "The most memory the domain may have, in bytes.",
        value: |i| i.max_memory_kib.saturating_mul(1024).to_string(),
    },
    Family {
        name: "domfs_domain_vcpus",
        kind: "gauge",
        help: "Virtual CPUs in use.",
        value: |i| i.vcpus.to_string(),
    },
];

/// One domain's numbers: its record, and the counters of each disk and
/// interface while it runs (none where no driver gives them).
pub struct DomainMetrics {
    pub dom: DomainRef,
    pub info: DomainInfo,
    pub blocks: Vec<(String, BlockStats)>,
    pub nets: Vec<(String, InterfaceStats)>,
}

/// A counter family of a device: name, help, its value.
type DeviceFamily<S> = (&'static str, &'static str, fn(&S) -> u64);

const BLOCK_FAMILIES: [DeviceFamily<BlockStats>; 5] = [
    (
        "domfs_domain_block_read_requests_total",
        "Read requests of the disk.",
        |s| s.rd_req,
    ),
    (
        "domfs_domain_block_read_bytes_total",
        "Bytes read from the disk.",
        |s| s.rd_bytes,
    ),
    (
        "domfs_domain_block_write_requests_total",
        "Write requests of the disk.",
        |s| s.wr_req,
    ),
    (
        "domfs_domain_block_write_bytes_total",
        "Bytes written to the disk.",
        |s| s.wr_bytes,
    ),
    (
        "domfs_domain_block_errors_total",
        "Failed requests of the disk.",
        |s| s.errs,
    ),
];

const NET_FAMILIES: [DeviceFamily<InterfaceStats>; 8] = [
    (
        "domfs_domain_net_receive_bytes_total",
        "Bytes the guest received.",
        |s| s.rx_bytes,
    ),
    (
        "domfs_domain_net_receive_packets_total",
        "Packets the guest received.",
        |s| s.rx_packets,
    ),
    (
        "domfs_domain_net_receive_errors_total",
        "Receive errors.",
        |s| s.rx_errs,
    ),
    (
        "domfs_domain_net_receive_drops_total",
        "Received packets dropped.",
        |s| s.rx_drop,
    ),
    (
        "domfs_domain_net_transmit_bytes_total",
        "Bytes the guest sent.",
        |s| s.tx_bytes,
    ),
    (
        "domfs_domain_net_transmit_packets_total",
        "Packets the guest sent.",
        |s| s.tx_packets,
    ),
    (
        "domfs_domain_net_transmit_errors_total",
        "Transmit errors.",
        |s| s.tx_errs,
    ),
    (
        "domfs_domain_net_transmit_drops_total",
        "Sent packets dropped.",
        |s| s.tx_drop,
    ),
];

/// Nanoseconds as exact decimal seconds (a float would round large counters).
fn seconds(ns: u64) -> String {
    format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000)
}

/// A label value as the format requires: backslash, double quote and line
/// feed escaped, everything else as it is.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The domain's labels: `domain`, `uuid` and `id` (`-1` while it is not
/// running, as the `id` file says).
fn labels(dom: &DomainRef) -> String {
    let id = dom.id.map_or_else(|| "-1".to_string(), |i| i.to_string());
    format!(
        "domain=\"{}\",uuid=\"{}\",id=\"{id}\"",
        escape_label(dom.name.as_str()),
        dom.uuid
    )
}

/// The whole file: each family's `# HELP` and `# TYPE` lines, then one
/// sample per domain (per device for the device counters, with a `device`
/// or `interface` label).
pub fn render(domains: &[DomainMetrics]) -> String {
    let mut out = String::new();
    for f in &FAMILIES {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
        for d in domains {
            let _ = writeln!(
                out,
                "{}{{{}}} {}",
                f.name,
                labels(&d.dom),
                (f.value)(&d.info)
            );
        }
    }
    devices(&mut out, &BLOCK_FAMILIES, "device", domains, |d| &d.blocks);
    devices(&mut out, &NET_FAMILIES, "interface", domains, |d| &d.nets);
    out
}

fn devices<S>(
    out: &mut String,
    families: &[DeviceFamily<S>],
    label: &str,
    domains: &[DomainMetrics],
    of: fn(&DomainMetrics) -> &Vec<(String, S)>,
) {
    for (name, help, value) in families {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        for d in domains {
            for (dev, stats) in of(d) {
                let _ = writeln!(
                    out,
                    "{name}{{{},{label}=\"{}\"}} {}",
                    labels(&d.dom),
                    escape_label(dev),
                    value(stats)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DomainId, DomainName, State, Uuid};

    #[test]
    fn labels_are_escaped() {
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
        assert_eq!(escape_label("plain-ä"), "plain-ä");
    }

    #[test]
    fn seconds_are_exact() {
        assert_eq!(seconds(0), "0.000000000");
        assert_eq!(seconds(1_500_000_001), "1.500000001");
        assert_eq!(seconds(u64::MAX), "18446744073.709551615");
    }

    #[test]
    fn every_family_has_help_type_and_a_sample_per_domain() {
        let dom = |name: &str, id| DomainRef {
            name: DomainName(name.into()),
            uuid: Uuid([3; 16]),
            id,
        };
        let info = DomainInfo {
            state: State::ShutOff,
            max_memory_kib: 2,
            memory_kib: 1,
            vcpus: 4,
            cpu_time_ns: 0,
        };
        let text = render(&[
            DomainMetrics {
                dom: dom("a\"b", Some(DomainId(7))),
                info: info.clone(),
                blocks: vec![("vda".into(), BlockStats::default())],
                nets: vec![],
            },
            DomainMetrics {
                dom: dom("c", None),
                info,
                blocks: vec![],
                nets: vec![],
            },
        ]);
        assert_eq!(text.lines().filter(|l| l.starts_with("# HELP")).count(), 18);
        assert_eq!(text.lines().filter(|l| l.starts_with("# TYPE")).count(), 18);
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 15);
        assert!(text.contains("domfs_domain_block_errors_total{domain=\"a\\\"b\",uuid=\"03030303-0303-0303-0303-030303030303\",id=\"7\",device=\"vda\"} 0\n"));
        assert!(text.contains(
            "domfs_domain_memory_bytes{domain=\"a\\\"b\",uuid=\"03030303-0303-0303-0303-030303030303\",id=\"7\"} 1024\n"
        ));
        assert!(text.contains("domfs_domain_state{domain=\"c\""));
        assert!(text.contains("id=\"-1\"} 5\n"));
    }
}
