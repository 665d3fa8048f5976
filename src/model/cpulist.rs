//! CPU lists as libvirt and xl write them (`0-3,6`, `0-7,^2`): the parser
//! and the printer of a set of host CPU numbers, and the vCPU records that
//! carry one. Pure text in, values out; which CPUs a host has is the
//! driver's business, not this module's.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// The highest CPU number a list may name. libvirt's own limit for a CPU
/// map is far above any host; this bound only keeps a written `0-4000000000`
/// from building a set of billions of entries.
pub const MAX_CPU: u32 = 4095;

/// A set of host CPUs, printed in libvirt's shortest form: every run of two
/// or more consecutive CPUs is a range, as `virsh vcpupin` prints `0-1`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuSet(BTreeSet<u32>);

impl CpuSet {
    /// CPUs `0..count`.
    pub fn first(count: u32) -> CpuSet {
        CpuSet((0..count.min(MAX_CPU + 1)).collect())
    }

    pub fn contains(&self, cpu: u32) -> bool {
        self.0.contains(&cpu)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The highest CPU in the set.
    pub fn last(&self) -> Option<u32> {
        self.0.last().copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().copied()
    }
}

impl FromIterator<u32> for CpuSet {
    fn from_iter<I: IntoIterator<Item = u32>>(iter: I) -> CpuSet {
        CpuSet(iter.into_iter().collect())
    }
}

fn cpu(text: &str, list: &str) -> Result<u32, String> {
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{list}' is not a CPU list (such as 0-3,6)"));
    }
    match t.parse::<u32>() {
        Ok(n) if n <= MAX_CPU => Ok(n),
        _ => Err(format!("CPU {t} in '{list}' is above {MAX_CPU}")),
    }
}

/// Comma-separated items, each `N`, `N-M` (M not below N) or `^N` (leave N
/// out, whatever came before); white space around items is ignored. The
/// result must name at least one CPU.
impl FromStr for CpuSet {
    type Err = String;
    fn from_str(list: &str) -> Result<CpuSet, String> {
        let list = list.trim();
        let mut set = BTreeSet::new();
        let mut excluded = BTreeSet::new();
        for item in list.split(',') {
            let item = item.trim();
            if let Some(n) = item.strip_prefix('^') {
                excluded.insert(cpu(n, list)?);
            } else if let Some((a, b)) = item.split_once('-') {
                let (a, b) = (cpu(a, list)?, cpu(b, list)?);
                if b < a {
                    return Err(format!("range {item} in '{list}' runs backwards"));
                }
                set.extend(a..=b);
            } else {
                set.insert(cpu(item, list)?);
            }
        }
        for n in &excluded {
            set.remove(n);
        }
        if set.is_empty() {
            return Err(format!("'{list}' names no CPU"));
        }
        Ok(CpuSet(set))
    }
}

impl fmt::Display for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut runs: Vec<(u32, u32)> = Vec::new();
        for n in self.iter() {
            match runs.last_mut() {
                Some((_, end)) if *end + 1 == n => *end = n,
                _ => runs.push((n, n)),
            }
        }
        let parts: Vec<String> = runs
            .into_iter()
            .map(|(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// `virVcpuState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VcpuState {
    Offline,
    Running,
    Blocked,
}

impl VcpuState {
    pub fn as_str(self) -> &'static str {
        match self {
            VcpuState::Offline => "offline",
            VcpuState::Running => "running",
            VcpuState::Blocked => "blocked",
        }
    }
}

impl fmt::Display for VcpuState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One vCPU, as `virDomainGetVcpus` and `virDomainGetVcpuPinInfo` give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VcpuInfo {
    pub number: u32,
    pub state: VcpuState,
    /// The host CPU it runs on; None while the domain is not running.
    pub cpu: Option<u32>,
    /// CPU time used, in nanoseconds.
    pub cpu_time_ns: u64,
    /// The host CPUs it may run on.
    pub affinity: CpuSet,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(list: &str) -> CpuSet {
        list.parse().unwrap()
    }

    #[test]
    fn lists_parse_and_print_in_the_shortest_form() {
        for (text, printed) in [
            ("0-3,6", "0-3,6"),
            ("6,0-3", "0-3,6"),
            ("0,1", "0-1"),
            ("3", "3"),
            (" 1 , 2 ,3 ", "1-3"),
            ("0-7,^2", "0-1,3-7"),
            ("^2,0-7", "0-1,3-7"),
            ("3,5-6", "3,5-6"),
            ("0-0", "0"),
            ("1,1,1", "1"),
        ] {
            assert_eq!(set(text).to_string(), printed, "{text}");
            assert_eq!(set(printed).to_string(), printed, "{printed} round trip");
        }
        assert_eq!(set("4095").last(), Some(MAX_CPU));
    }

    #[test]
    fn bad_lists_are_refused() {
        for bad in [
            "",
            ",",
            "a",
            "1-",
            "-1",
            "3-1",
            "^1",
            "0-1,^0-1",
            "1,,2",
            "1 2",
            "+1",
            "0x1",
            "4096",
            "0-99999999999",
            "1-2-3",
        ] {
            assert!(bad.parse::<CpuSet>().is_err(), "'{bad}' was accepted");
        }
    }

    #[test]
    fn first_and_membership() {
        let s = CpuSet::first(8);
        assert_eq!(s.to_string(), "0-7");
        assert!(s.contains(7) && !s.contains(8));
        assert_eq!(CpuSet::first(0).last(), None);
        assert!(CpuSet::first(0).is_empty());
    }
}
