//! What files and directories say: the snapshot a read serves, the size
//! `stat` shows, the names a directory holds and where a link points. Every
//! node and file is an exhaustive match here, so a new one must say what it
//! shows.

use super::tree::{
    DomFile, Node, SchedKnob, VcpuFile, DEVICES_DIR, ROOT_INO, SCHED_DIR, STATS_DIR, VCPU_DIR,
    WAIT_DIR,
};
use super::{feed, lock, names, BuiltLength, DomFs, Entries, Lengths, Listing, TTL, TTL_NONE};
use crate::error::{Error, Result};
use crate::model::{DomainId, Operation, State, Uuid};
use fuser::{FileAttr, FileType};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long `stat` may show the length `metrics` had when last built.
const METRICS_SIZE_AGE: Duration = Duration::from_secs(10);

impl DomFs {
    /// Where a symlink points.
    pub(super) fn link_target(&self, node: Node) -> Result<String> {
        let uuid = node.domain().ok_or_else(|| Error::invalid("not a link"))?;
        let dom = self.domain(uuid)?;
        if matches!(node, Node::IdLink(_)) && dom.id.is_none() {
            return Err(Error::no_domain(format!(
                "domain '{}' is not running",
                dom.name
            )));
        }
        Ok(format!("../{}", Self::dir_name(&dom)))
    }

    /// Checks that `node` still exists and returns its attributes. The size
    /// is the value's length now (tools such as `tail` and `tar` trust it),
    /// but for `metrics`, whose length stays for a while (`metrics_size`);
    /// an open file's size is its snapshot's (`getattr`).
    pub(super) fn stat(&self, ino: u64, node: Node) -> Result<FileAttr> {
        let size = match node {
            Node::IdLink(_) | Node::UuidLink(_) => self.link_target(node)?.len() as u64,
            Node::Scratch(uuid, id) => {
                self.domain(uuid)?;
                let scratch = lock(&self.scratch);
                let f = scratch
                    .get(id)
                    .ok_or_else(|| Error::no_domain("the temporary file is gone"))?;
                f.data.len() as u64
            }
            // A stream's size is that of the caller's own open (`getattr`).
            Node::Events => 0,
            // Its one answer comes when the state does.
            Node::Wait(uuid, _) => {
                self.domain(uuid)?;
                0
            }
            // Directories and write-only files have no value to measure.
            n if n.kind() == FileType::Directory || n.mode() & 0o444 == 0 => {
                if let Some(uuid) = n.domain() {
                    self.domain(uuid)?;
                }
                0
            }
            Node::Metrics => self.metrics_size()?,
            n => match self.known_size(n)? {
                Some(len) => len,
                // A file no driver of the connection can fill still exists:
                // `ls -l` lists it, and opening it says why (EOPNOTSUPP
                // naming the operation, in `last_error` too).
                None => match self.content(n) {
                    Ok(text) => text.len() as u64,
                    Err(e) if e.is_not_supported() => 0,
                    Err(e) => return Err(e),
                },
            },
        };
        Ok(self.attr(ino, node, size))
    }

    pub(super) fn entry(&self, node: Node) -> Result<(Duration, FileAttr)> {
        let ino = self.ino(node);
        // The kernel keeps no size of a stream: each `stat` asks again.
        let ttl = if matches!(node, Node::IdLink(_) | Node::Events) {
            TTL_NONE
        } else {
            TTL
        };
        Ok((ttl, self.stat(ino, node)?))
    }

