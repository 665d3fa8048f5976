//! The shape of the tree and its inode numbers. Inodes are keyed by (domain
//! UUID, file) and never reused while mounted, so a domain's files keep their
//! numbers for its whole life and `find`, editors and watchers see stable files.

use crate::model::{State, Uuid};
use fuser::FileType;
use std::collections::HashMap;

/// A domain's files, in the order `ls` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DomFile {
    Xml,
    /// The persistent definition (virsh's `dumpxml --inactive`).
    InactiveXml,
    State,
    Control,
    Id,
    Uuid,
    OsType,
    Vcpus,
    Memory,
    MaxMemory,
    CpuTime,
    Info,
    LastError,
    /// The most vCPUs the domain may have (`<vcpu>`).
    MaxVcpus,
    /// `0` or `1`: whether the domain starts with the host.
    Autostart,
}

impl DomFile {
    pub const ALL: [DomFile; 15] = [
        DomFile::Xml,
        DomFile::InactiveXml,
        DomFile::State,
        DomFile::Control,
        DomFile::Id,
        DomFile::Uuid,
        DomFile::OsType,
        DomFile::Vcpus,
        DomFile::Memory,
        DomFile::MaxMemory,
        DomFile::CpuTime,
        DomFile::Info,
        DomFile::LastError,
        DomFile::MaxVcpus,
        DomFile::Autostart,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DomFile::Xml => "xml",
            DomFile::InactiveXml => "inactive_xml",
            DomFile::State => "state",
            DomFile::Control => "control",
            DomFile::Id => "id",
            DomFile::Uuid => "uuid",
            DomFile::OsType => "os_type",
            DomFile::Vcpus => "vcpus",
            DomFile::Memory => "memory",
            DomFile::MaxMemory => "max_memory",
            DomFile::CpuTime => "cpu_time",
            DomFile::Info => "info",
            DomFile::LastError => "last_error",
            DomFile::MaxVcpus => "max_vcpus",
            DomFile::Autostart => "autostart",
        }
    }

    /// Permission bits. Reading `control` lists the valid commands:
    /// harmless for anyone.
    pub fn mode(self) -> u16 {
        match self {
            DomFile::Xml
            | DomFile::Control
            | DomFile::Vcpus
            | DomFile::Memory
            | DomFile::MaxMemory
            | DomFile::Autostart => 0o644,
            DomFile::InactiveXml
            | DomFile::State
            | DomFile::Id
            | DomFile::Uuid
            | DomFile::OsType
            | DomFile::CpuTime
            | DomFile::Info
            | DomFile::LastError
            | DomFile::MaxVcpus => 0o444,
        }
    }

    pub fn from_name(name: &str) -> Option<DomFile> {
        DomFile::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// The files of one vCPU's directory (`NAME/vcpu/N/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VcpuFile {
    /// `offline`, `running` or `blocked`.
    State,
    /// The host CPU it runs on, `-1` while it runs nowhere.
    Cpu,
    /// CPU time used, in nanoseconds.
    CpuTime,
    /// The host CPUs it may run on, as a CPU list (`0-3,6`); writing one
    /// pins it.
    Affinity,
}

impl VcpuFile {
    pub const ALL: [VcpuFile; 4] = [
        VcpuFile::State,
        VcpuFile::Cpu,
        VcpuFile::CpuTime,
        VcpuFile::Affinity,
    ];

    pub fn name(self) -> &'static str {
        match self {
            VcpuFile::State => "state",
            VcpuFile::Cpu => "cpu",
            VcpuFile::CpuTime => "cpu_time",
            VcpuFile::Affinity => "affinity",
        }
    }

    pub fn mode(self) -> u16 {
        match self {
            VcpuFile::Affinity => 0o644,
            VcpuFile::State | VcpuFile::Cpu | VcpuFile::CpuTime => 0o444,
        }
    }

    pub fn from_name(name: &str) -> Option<VcpuFile> {
        VcpuFile::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// A scheduler parameter shown as a file of `NAME/sched/`: the credit
/// scheduler's two (the test driver's `fair` has the weight alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchedKnob {
    Weight,
    Cap,
}

impl SchedKnob {
    pub const ALL: [SchedKnob; 2] = [SchedKnob::Weight, SchedKnob::Cap];

