//! The `metrics` file: every domain's numbers in the Prometheus text
//! exposition format (version 0.0.4), so a node exporter's textfile
//! collector or a scrape through a small HTTP shim can read the mount.
//! Pure: domain records in, text out.

use crate::model::{DomainInfo, DomainRef};
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

/// The whole file: each family's `# HELP` and `# TYPE` lines, then one
/// sample per domain labelled `domain`, `uuid` and `id` (`-1` while the
/// domain is not running, as the `id` file says).
pub fn render(domains: &[(DomainRef, DomainInfo)]) -> String {
    let mut out = String::new();
    for f in &FAMILIES {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
        for (dom, info) in domains {
            let id = dom.id.map_or_else(|| "-1".to_string(), |i| i.to_string());
            let _ = writeln!(
                out,
                "{}{{domain=\"{}\",uuid=\"{}\",id=\"{id}\"}} {}",
                f.name,
                escape_label(dom.name.as_str()),
                dom.uuid,
                (f.value)(info)
            );
        }
    }
    out
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
            (dom("a\"b", Some(DomainId(7))), info.clone()),
            (dom("c", None), info),
        ]);
        assert_eq!(text.lines().filter(|l| l.starts_with("# HELP")).count(), 5);
        assert_eq!(text.lines().filter(|l| l.starts_with("# TYPE")).count(), 5);
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 10);
        assert!(text.contains(
            "domfs_domain_memory_bytes{domain=\"a\\\"b\",uuid=\"03030303-0303-0303-0303-030303030303\",id=\"7\"} 1024\n"
        ));
        assert!(text.contains("domfs_domain_state{domain=\"c\""));
        assert!(text.contains("id=\"-1\"} 5\n"));
    }
}