    pub(super) fn child(&self, parent: Node, name: &str) -> Result<Node> {
        let missing = || Error::no_domain(format!("no entry '{name}'"));
        match parent {
            Node::Root => {
                if let Some((_, n)) = Node::ROOT_ENTRIES.iter().find(|(n, _)| *n == name) {
                    return Ok(*n);
                }
                let dom = match names::parse_file_name(name).ok_or_else(missing)? {
                    names::Named::Name(n) => {
                        let epoch = self.feed.epoch();
                        let dom = self.dispatch.lookup_by_name(&n)?;
                        self.remember(&dom, epoch);
                        dom
                    }
                    names::Named::Shortened(uuid) => self.domain(uuid)?,
                };
                // Each domain answers to exactly one file name.
                if Self::dir_name(&dom) != name {
                    return Err(missing());
                }
                Ok(Node::Domain(dom.uuid))
            }
            Node::NodeDir => Node::NODE_ENTRIES
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, n)| *n)
                .ok_or_else(missing),
            Node::Domain(uuid) => {
                if let Some(f) = DomFile::from_name(name) {
                    return Ok(Node::File(uuid, f));
                }
                if name == VCPU_DIR {
                    self.domain(uuid)?;
                    return Ok(Node::VcpuDir(uuid));
                }
                let dir = match name {
                    WAIT_DIR => Some(Node::WaitDir(uuid)),
                    SCHED_DIR => Some(Node::SchedDir(uuid)),
                    DEVICES_DIR => Some(Node::DevicesDir(uuid)),
                    STATS_DIR => Some(Node::StatsDir(uuid)),
                    _ => None,
                };
                if let Some(dir) = dir {
                    self.domain(uuid)?;
                    return Ok(dir);
                }
                lock(&self.scratch)
                    .find(uuid, name)
                    .map(|id| Node::Scratch(uuid, id))
                    .ok_or_else(missing)
            }
            Node::ById => {
                let id: DomainId = name.parse().map_err(|_| missing())?;
                Ok(Node::IdLink(self.dispatch.lookup_by_id(id)?.uuid))
            }
            Node::ByUuid => {
                let uuid = Uuid::parse(name).map_err(|_| missing())?;
                Ok(Node::UuidLink(self.dispatch.lookup_by_uuid(uuid)?.uuid))
            }
            Node::Cells => {
                let n = number(name).ok_or_else(missing)?;
                let cells = self.dispatch.node_cells_free_memory()?;
                if (n as usize) < cells.len() {
                    Ok(Node::Cell(n))
                } else {
                    Err(missing())
                }
            }
            Node::Cell(n) if name == Node::CELL_FILE => Ok(Node::CellFreeMemory(n)),
            Node::VcpuDir(uuid) => {
                let n = number(name).ok_or_else(missing)?;
                let dom = self.domain(uuid)?;
                if self
                    .dispatch
                    .domain_vcpu_info(&dom)?
                    .iter()
                    .any(|v| v.number == n)
                {
                    Ok(Node::Vcpu(uuid, n))
                } else {
                    Err(missing())
                }
            }
            Node::Vcpu(uuid, n) => VcpuFile::from_name(name)
                .map(|f| Node::VcpuFile(uuid, n, f))
                .ok_or_else(missing),
            Node::SchedDir(uuid) => {
                if name == "type" {
                    self.domain(uuid)?;
                    return Ok(Node::SchedType(uuid));
                }
                let knob = SchedKnob::from_name(name).ok_or_else(missing)?;
                let dom = self.domain(uuid)?;
                if self
                    .dispatch
                    .domain_scheduler_params(&dom)?
                    .iter()
                    .any(|p| p.name == name)
                {
                    Ok(Node::Sched(uuid, knob))
                } else {
                    Err(missing())
                }
            }
            Node::DevicesDir(uuid) => match name {
                "attach" => Ok(Node::Attach(uuid)),
                "detach" => Ok(Node::Detach(uuid)),
                _ => Err(missing()),
            },
            Node::StatsDir(uuid) => match name {
                "block" => Ok(Node::BlockStatsDir(uuid)),
                "net" => Ok(Node::NetStatsDir(uuid)),
                _ => Err(missing()),
            },
            Node::BlockStatsDir(uuid) => {
                let names = self.domain_xml_of(uuid)?.disk_targets();
                let at = names.iter().position(|n| n == name).ok_or_else(missing)?;
                Ok(Node::BlockStats(uuid, at as u32))
            }
            Node::NetStatsDir(uuid) => {
                let names = self.domain_xml_of(uuid)?.interface_names();
                let at = names.iter().position(|n| n == name).ok_or_else(missing)?;
                Ok(Node::NetStats(uuid, at as u32))
            }
            Node::WaitDir(uuid) => {
                let state = State::ALL
                    .into_iter()
                    .find(|s| s.as_str() == name)
                    .ok_or_else(missing)?;
                self.domain(uuid)?;
                Ok(Node::Wait(uuid, state))
            }
            _ => Err(missing()),
        }
    }

    /// A directory's entries, taken once at opendir. The root's are reused
    /// while no event came and no change was made through the mount; changes
    /// made elsewhere that no event reports (a back end without watches)
    /// show within the TTL the kernel keeps names for anyway.
    pub(super) fn list(&self, dir: Node) -> Result<Entries> {
        if dir != Node::Root {
            return self.build_list(dir).map(Arc::new);
        }
        let epoch = self.feed.epoch();
        let changes = self.changes.load(Ordering::SeqCst);
        if let Some(l) = lock(&self.root_listing).as_ref() {
            if l.epoch == epoch && l.changes == changes && l.built.elapsed() < TTL {
                return Ok(l.entries.clone());
            }
        }
        let entries = Arc::new(self.build_list(dir)?);
        *lock(&self.root_listing) = Some(Listing {
            epoch,
            changes,
            built: Instant::now(),
            entries: entries.clone(),
        });
        Ok(entries)
    }

    pub(super) fn build_list(&self, dir: Node) -> Result<Vec<(u64, FileType, String)>> {
        let mut nodes = Vec::new();
        let mut push = |node: Node, name: String| nodes.push((node, name));
        match dir {
            Node::Root => {
                for (name, node) in Node::ROOT_ENTRIES {
                    push(node, name.to_string());
                }
                for d in self.dispatch.list_domains()? {
                    push(Node::Domain(d.uuid), Self::dir_name(&d));
                }
            }
            Node::NodeDir => {
                for (name, node) in Node::NODE_ENTRIES {
                    push(node, name.to_string());
                }
            }
            Node::Domain(uuid) => {
                self.domain(uuid)?;
                for f in DomFile::ALL {
                    push(Node::File(uuid, f), f.name().to_string());
                }
                push(Node::VcpuDir(uuid), VCPU_DIR.to_string());
                push(Node::WaitDir(uuid), WAIT_DIR.to_string());
                push(Node::SchedDir(uuid), SCHED_DIR.to_string());
                push(Node::DevicesDir(uuid), DEVICES_DIR.to_string());
                push(Node::StatsDir(uuid), STATS_DIR.to_string());
                for (id, name) in lock(&self.scratch).in_domain(uuid) {
                    push(Node::Scratch(uuid, id), name);
                }
            }
            Node::ById => {
                for d in self.dispatch.list_active()? {
                    if let Some(id) = d.id {
                        push(Node::IdLink(d.uuid), id.to_string());
                    }
                }
            }
            Node::ByUuid => {
                for d in self.dispatch.list_domains()? {
                    push(Node::UuidLink(d.uuid), d.uuid.to_string());
                }
            }
            Node::Cells => {
                for n in 0..self.dispatch.node_cells_free_memory()?.len() {
                    let n = u32::try_from(n).unwrap_or(u32::MAX);
                    push(Node::Cell(n), n.to_string());
                }
            }
            Node::Cell(n) => push(Node::CellFreeMemory(n), Node::CELL_FILE.to_string()),
            Node::VcpuDir(uuid) => {
                let dom = self.domain(uuid)?;
                for v in self.dispatch.domain_vcpu_info(&dom)? {
                    push(Node::Vcpu(uuid, v.number), v.number.to_string());
                }
            }
            Node::Vcpu(uuid, n) => {
                for f in VcpuFile::ALL {
                    push(Node::VcpuFile(uuid, n, f), f.name().to_string());
                }
            }
            Node::SchedDir(uuid) => {
                let dom = self.domain(uuid)?;
                push(Node::SchedType(uuid), "type".to_string());
                for p in self.dispatch.domain_scheduler_params(&dom)? {
                    if let Some(knob) = SchedKnob::from_name(&p.name) {
                        push(Node::Sched(uuid, knob), p.name);
                    }
                }
            }
            Node::DevicesDir(uuid) => {
                self.domain(uuid)?;
                push(Node::Attach(uuid), "attach".to_string());
                push(Node::Detach(uuid), "detach".to_string());
            }
            Node::StatsDir(uuid) => {
                self.domain(uuid)?;
                push(Node::BlockStatsDir(uuid), "block".to_string());
                push(Node::NetStatsDir(uuid), "net".to_string());
            }
            Node::BlockStatsDir(uuid) => {
                for (i, t) in self
                    .domain_xml_of(uuid)?
                    .disk_targets()
                    .into_iter()
                    .enumerate()
                {
                    push(Node::BlockStats(uuid, i as u32), t);
                }
            }
            Node::NetStatsDir(uuid) => {
                for (i, n) in self
                    .domain_xml_of(uuid)?
                    .interface_names()
                    .into_iter()
                    .enumerate()
                {
                    push(Node::NetStats(uuid, i as u32), n);
                }
            }
            Node::WaitDir(uuid) => {
                self.domain(uuid)?;
                for s in State::ALL {
                    push(Node::Wait(uuid, s), s.as_str().to_string());
                }
            }
            _ => return Err(Error::invalid("not a directory")),
        }
        // One lock of the inode table for the whole directory.
        let mut inodes = lock(&self.inodes);
        // Every directory hangs off the root, which is its own parent here.
        let mut out = Vec::with_capacity(nodes.len() + 2);
        out.push((inodes.ino(dir), FileType::Directory, ".".to_string()));
        out.push((ROOT_INO, FileType::Directory, "..".to_string()));
        out.extend(
            nodes
                .into_iter()
                .map(|(node, name)| (inodes.ino(node), node.kind(), name)),
        );
        Ok(out)
    }

    /// The length of `node`'s value as last built, if no event about its
    /// domain came since (and the domain is still there). Only for values
    /// that change with an event alone (`feed::watchable`).
    pub(super) fn known_size(&self, node: Node) -> Result<Option<u64>> {
        let Some((uuid, at)) = feed::watched_place(node) else {
            return Ok(None);
        };
        let known = self
            .with_memo(uuid, |m, generation| {
                let l = &m.lengths;
                (l.generation == generation)
                    .then(|| l.len.get(at).copied())
                    .flatten()
            })
            .flatten()
            .filter(|len| *len != Lengths::UNKNOWN);
        if known.is_some() {
            self.domain(uuid)?;
        }
        Ok(known.map(u64::from))
    }

    /// The size `stat` gives `metrics`: the length it had when last built,
    /// while no event came and for at most `METRICS_SIZE_AGE`. Its counters
    /// move on without events, so no size stays exact, and building it
    /// costs a call per domain: 130 ms at 10,000 domains, which every `ls
    /// -l` of the root paid once its entry's TTL ran out.
    fn metrics_size(&self) -> Result<u64> {
        let epoch = self.feed.epoch();
        if let Some(b) = lock(&self.metrics_len).as_ref() {
            if b.epoch == epoch && b.at.elapsed() < METRICS_SIZE_AGE {
                return Ok(b.len);
            }
        }
        match self.content(Node::Metrics) {
            Ok(text) => Ok(text.len() as u64),
            Err(e) if e.is_not_supported() => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// The snapshot a read of `node` serves; its length is remembered for
    /// `stat` (see `known_size`).
    pub(super) fn content(&self, node: Node) -> Result<String> {
        let place = feed::watched_place(node).map(|(u, at)| (u, at, self.generation(u)));
        let epoch = self.feed.epoch();
        let text = self.build(node)?;
        if node == Node::Metrics {
            *lock(&self.metrics_len) = Some(BuiltLength {
                epoch,
                at: Instant::now(),
                len: text.len() as u64,
            });
        }
        if let Some((uuid, at, g)) = place {
            self.with_memo(uuid, |m, _| {
                let l = &mut m.lengths;
                // A build that began before a newer one was stored is stale.
                if g > l.generation {
                    *l = Lengths::new(g);
                }
                if let Some(len) = l.len.get_mut(at).filter(|_| g == l.generation) {
                    *len = u32::try_from(text.len()).unwrap_or(Lengths::UNKNOWN);
                }
            });
        }
        Ok(text)
    }

    /// What one open of `node` serves: [`content`](Self::content), less
    /// the secrets when another user opened it.
    pub(super) fn snapshot(&self, node: Node, others: bool) -> Result<String> {
        let text = self.content(node)?;
        Ok(if others { for_others(node, text) } else { text })
    }

    /// What `node` says now.
    pub(super) fn build(&self, node: Node) -> Result<String> {
        Ok(match node {
            Node::NodeInfo => self.dispatch.node_info()?.to_text(),
            Node::NodeHypervisor => {
                let h = self.dispatch.hypervisor()?;
                format!("type {}\nversion {}\n", h.kind, h.version)
            }
            Node::RootLastError => self.last_error(None),
            // Streams: what a read says comes from the feed (`ops`).
            Node::Create | Node::Define | Node::Restore | Node::Events | Node::Wait(..) => {
                String::new()
            }
            Node::File(uuid, file) => self.domain_file(uuid, file)?,
            Node::Metrics => self.metrics()?,
            // libvirt's calls answer bytes; the files say KiB, as `memory` does.
            Node::NodeFreeMemory => format!("{}\n", self.dispatch.node_free_memory()? / 1024),
            Node::CellFreeMemory(n) => {
                let cells = self.dispatch.node_cells_free_memory()?;
                let free = cells
                    .get(n as usize)
                    .ok_or_else(|| Error::no_domain(format!("no NUMA cell {n}")))?;
                format!("{}\n", free / 1024)
            }
            Node::VcpuFile(uuid, n, file) => self.vcpu_file(uuid, n, file)?,
            Node::NodeCapabilities => {
                let mut caps = self.dispatch.node_capabilities()?;
                if !caps.ends_with('\n') {
                    caps.push('\n');
                }
                caps
            }
            Node::SchedType(uuid) => {
                format!(
                    "{}\n",
                    self.dispatch.domain_scheduler_type(&self.domain(uuid)?)?
                )
            }
            Node::Sched(uuid, knob) => {
                let dom = self.domain(uuid)?;
                let params = self.dispatch.domain_scheduler_params(&dom)?;
                let p = params
                    .iter()
                    .find(|p| p.name == knob.name())
                    .ok_or_else(|| {
                        Error::no_domain(format!("'{}' has no {} parameter", dom.name, knob.name()))
                    })?;
                format!("{}\n", p.value)
            }
            Node::BlockStats(uuid, at) => {
                let dom = self.domain(uuid)?;
                let target = self.device_name(uuid, at, false)?;
                self.dispatch.domain_block_stats(&dom, &target)?.to_text()
            }
            Node::NetStats(uuid, at) => {
                let dom = self.domain(uuid)?;
                let name = self.device_name(uuid, at, true)?;
                self.dispatch.domain_interface_stats(&dom, &name)?.to_text()
            }
            Node::Attach(_) | Node::Detach(_) => String::new(),
            Node::Cells
            | Node::Cell(_)
            | Node::VcpuDir(_)
            | Node::Vcpu(..)
            | Node::WaitDir(_)
            | Node::SchedDir(_)
            | Node::DevicesDir(_)
            | Node::StatsDir(_)
            | Node::BlockStatsDir(_)
            | Node::NetStatsDir(_) => return Err(Error::invalid("not a file")),
            Node::Root
            | Node::ById
            | Node::ByUuid
            | Node::NodeDir
            | Node::Domain(_)
            | Node::IdLink(_)
            | Node::UuidLink(_)
            | Node::Scratch(..) => return Err(Error::invalid("not a file")),
        })
    }

    pub(super) fn last_error(&self, scope: Option<Uuid>) -> String {
        lock(&self.errors)
            .get(&scope)
            .map(|m| format!("{m}\n"))
            .unwrap_or_default()
    }

    /// What a domain's file says. Each file asks only for what it shows:
    /// the domain reference (cached), then at most the one value.
    pub(super) fn domain_file(&self, uuid: Uuid, file: DomFile) -> Result<String> {
        let dom = self.domain(uuid)?;
        let id = dom.id.map_or_else(|| "-1".to_string(), |i| i.to_string());
        let d = &self.dispatch;
        Ok(match file {
            DomFile::Xml => d.domain_xml(&dom)?.to_xml(),
            DomFile::InactiveXml => d.domain_xml_inactive(&dom)?.to_xml(),
            DomFile::Id => format!("{id}\n"),
            DomFile::Uuid => format!("{}\n", dom.uuid),
            DomFile::LastError => self.last_error(Some(uuid)),
            DomFile::OsType => format!("{}\n", d.domain_os_type(&dom)?),
            DomFile::State => format!("{}\n", d.domain_info(&dom)?.state),
            DomFile::Control => {
                let state = d.domain_info(&dom)?.state;
                Operation::commands()
                    .filter(|op| op.valid_in(state) && d.supports(*op))
                    .filter_map(Operation::usage)
                    .map(|c| format!("{c}\n"))
                    .collect()
            }
            DomFile::Vcpus => format!("{}\n", d.domain_info(&dom)?.vcpus),
            DomFile::Memory => format!("{}\n", d.domain_info(&dom)?.memory_kib),
            DomFile::MaxMemory => format!("{}\n", d.domain_info(&dom)?.max_memory_kib),
            DomFile::CpuTime => format!("{}\n", d.domain_info(&dom)?.cpu_time_ns),
            DomFile::MaxVcpus => format!("{}\n", d.domain_max_vcpus(&dom)?),
            DomFile::Autostart => format!("{}\n", u8::from(d.domain_autostart(&dom)?)),
            DomFile::Info => {
                let info = d.domain_info(&dom)?;
                format!(
                    "state {}\nid {id}\nuuid {}\nos_type {}\nvcpus {}\nmemory {}\nmax_memory {}\ncpu_time {}\n",
                    info.state,
                    dom.uuid,
                    d.domain_os_type(&dom)?,
                    info.vcpus,
                    info.memory_kib,
                    info.max_memory_kib,
                    info.cpu_time_ns
                )
            }
        })
    }
}

/// A directory entry named by a number: only its one decimal spelling
/// (`1`, never `01` or `+1`), so each entry has exactly one name.
fn number(name: &str) -> Option<u32> {
    name.parse::<u32>().ok().filter(|n| n.to_string() == name)
}

impl DomFs {
    /// The domain's definition now, whose devices the `stats` directories
    /// list.
    fn domain_xml_of(&self, uuid: Uuid) -> Result<crate::model::DomainDef> {
        let dom = self.domain(uuid)?;
        self.dispatch.domain_xml(&dom)
    }

    /// The name of the disk (or interface) at place `at` of the definition.
    fn device_name(&self, uuid: Uuid, at: u32, interface: bool) -> Result<String> {
        let def = self.domain_xml_of(uuid)?;
        let names = if interface {
            def.interface_names()
        } else {
            def.disk_targets()
        };
        names
            .into_iter()
            .nth(at as usize)
            .ok_or_else(|| Error::no_domain("the device is gone"))
    }

    /// What a file of `NAME/vcpu/N/` says.
    fn vcpu_file(&self, uuid: Uuid, n: u32, file: VcpuFile) -> Result<String> {
        let dom = self.domain(uuid)?;
        let vcpu = self
            .dispatch
            .domain_vcpu_info(&dom)?
            .into_iter()
            .find(|v| v.number == n)
            .ok_or_else(|| Error::no_domain(format!("domain '{}' has no vcpu {n}", dom.name)))?;
        Ok(match file {
            VcpuFile::State => format!("{}\n", vcpu.state),
            VcpuFile::Cpu => format!("{}\n", vcpu.cpu.map_or(-1, i64::from)),
            VcpuFile::CpuTime => format!("{}\n", vcpu.cpu_time_ns),
            VcpuFile::Affinity => format!("{}\n", vcpu.affinity),
        })
    }

    /// The `metrics` file (built in `metrics`, from one list and one info
    /// call per domain). A domain that vanishes while it is built is left
    /// out rather than failing the whole file.
    fn metrics(&self) -> Result<String> {
        let d = &self.dispatch;
        let blocks = d.supports(Operation::DomainBlockStats);
        let nets = d.supports(Operation::DomainInterfaceStats);
        let mut domains = Vec::new();
        // A domain whose values cannot be read now (a back end holding
        // garbage for it) is left out, not everyone's metrics with it; only
        // when no domain could be read is the file the error.
        let mut failed = None;
        for dom in d.list_domains()? {
            let info = match d.domain_info(&dom) {
                Ok(info) => info,
                Err(e) if super::gone(&e) => continue,
                Err(e) => {
                    log::debug!("metrics: {} left out: {e}", dom.name);
                    failed.get_or_insert(e);
                    continue;
                }
            };
            let mut m = super::metrics::DomainMetrics {
                dom,
                info,
                blocks: Vec::new(),
                nets: Vec::new(),
            };
            // Devices count while the domain runs; one that cannot be read
            // now (gone meanwhile, a back end's hiccup) is left out.
            if m.dom.id.is_some() && (blocks || nets) {
                if let Ok(def) = d.domain_xml(&m.dom) {
                    for t in def.disk_targets().into_iter().filter(|_| blocks) {
                        if let Ok(s) = d.domain_block_stats(&m.dom, &t) {
                            m.blocks.push((t, s));
                        }
                    }
                    for n in def.interface_names().into_iter().filter(|_| nets) {
                        if let Ok(s) = d.domain_interface_stats(&m.dom, &n) {
                            m.nets.push((n, s));
                        }
                    }
                }
            }
            domains.push(m);
        }
        match failed {
            Some(e) if domains.is_empty() => Err(e),
            _ => Ok(super::metrics::render(&domains)),
        }
    }
}

/// What a user other than root and the mount's owner may read: domain XML
/// without the graphics passwords, as libvirt shows it to a connection that
/// did not ask for (and may not have) `VIR_DOMAIN_XML_SECURE`. Our own
/// XML always parses; if it ever did not, nothing is shown rather than too
/// much.
fn for_others(node: Node, text: String) -> String {
    if !matches!(node, Node::File(_, DomFile::Xml | DomFile::InactiveXml)) {
        return text;
    }
    let Ok(mut root) = crate::model::xml::parse_tree(&text) else {
        return String::new();
    };
    if let Some(devices) = root.child_mut("devices") {
        for child in devices.children.iter_mut() {
            if let crate::model::xml::Node::Element(e) = child {
                if e.name == "graphics" {
                    e.remove_attr("passwd");
                }
            }
        }
    }
    root.to_xml()
}