    pub fn name(self) -> &'static str {
        match self {
            SchedKnob::Weight => "weight",
            SchedKnob::Cap => "cap",
        }
    }

    pub fn from_name(name: &str) -> Option<SchedKnob> {
        SchedKnob::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// The name of a domain's directory of vCPUs.
pub const VCPU_DIR: &str = "vcpu";
/// A domain's scheduler: `type` and one file per parameter.
pub const SCHED_DIR: &str = "sched";
/// A domain's `attach` and `detach` files.
pub const DEVICES_DIR: &str = "devices";
/// A domain's statistics: `block/<target>` and `net/<name>`.
pub const STATS_DIR: &str = "stats";
/// The name of a domain's directory of states to wait for.
pub const WAIT_DIR: &str = "wait";

/// Whether `name` is one of a domain directory's own entries, which no
/// editor's temporary file may take.
pub fn reserved(name: &str) -> bool {
    DomFile::from_name(name).is_some()
        || [VCPU_DIR, WAIT_DIR, SCHED_DIR, DEVICES_DIR, STATS_DIR].contains(&name)
}

/// Every node of the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Node {
    Root,
    ById,
    ByUuid,
    NodeDir,
    NodeInfo,
    NodeHypervisor,
    Create,
    Define,
    Restore,
    RootLastError,
    /// `events`: a stream of lifecycle events from each open on.
    Events,
    Domain(Uuid),
    File(Uuid, DomFile),
    /// `by-id/<id>`: the link of a running domain.
    IdLink(Uuid),
    /// `by-uuid/<uuid>`.
    UuidLink(Uuid),
    /// An editor's temporary file in a domain directory (see `scratch`).
    Scratch(Uuid, u64),
    /// `metrics`: every domain's numbers in Prometheus's text format.
    Metrics,
    /// `node/free_memory`, in KiB.
    NodeFreeMemory,
    /// `node/cells/`: one directory per NUMA cell.
    Cells,
    /// `node/cells/N/`.
    Cell(u32),
    /// `node/cells/N/free_memory`, in KiB.
    CellFreeMemory(u32),
    /// `NAME/vcpu/`: one directory per vCPU in use.
    VcpuDir(Uuid),
    /// `NAME/vcpu/N/`.
    Vcpu(Uuid, u32),
    VcpuFile(Uuid, u32, VcpuFile),
    /// `NAME/wait/`: one file per state.
    WaitDir(Uuid),
    /// `NAME/wait/STATE`: a read answers once the domain is in the state.
    Wait(Uuid, State),
    /// `node/capabilities`: the host's capabilities XML.
    NodeCapabilities,
    /// `NAME/sched/`.
    SchedDir(Uuid),
    /// `NAME/sched/type`: the scheduler's name.
    SchedType(Uuid),
    /// `NAME/sched/<parameter>`.
    Sched(Uuid, SchedKnob),
    /// `NAME/devices/`.
    DevicesDir(Uuid),
    /// `NAME/devices/attach`: a device XML written here is attached.
    Attach(Uuid),
    /// `NAME/devices/detach`: a device XML written here is detached.
    Detach(Uuid),
    /// `NAME/stats/`.
    StatsDir(Uuid),
    /// `NAME/stats/block/`: one file per disk target.
    BlockStatsDir(Uuid),
    /// `NAME/stats/net/`: one file per interface.
    NetStatsDir(Uuid),
    /// `NAME/stats/block/<target>`, by the disk's place in the definition.
    BlockStats(Uuid, u32),
    /// `NAME/stats/net/<name>`, by the interface's place in the definition.
    NetStats(Uuid, u32),
}

/// How writes to a file are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// Commands, one a line, each applied when its line is complete.
    Command,
    /// Writes are gathered and the document is applied by the write that
    /// completes it.
    Document,
}

