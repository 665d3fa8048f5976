//! The records a driver returns about a domain and about the host, in libvirt's
//! units: memory in KiB, CPU time in nanoseconds.

use super::{DomainId, DomainName, State, Uuid};
use std::fmt;

/// What names a domain across calls, like libvirt's `virDomainPtr`: the name,
/// the UUID, and the id while it runs. Drivers hand these out from lookups and
/// take them back in every domain operation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DomainRef {
    pub name: DomainName,
    pub uuid: Uuid,
    pub id: Option<DomainId>,
}

/// `virDomainInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainInfo {
    pub state: State,
    /// Maximum memory in KiB.
    pub max_memory_kib: u64,
    /// Current memory (balloon target) in KiB.
    pub memory_kib: u64,
    pub vcpus: u32,
    /// CPU time used, in nanoseconds.
    pub cpu_time_ns: u64,
}

/// `virNodeInfo`: the host's CPUs and memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// CPU model, `uname -m` style (`i686`, `x86_64`).
    pub model: String,
    /// Active CPUs.
    pub cpus: u32,
    pub mhz: u32,
    /// NUMA cells.
    pub nodes: u32,
    /// Sockets per NUMA cell.
    pub sockets: u32,
    pub cores: u32,
    pub threads: u32,
    /// Total memory in KiB.
    pub memory_kib: u64,
}

impl NodeInfo {
    /// The `node/info` file: `key value` lines in a fixed order.
    pub fn to_text(&self) -> String {
        format!(
            "model {}\ncpus {}\nmhz {}\nnodes {}\nsockets {}\ncores {}\nthreads {}\nmemory {}\n",
            self.model,
            self.cpus,
            self.mhz,
            self.nodes,
            self.sockets,
            self.cores,
            self.threads,
            self.memory_kib
        )
    }
}

/// A hypervisor's type and version, libvirt-style (`major*1000000 + minor*1000 + release`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hypervisor {
    pub kind: String,
    pub version: Version,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub release: u32,
}

impl Version {
    /// libvirt's packed number.
    pub fn number(self) -> u64 {
        u64::from(self.major) * 1_000_000 + u64::from(self.minor) * 1_000 + u64::from(self.release)
    }

    /// The release in Xen's extra version (`.7`, `.0-rc1`, `-unstable`):
    /// its leading number, 0 when it has none; at most 999 (libvirt's
    /// packed number has three digits for it).
    pub fn xen_release(extra: &str) -> u32 {
        extra
            .trim_start_matches('.')
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|d| d.parse::<u32>().ok())
            .unwrap_or(0)
            .min(999)
    }

    pub fn from_number(n: u64) -> Version {
        Version {
            major: (n / 1_000_000) as u32,
            minor: ((n / 1_000) % 1_000) as u32,
            release: (n % 1_000) as u32,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.release)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xen_releases() {
        assert_eq!(Version::xen_release(".7"), 7);
        assert_eq!(Version::xen_release(".0-rc1"), 0);
        assert_eq!(Version::xen_release("-unstable"), 0);
        assert_eq!(Version::xen_release(".12345"), 999);
        assert_eq!(Version::xen_release(""), 0);
    }

    #[test]
    fn node_info_text_has_the_documented_order() {
        let n = NodeInfo {
            model: "i686".into(),
            cpus: 16,
            mhz: 1400,
            nodes: 2,
            sockets: 2,
            cores: 2,
            threads: 2,
            memory_kib: 3145728,
        };
        assert_eq!(
            n.to_text(),
            "model i686\ncpus 16\nmhz 1400\nnodes 2\nsockets 2\ncores 2\nthreads 2\nmemory 3145728\n"
        );
    }

    #[test]
    fn version_packing() {
        let v = Version::from_number(4_017_003);
        assert_eq!((v.major, v.minor, v.release), (4, 17, 3));
        assert_eq!(v.number(), 4_017_003);
        assert_eq!(v.to_string(), "4.17.3");
    }
}

/// A scheduler parameter of a domain, as libvirt's typed parameters name
/// them (`weight`, `cap`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedParam {
    pub name: String,
    pub value: u64,
}

/// A domain's block device counters (`virsh domblkstat`), keyed as virsh
/// prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockStats {
    pub rd_req: u64,
    pub rd_bytes: u64,
    pub wr_req: u64,
    pub wr_bytes: u64,
    pub errs: u64,
}

impl BlockStats {
    pub fn to_text(&self) -> String {
        format!(
            "rd_req {}\nrd_bytes {}\nwr_req {}\nwr_bytes {}\nerrs {}\n",
            self.rd_req, self.rd_bytes, self.wr_req, self.wr_bytes, self.errs
        )
    }
}

/// A domain's network interface counters (`virsh domifstat`), keyed as
/// virsh prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InterfaceStats {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errs: u64,
    pub rx_drop: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errs: u64,
    pub tx_drop: u64,
}

impl InterfaceStats {
    pub fn to_text(&self) -> String {
        format!(
            "rx_bytes {}\nrx_packets {}\nrx_errs {}\nrx_drop {}\ntx_bytes {}\ntx_packets {}\ntx_errs {}\ntx_drop {}\n",
            self.rx_bytes,
            self.rx_packets,
            self.rx_errs,
            self.rx_drop,
            self.tx_bytes,
            self.tx_packets,
            self.tx_errs,
            self.tx_drop
        )
    }
}