impl Node {
    /// The root's fixed entries with their names.
    pub const ROOT_ENTRIES: [(&'static str, Node); 9] = [
        ("by-id", Node::ById),
        ("by-uuid", Node::ByUuid),
        ("node", Node::NodeDir),
        ("create", Node::Create),
        ("define", Node::Define),
        ("restore", Node::Restore),
        ("last_error", Node::RootLastError),
        ("events", Node::Events),
        ("metrics", Node::Metrics),
    ];

    pub const NODE_ENTRIES: [(&'static str, Node); 5] = [
        ("info", Node::NodeInfo),
        ("hypervisor", Node::NodeHypervisor),
        ("free_memory", Node::NodeFreeMemory),
        ("cells", Node::Cells),
        ("capabilities", Node::NodeCapabilities),
    ];

    /// The one file of a cell's directory.
    pub const CELL_FILE: &'static str = "free_memory";

    pub fn kind(self) -> FileType {
        match self {
            Node::Root
            | Node::ById
            | Node::ByUuid
            | Node::NodeDir
            | Node::Domain(_)
            | Node::Cells
            | Node::Cell(_)
            | Node::VcpuDir(_)
            | Node::Vcpu(..)
            | Node::WaitDir(_)
            | Node::SchedDir(_)
            | Node::DevicesDir(_)
            | Node::StatsDir(_)
            | Node::BlockStatsDir(_)
            | Node::NetStatsDir(_) => FileType::Directory,
            Node::IdLink(_) | Node::UuidLink(_) => FileType::Symlink,
            Node::NodeInfo
            | Node::NodeHypervisor
            | Node::Create
            | Node::Define
            | Node::Restore
            | Node::RootLastError
            | Node::Events
            | Node::File(..)
            | Node::Scratch(..)
            | Node::Metrics
            | Node::NodeFreeMemory
            | Node::CellFreeMemory(_)
            | Node::VcpuFile(..)
            | Node::Wait(..)
            | Node::NodeCapabilities
            | Node::SchedType(_)
            | Node::Sched(..)
            | Node::Attach(_)
            | Node::Detach(_)
            | Node::BlockStats(..)
            | Node::NetStats(..) => FileType::RegularFile,
        }
    }

    /// Permission bits (the kernel enforces them: `default_permissions`).
    pub fn mode(self) -> u16 {
        match self {
            Node::Root
            | Node::ById
            | Node::ByUuid
            | Node::NodeDir
            | Node::Domain(_)
            | Node::Cells
            | Node::Cell(_)
            | Node::VcpuDir(_)
            | Node::Vcpu(..)
            | Node::WaitDir(_)
            | Node::SchedDir(_)
            | Node::DevicesDir(_)
            | Node::StatsDir(_)
            | Node::BlockStatsDir(_)
            | Node::NetStatsDir(_) => 0o555,
            Node::IdLink(_) | Node::UuidLink(_) => 0o777,
            Node::Create | Node::Define | Node::Restore | Node::Attach(_) | Node::Detach(_) => {
                0o200
            }
            Node::Sched(..) => 0o644,
            Node::NodeInfo
            | Node::NodeHypervisor
            | Node::RootLastError
            | Node::Events
            | Node::Metrics
            | Node::NodeFreeMemory
            | Node::CellFreeMemory(_)
            | Node::Wait(..)
            | Node::NodeCapabilities
            | Node::SchedType(_)
            | Node::BlockStats(..)
            | Node::NetStats(..) => 0o444,
            Node::File(_, f) => f.mode(),
            Node::VcpuFile(_, _, f) => f.mode(),
            Node::Scratch(..) => 0o600,
        }
    }

    /// How writes to this node are applied, or None if it is not writable.
    pub fn write_kind(self) -> Option<WriteKind> {
        match self {
            Node::Create
            | Node::Define
            | Node::File(_, DomFile::Xml)
            | Node::Attach(_)
            | Node::Detach(_) => Some(WriteKind::Document),
            Node::Restore
            | Node::File(
                _,
                DomFile::Control
                | DomFile::Vcpus
                | DomFile::Memory
                | DomFile::MaxMemory
                | DomFile::Autostart,
            )
            | Node::VcpuFile(_, _, VcpuFile::Affinity)
            | Node::Sched(..) => Some(WriteKind::Command),
            _ => None,
        }
    }

    /// The domain this node belongs to, if any.
    pub fn domain(self) -> Option<Uuid> {
        match self {
            Node::Domain(u)
            | Node::File(u, _)
            | Node::IdLink(u)
            | Node::UuidLink(u)
            | Node::Scratch(u, _)
            | Node::VcpuDir(u)
            | Node::Vcpu(u, _)
            | Node::VcpuFile(u, _, _)
            | Node::WaitDir(u)
            | Node::Wait(u, _)
            | Node::SchedDir(u)
            | Node::SchedType(u)
            | Node::Sched(u, _)
            | Node::DevicesDir(u)
            | Node::Attach(u)
            | Node::Detach(u)
            | Node::StatsDir(u)
            | Node::BlockStatsDir(u)
            | Node::NetStatsDir(u)
            | Node::BlockStats(u, _)
            | Node::NetStats(u, _) => Some(u),
            _ => None,
        }
    }
}

/// Where per-domain inode numbers start. Each domain has a block of
/// `STRIDE` numbers from here, in the order domains were first seen, so a
/// domain costs one entry in the table however many of its files the
/// kernel holds (10,000 domains: one map of 10,000 entries, not two maps of
/// 40,000).
const BLOCK_BASE: u64 = 1 << 32;
const STRIDE: u64 = 32;

/// The nodes of which a domain has exactly one, besides its files: their
/// place in the domain's block (its files follow them).
const IN_BLOCK: [fn(Uuid) -> Node; 13] = [
    Node::Domain,
    Node::WaitDir,
    Node::SchedDir,
    Node::DevicesDir,
    Node::StatsDir,
    Node::VcpuDir,
    Node::IdLink,
    Node::UuidLink,
    Node::SchedType,
    Node::Attach,
    Node::Detach,
    Node::BlockStatsDir,
    Node::NetStatsDir,
];

const _: () = assert!(IN_BLOCK.len() + DomFile::ALL.len() <= STRIDE as usize);

/// A node's domain and place in the domain's block, if it has one.
fn in_block(node: Node) -> Option<(Uuid, u64)> {
    if let Node::File(u, f) = node {
        let at = DomFile::ALL.iter().position(|x| *x == f)?;
        return Some((u, (IN_BLOCK.len() + at) as u64));
    }
    let u = node.domain()?;
    let at = IN_BLOCK.iter().position(|make| make(u) == node)?;
    Some((u, at as u64))
}

/// The node at `at` in the block of domain `u`.
fn from_block(u: Uuid, at: u64) -> Option<Node> {
    let at = usize::try_from(at).ok()?;
    match IN_BLOCK.get(at) {
        Some(make) => Some(make(u)),
        None => DomFile::ALL
            .get(at - IN_BLOCK.len())
            .map(|f| Node::File(u, *f)),
    }
}

/// Inode numbers: fixed for the root's own nodes, a block per domain for
/// the nodes every domain has, handed out on first sight for the others
/// (vCPUs, statistics, temporary files); all kept until unmount.
pub struct InodeTable {
    by_node: HashMap<Node, u64>,
    by_ino: HashMap<u64, Node>,
    next: u64,
    /// Each domain's block, by UUID, and the UUID of each block.
    blocks: HashMap<Uuid, u32>,
    owners: Vec<Uuid>,
    /// Which numbers of each block were handed out (bit per place), so
    /// `peek` names only inodes the kernel may hold.
    handed: Vec<u32>,
    /// Each block's domain's generation (see `feed`): what was built from
    /// the domain at an older one is stale. Kept here, by block, since
    /// only a domain the kernel knows has anything to go stale.
    generations: Vec<u64>,
}

pub const ROOT_INO: u64 = 1;

impl InodeTable {
    pub fn new() -> InodeTable {
        let mut t = InodeTable {
            by_node: HashMap::new(),
            by_ino: HashMap::new(),
            next: ROOT_INO,
            blocks: HashMap::new(),
            owners: Vec::new(),
            handed: Vec::new(),
            generations: Vec::new(),
        };
        t.ino(Node::Root);
        for (_, n) in Node::ROOT_ENTRIES.iter().chain(Node::NODE_ENTRIES.iter()) {
            t.ino(*n);
        }
        t.next = 64;
        t
    }

    pub fn ino(&mut self, node: Node) -> u64 {
        if let Some((u, at)) = in_block(node) {
            let block = match self.blocks.get(&u) {
                Some(b) => *b as usize,
                None => {
                    let b = self.owners.len();
                    self.blocks.insert(u, b as u32);
                    self.owners.push(u);
                    self.handed.push(0);
                    self.generations.push(0);
                    b
                }
            };
            self.handed[block] |= 1 << at;
            return BLOCK_BASE + block as u64 * STRIDE + at;
        }
        if let Some(&i) = self.by_node.get(&node) {
            return i;
        }
        let i = self.next;
        self.next += 1;
        self.by_node.insert(node, i);
        self.by_ino.insert(i, node);
        i
    }

    /// The domain's generation: 0 until an event about it after it got
    /// its block.
    pub fn generation(&self, u: Uuid) -> u64 {
        self.block(u)
            .and_then(|b| self.generations.get(b).copied())
            .unwrap_or(0)
    }

    /// Sets the domain's generation, if it has a block.
    pub fn set_generation(&mut self, u: Uuid, generation: u64) {
        if let Some(g) = self.block(u).and_then(|b| self.generations.get_mut(b)) {
            *g = generation;
        }
    }

    /// The domain's block (its index among the domains seen), if it has one.
    pub fn block(&self, u: Uuid) -> Option<usize> {
        self.blocks.get(&u).map(|b| *b as usize)
    }

    /// The inode `node` has, without handing one out.
    pub fn peek(&self, node: Node) -> Option<u64> {
        if let Some((u, at)) = in_block(node) {
            let block = *self.blocks.get(&u)? as usize;
            return (self.handed[block] & (1 << at) != 0)
                .then_some(BLOCK_BASE + block as u64 * STRIDE + at);
        }
        self.by_node.get(&node).copied()
    }

    pub fn node(&self, ino: u64) -> Option<Node> {
        if let Some(n) = self.by_ino.get(&ino) {
            return Some(*n);
        }
        let rel = ino.checked_sub(BLOCK_BASE)?;
        let block = usize::try_from(rel / STRIDE).ok()?;
        let at = rel % STRIDE;
        if self.handed.get(block)? & (1 << at) == 0 {
            return None;
        }
        from_block(self.owners[block], at)
    }

    /// Makes `ino` stand for `node` too. A temporary file renamed over `xml`
    /// keeps its inode in the kernel's cache under the name `xml`, so that
    /// inode must go on meaning `xml`.
    pub fn alias(&mut self, ino: u64, node: Node) {
        self.by_ino.insert(ino, node);
    }
}

impl Default for InodeTable {
    fn default() -> Self {
        InodeTable::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inodes_are_stable_and_unique() {
        let mut t = InodeTable::new();
        assert_eq!(t.ino(Node::Root), ROOT_INO);
        let u = Uuid([7; 16]);
        let a = t.ino(Node::File(u, DomFile::State));
        let b = t.ino(Node::File(u, DomFile::Xml));
        assert_ne!(a, b);
        assert_eq!(t.ino(Node::File(u, DomFile::State)), a);
        assert_eq!(t.node(a), Some(Node::File(u, DomFile::State)));
        assert!(a >= 64);
        assert_eq!(t.node(9999), None);
        // Every node a domain has one of has a place in its block, and
        // back; a number not handed out means nothing.
        let w = Uuid([8; 16]);
        assert_eq!(t.peek(Node::File(w, DomFile::Xml)), None);
        let mut seen = std::collections::HashSet::new();
        for n in IN_BLOCK
            .iter()
            .map(|make| make(w))
            .chain(DomFile::ALL.map(|f| Node::File(w, f)))
        {
            let i = t.ino(n);
            assert!(seen.insert(i), "{n:?}");
            assert_eq!((t.node(i), t.peek(n)), (Some(n), Some(i)));
        }
        let dir = t.ino(Node::Domain(w));
        assert_eq!(t.node(dir + STRIDE - 1), None);
        // The others are numbered one by one, and an alias wins.
        let v = t.ino(Node::Vcpu(w, 0));
        assert_eq!(t.node(v), Some(Node::Vcpu(w, 0)));
        t.alias(a, Node::File(u, DomFile::Xml));
        assert_eq!(t.node(a), Some(Node::File(u, DomFile::Xml)));
    }

    #[test]
    fn modes_follow_the_interface() {
        let u = Uuid([1; 16]);
        assert_eq!(Node::File(u, DomFile::State).mode(), 0o444);
        assert_eq!(Node::File(u, DomFile::Xml).mode(), 0o644);
        assert_eq!(Node::File(u, DomFile::Memory).mode(), 0o644);
        assert_eq!(Node::File(u, DomFile::Control).mode(), 0o644);
        assert_eq!(Node::File(u, DomFile::InactiveXml).mode(), 0o444);
        assert_eq!(Node::Create.mode(), 0o200);
        assert_eq!(Node::Domain(u).mode(), 0o555);
        assert_eq!(Node::File(u, DomFile::Info).write_kind(), None);
        assert_eq!(Node::Define.write_kind(), Some(WriteKind::Document));
        assert_eq!(Node::Restore.write_kind(), Some(WriteKind::Command));
        for f in DomFile::ALL {
            assert_eq!(DomFile::from_name(f.name()), Some(f));
            // Writable exactly when some write bit is set; readable by all.
            let n = Node::File(u, f);
            assert_eq!(n.write_kind().is_some(), n.mode() & 0o222 != 0, "{f:?}");
            assert_eq!(n.mode() & 0o444, 0o444, "{f:?}");
        }
        for f in VcpuFile::ALL {
            assert_eq!(VcpuFile::from_name(f.name()), Some(f));
            let n = Node::VcpuFile(u, 0, f);
            assert_eq!(n.write_kind().is_some(), n.mode() & 0o222 != 0, "{f:?}");
            assert_eq!(n.domain(), Some(u));
        }
        assert_eq!(Node::Metrics.mode(), 0o444);
        assert_eq!(Node::Vcpu(u, 1).kind(), FileType::Directory);
        assert_eq!(Node::File(u, DomFile::Autostart).mode(), 0o644);
        assert_eq!(Node::File(u, DomFile::MaxVcpus).mode(), 0o444);
    }
}
