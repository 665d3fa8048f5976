//! The simulated xenstore database: nodes with values, permission lists and
//! generation counts; permission checks, transactions with conflict detection,
//! watches and quotas as Xen 4.17's daemons apply them.
//!
//! It knows nothing of sockets (the server feeds it decoded requests) nor of
//! guests (the host model writes the tree as a toolstack would).

use domfs::driver::xenstore::wire::{Access, ErrName, Perm};
use domfs::sync::lock;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Which 4.17 daemon to behave like where the two differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// C xenstored: DIRECTORY_PART, E2BIG for big replies, ENOSPC quotas.
    C,
    /// oxenstored (Debian's default): no DIRECTORY_PART, EQUOTA, big replies
    /// sent whole on the socket.
    Ocaml,
}

/// Unprivileged quotas (the C daemon's defaults; oxenstored's are close).
pub const QUOTA_NODES: usize = 1000;
pub const QUOTA_WATCHES: usize = 128;
pub const QUOTA_VALUE: usize = 2048;
pub const QUOTA_TRANSACTIONS: usize = 10;
pub const QUOTA_PERMS: usize = 5;

#[derive(Debug, Clone)]
pub struct Node {
    pub value: Vec<u8>,
    pub perms: Vec<Perm>,
    pub children: Vec<String>,
    pub gen: u64,
}

type Tree = HashMap<String, Node>;
/// What a transaction looked at: path → generation seen (None: absent).
type Seen = HashMap<String, Option<u64>>;

/// Who is asking: a connection and the domain it speaks for (0 = dom0,
/// privileged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub conn: u64,
    pub domid: u32,
}

impl Caller {
    pub fn privileged(self) -> bool {
        self.domid == 0
    }
}

/// A connection's pending watch events, bounded. Its writer sends them
/// before the next reply, so an event never trails a reply to a later
/// request, as with the daemons' single output queue.
pub struct EventQueue {
    q: Mutex<VecDeque<(String, String)>>,
    ready: Condvar,
    cap: usize,
    pub closed: AtomicBool,
}

impl EventQueue {
    pub fn new(cap: usize) -> EventQueue {
        EventQueue {
            q: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            cap,
            closed: AtomicBool::new(false),
        }
    }

    /// Queues an event; false (and the event dropped) when full.
    pub fn push(&self, ev: (String, String)) -> bool {
        let mut q = lock(&self.q);
        if q.len() >= self.cap {
            return false;
        }
        q.push_back(ev);
        self.ready.notify_one();
        true
    }

    pub fn take_all(&self) -> Vec<(String, String)> {
        let mut q = lock(&self.q);
        q.drain(..).collect()
    }

    /// Waits until something is queued, the queue is closed, or `t` passed.
    pub fn wait(&self, t: Duration) {
        let q = lock(&self.q);
        if q.is_empty() && !self.closed.load(Ordering::SeqCst) {
            let _ = self.ready.wait_timeout(q, t);
        }
    }
}

/// Where a watch's events go.
#[derive(Clone)]
pub enum Sink {
    /// A client connection.
    Conn(std::sync::Arc<EventQueue>),
    /// The host model inside the simulator.
    Host(Sender<(String, String)>),
}

struct Watch {
    caller: Caller,
    path: String,
    token: String,
    relative: bool,
    sink: Sink,
}

struct Tx {
    caller: Caller,
    view: Tree,
    seen: Seen,
    ops: Vec<Op>,
}

#[derive(Clone)]
enum Op {
    Write(String, Vec<u8>),
    Mkdir(String),
    Rm(String),
    SetPerms(String, Vec<Perm>),
}

/// A change to report to watchers: the path, the permissions to check the
/// watcher's read access against, and whether the node was removed.
struct Change {
    path: String,
    perms: Vec<Perm>,
    removed: bool,
}

pub type XsResult<T> = Result<T, ErrName>;

pub struct Store {
    tree: Tree,
    gen: u64,
    pub flavour: Flavour,
    special: HashMap<String, Vec<Perm>>,
    watches: Vec<Watch>,
    txs: HashMap<(u64, u32), Tx>,
    next_tx: u32,
    targets: HashMap<u32, u32>,
}

pub const INTRODUCE: &str = "@introduceDomain";
pub const RELEASE: &str = "@releaseDomain";

fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

fn base(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn is_under(path: &str, top: &str) -> bool {
    path == top
        || top == "/"
        || (path.starts_with(top) && path.as_bytes().get(top.len()) == Some(&b'/'))
}

impl Store {
    pub fn new(flavour: Flavour) -> Store {
        let mut s = Store {
            tree: HashMap::new(),
            gen: 1,
            flavour,
            special: HashMap::new(),
            watches: Vec::new(),
            txs: HashMap::new(),
            next_tx: 1,
            targets: HashMap::new(),
        };
        s.tree.insert(
            "/".into(),
            Node {
                value: Vec::new(),
                perms: vec![Perm::new(Access::None, 0)],
                children: Vec::new(),
                gen: 1,
            },
        );
        for sp in [INTRODUCE, RELEASE] {
            s.special
                .insert(sp.into(), vec![Perm::new(Access::None, 0)]);
        }
        s
    }

    /// An absolute path: relative ones resolve under the caller's domain.
    pub fn absolute(caller: Caller, path: &str) -> String {
        if path.starts_with('/') || path.starts_with('@') {
            path.to_string()
        } else {
            format!("/local/domain/{}/{path}", caller.domid)
        }
    }

    fn quota_err(&self) -> ErrName {
        match self.flavour {
            Flavour::C => ErrName::Enospc,
            Flavour::Ocaml => ErrName::Equota,
        }
    }

    fn access(&self, caller: Caller, perms: &[Perm]) -> Access {
        if caller.privileged() {
            return Access::Both;
        }
        let ids = [Some(caller.domid), self.targets.get(&caller.domid).copied()];
        let Some(owner) = perms.first() else {
            return Access::None;
        };
        for id in ids.into_iter().flatten() {
            if owner.domid == id {
                return Access::Both;
            }
            if let Some(p) = perms[1..].iter().find(|p| p.domid == id) {
                return p.access;
            }
        }
        owner.access
    }

    /// The nearest existing node at or above `path` in `tree`.
    fn nearest<'a>(tree: &'a Tree, path: &str) -> (&'a str, &'a Node) {
        let mut p = path;
        loop {
            if let Some((k, n)) = tree.get_key_value(p) {
                return (k.as_str(), n);
            }
            p = parent(p).unwrap_or("/");
        }
    }

    /// The node for reading: ENOENT if missing and the caller may know,
    /// EACCES if missing under a node it cannot read, or if it cannot read it.
    fn readable<'a>(&self, tree: &'a Tree, caller: Caller, path: &str) -> XsResult<&'a Node> {
        match tree.get(path) {
            Some(n) if self.access(caller, &n.perms).can_read() => Ok(n),
            Some(_) => Err(ErrName::Eacces),
            None => {
                let (_, n) = Store::nearest(tree, path);
                if self.access(caller, &n.perms).can_read() {
                    Err(ErrName::Enoent)
                } else {
                    Err(ErrName::Eacces)
                }
            }
        }
    }

    fn tree_for(&mut self, caller: Caller, tx: u32) -> XsResult<(&mut Tree, Option<&mut Seen>)> {
        if tx == 0 {
            Ok((&mut self.tree, None))
        } else {
            let t = self
                .txs
                .get_mut(&(caller.conn, tx))
                .ok_or(ErrName::Enoent)?;
            Ok((&mut t.view, Some(&mut t.seen)))
        }
    }

    fn note(tree: &Tree, seen: &mut Option<&mut Seen>, path: &str) {
        if let Some(s) = seen {
            let mut p = Some(path);
            while let Some(q) = p {
                s.entry(q.to_string())
                    .or_insert_with(|| tree.get(q).map(|n| n.gen));
                if tree.contains_key(q) {
                    break;
                }
                p = parent(q);
            }
        }
    }

    /// The absolute form of `path`, noted as read by transaction `tx`.
    fn observe(&mut self, caller: Caller, tx: u32, path: &str) -> XsResult<String> {
        let path = Store::absolute(caller, path);
        let (tree, mut seen) = self.tree_for(caller, tx)?;
        Store::note(tree, &mut seen, &path);
        Ok(path)
    }

    /// The tree a request of `tx` sees (one `observe` has checked it exists).
    fn view(&self, caller: Caller, tx: u32) -> &Tree {
        if tx == 0 {
            &self.tree
        } else {
            &self.txs[&(caller.conn, tx)].view
        }
    }

    pub fn read(&mut self, caller: Caller, tx: u32, path: &str) -> XsResult<Vec<u8>> {
        let path = self.observe(caller, tx, path)?;
        Ok(self
            .readable(self.view(caller, tx), caller, &path)?
            .value
            .clone())
    }

    pub fn directory(
        &mut self,
        caller: Caller,
        tx: u32,
        path: &str,
    ) -> XsResult<(u64, Vec<String>)> {
        let path = self.observe(caller, tx, path)?;
        let n = self.readable(self.view(caller, tx), caller, &path)?;
        Ok((n.gen, n.children.clone()))
    }

    pub fn get_perms(&mut self, caller: Caller, tx: u32, path: &str) -> XsResult<Vec<Perm>> {
        let path = Store::absolute(caller, path);
        if let Some(p) = self.special.get(&path) {
            return Ok(p.clone());
        }
        let path = self.observe(caller, tx, &path)?;
        Ok(self
            .readable(self.view(caller, tx), caller, &path)?
            .perms
            .clone())
    }

    /// Applies a change outside or inside a transaction. Inside, it goes to
    /// the private view and the log; outside, to the tree, and watches fire.
    fn change(&mut self, caller: Caller, tx: u32, op: Op) -> XsResult<()> {
        if tx == 0 {
            let mut tree = std::mem::take(&mut self.tree);
            let r = self.apply(&mut tree, caller, &op);
            self.tree = tree;
            let changes = r?;
            self.fire(&changes);
            return Ok(());
        }
        let key = (caller.conn, tx);
        let mut t = self.txs.remove(&key).ok_or(ErrName::Enoent)?;
        let path = match &op {
            Op::Write(p, _) | Op::Mkdir(p) | Op::Rm(p) | Op::SetPerms(p, _) => p.clone(),
        };
        Store::note(&t.view, &mut Some(&mut t.seen), &path);
        if let Some(pp) = parent(&path) {
            Store::note(&t.view, &mut Some(&mut t.seen), pp);
        }
        let r = self.apply(&mut t.view, caller, &op);
        if r.is_ok() {
            t.ops.push(op);
        }
        self.txs.insert(key, t);
        r.map(|_| ())
    }

    pub fn write(&mut self, caller: Caller, tx: u32, path: &str, value: &[u8]) -> XsResult<()> {
        let path = Store::absolute(caller, path);
        self.change(caller, tx, Op::Write(path, value.to_vec()))
    }

    pub fn mkdir(&mut self, caller: Caller, tx: u32, path: &str) -> XsResult<()> {
        let path = Store::absolute(caller, path);
        self.change(caller, tx, Op::Mkdir(path))
    }

    pub fn rm(&mut self, caller: Caller, tx: u32, path: &str) -> XsResult<()> {
        let path = Store::absolute(caller, path);
        self.change(caller, tx, Op::Rm(path))
    }

    pub fn set_perms(
        &mut self,
        caller: Caller,
        tx: u32,
        path: &str,
        perms: &[Perm],
    ) -> XsResult<()> {
        let path = Store::absolute(caller, path);
        if !caller.privileged() && perms.len() > QUOTA_PERMS {
            return Err(self.quota_err());
        }
        if let Some(old) = self.special.get(&path) {
            if !caller.privileged() {
                return Err(if old[0].domid == caller.domid {
                    ErrName::Eperm
                } else {
                    ErrName::Eacces
                });
            }
            self.special.insert(path, perms.to_vec());
            return Ok(());
        }
        self.change(caller, tx, Op::SetPerms(path, perms.to_vec()))
    }

    fn owned_by(tree: &Tree, domid: u32) -> usize {
        tree.values()
            .filter(|n| n.perms.first().map(|p| p.domid) == Some(domid))
            .count()
    }

    fn bump(&mut self) -> u64 {
        self.gen += 1;
        self.gen
    }

    /// Creates `path` and missing parents; parents get empty values.
    fn create(&mut self, tree: &mut Tree, caller: Caller, path: &str) -> XsResult<Vec<Change>> {
        let (top, top_node) = Store::nearest(tree, path);
        if !self.access(caller, &top_node.perms).can_write() {
            return Err(ErrName::Eacces);
        }
        let top = top.to_string();
        let mut missing = Vec::new();
        let mut p = path;
        while p != top {
            missing.push(p.to_string());
            p = parent(p).unwrap_or("/");
        }
        if !caller.privileged() && Store::owned_by(tree, caller.domid) + missing.len() > QUOTA_NODES
        {
            return Err(self.quota_err());
        }
        let mut changes = Vec::new();
        for m in missing.into_iter().rev() {
            let par = parent(&m).unwrap_or("/").to_string();
            let gen = self.bump();
            let pnode = tree.get_mut(&par).ok_or(ErrName::Eio)?;
            let mut perms = pnode.perms.clone();
            if !caller.privileged() {
                perms[0].domid = caller.domid;
            }
            pnode.children.push(base(&m).to_string());
            pnode.gen = gen;
            changes.push(Change {
                path: m.clone(),
                perms: perms.clone(),
                removed: false,
            });
            tree.insert(
                m,
                Node {
                    value: Vec::new(),
                    perms,
                    children: Vec::new(),
                    gen,
                },
            );
        }
        Ok(changes)
    }

    fn apply(&mut self, tree: &mut Tree, caller: Caller, op: &Op) -> XsResult<Vec<Change>> {
        match op {
            Op::Write(path, value) => {
                if !caller.privileged() && value.len() > QUOTA_VALUE {
                    return Err(self.quota_err());
                }
                let mut changes = match tree.get(path.as_str()) {
                    Some(n) if !self.access(caller, &n.perms).can_write() => {
                        return Err(ErrName::Eacces)
                    }
                    Some(_) => Vec::new(),
                    None => self.create(tree, caller, path)?,
                };
                let gen = self.bump();
                let n = tree.get_mut(path.as_str()).ok_or(ErrName::Eio)?;
                n.value = value.clone();
                n.gen = gen;
                changes.retain(|c| c.path != *path);
                changes.push(Change {
                    path: path.clone(),
                    perms: n.perms.clone(),
                    removed: false,
                });
                Ok(changes)
            }
            Op::Mkdir(path) => match tree.get(path.as_str()) {
                Some(n) if !self.access(caller, &n.perms).can_write() => Err(ErrName::Eacces),
                Some(_) => Ok(Vec::new()),
                None => self.create(tree, caller, path),
            },
            Op::Rm(path) => {
                if path == "/" {
                    return Err(ErrName::Einval);
                }
                let Some(n) = tree.get(path.as_str()) else {
                    let par = parent(path).unwrap_or("/");
                    return match tree.get(par) {
                        Some(p) if self.access(caller, &p.perms).can_read() => Ok(Vec::new()),
                        Some(_) => Err(ErrName::Eacces),
                        None => Err(self
                            .readable(tree, caller, par)
                            .err()
                            .unwrap_or(ErrName::Enoent)),
                    };
                };
                if !self.access(caller, &n.perms).can_write() {
                    return Err(ErrName::Eacces);
                }
                let perms = n.perms.clone();
                // Iterative removal of the subtree.
                let mut stack = vec![path.clone()];
                while let Some(p) = stack.pop() {
                    if let Some(n) = tree.remove(&p) {
                        for c in n.children {
                            stack.push(if p == "/" {
                                format!("/{c}")
                            } else {
                                format!("{p}/{c}")
                            });
                        }
                    }
                }
                let gen = self.bump();
                if let Some(p) = tree.get_mut(parent(path).unwrap_or("/")) {
                    let b = base(path);
                    p.children.retain(|c| c != b);
                    p.gen = gen;
                }
                Ok(vec![Change {
                    path: path.clone(),
                    perms,
                    removed: true,
                }])
            }
            Op::SetPerms(path, perms) => {
                let gen = self.bump();
                let n = match tree.get_mut(path.as_str()) {
                    Some(n) => n,
                    None => {
                        return Err(self
                            .readable(tree, caller, path)
                            .err()
                            .unwrap_or(ErrName::Enoent))
                    }
                };
                if !caller.privileged() {
                    if n.perms[0].domid != caller.domid {
                        return Err(ErrName::Eacces);
                    }
                    if perms[0].domid != caller.domid {
                        return Err(ErrName::Eperm);
                    }
                }
                n.perms = perms.clone();
                n.gen = gen;
                Ok(vec![Change {
                    path: path.clone(),
                    perms: perms.clone(),
                    removed: false,
                }])
            }
        }
    }

    /// Sends events for changes to every watch that covers them and whose
    /// owner may read the node.
    fn fire(&mut self, changes: &[Change]) {
        let mut events = Vec::new();
        for c in changes {
            for (i, w) in self.watches.iter().enumerate() {
                if w.path.starts_with('@') {
                    continue;
                }
                let epath = if is_under(&c.path, &w.path) {
                    c.path.clone()
                } else if c.removed && is_under(&w.path, &c.path) {
                    w.path.clone()
                } else {
                    continue;
                };
                if !self.access(w.caller, &c.perms).can_read() {
                    continue;
                }
                events.push((i, epath));
            }
        }
        for (i, epath) in events {
            self.send(i, epath);
        }
    }

    fn send(&self, i: usize, epath: String) {
        let w = &self.watches[i];
        let prefix = format!("/local/domain/{}/", w.caller.domid);
        let epath = match epath.strip_prefix(&prefix) {
            Some(rel) if w.relative => rel.to_string(),
            _ => epath,
        };
        let ev = (epath, w.token.clone());
        match &w.sink {
            Sink::Conn(q) => {
                if !q.push(ev) {
                    log::warn!(
                        "connection {}: event queue full, event dropped",
                        w.caller.conn
                    );
                }
            }
            Sink::Host(tx) => {
                let _ = tx.send(ev);
            }
        }
    }

    /// Fires `@introduceDomain` or `@releaseDomain` for whoever may see it.
    pub fn fire_special(&mut self, name: &str) {
        let perms = self.special.get(name).cloned().unwrap_or_default();
        let hits: Vec<usize> = self
            .watches
            .iter()
            .enumerate()
            .filter(|(_, w)| w.path == name && self.access(w.caller, &perms).can_read())
            .map(|(i, _)| i)
            .collect();
        for i in hits {
            self.send(i, name.to_string());
        }
    }

    pub fn watch(&mut self, caller: Caller, path: &str, token: &str, sink: Sink) -> XsResult<()> {
        let relative = !path.starts_with('/') && !path.starts_with('@');
        let abs = Store::absolute(caller, path);
        if self
            .watches
            .iter()
            .any(|w| w.caller.conn == caller.conn && w.path == abs && w.token == token)
        {
            return Err(ErrName::Eexist);
        }
        if !caller.privileged()
            && self
                .watches
                .iter()
                .filter(|w| w.caller.conn == caller.conn)
                .count()
                >= QUOTA_WATCHES
        {
            return Err(match self.flavour {
                Flavour::C => ErrName::E2big,
                Flavour::Ocaml => ErrName::Equota,
            });
        }
        self.watches.push(Watch {
            caller,
            path: abs,
            token: token.into(),
            relative,
            sink,
        });
        // The initial event, right after the OK.
        let i = self.watches.len() - 1;
        self.send(i, Store::absolute(caller, path));
        Ok(())
    }

    pub fn unwatch(&mut self, caller: Caller, path: &str, token: &str) -> XsResult<()> {
        let abs = Store::absolute(caller, path);
        let before = self.watches.len();
        self.watches
            .retain(|w| !(w.caller.conn == caller.conn && w.path == abs && w.token == token));
        if self.watches.len() == before {
            return Err(ErrName::Enoent);
        }
        Ok(())
    }

    pub fn transaction_start(&mut self, caller: Caller) -> XsResult<u32> {
        if !caller.privileged()
            && self.txs.keys().filter(|(c, _)| *c == caller.conn).count() >= QUOTA_TRANSACTIONS
        {
            return Err(self.quota_err());
        }
        let id = self.next_tx;
        self.next_tx = self.next_tx.wrapping_add(1).max(1);
        self.txs.insert(
            (caller.conn, id),
            Tx {
                caller,
                view: self.tree.clone(),
                seen: HashMap::new(),
                ops: Vec::new(),
            },
        );
        Ok(id)
    }

    /// Ends a transaction: on commit, EAGAIN if anything it looked at
    /// changed meanwhile, else its changes land and their watches fire.
    pub fn transaction_end(&mut self, caller: Caller, tx: u32, commit: bool) -> XsResult<()> {
        let t = self.txs.remove(&(caller.conn, tx)).ok_or(ErrName::Enoent)?;
        if !commit {
            return Ok(());
        }
        let conflict = t
            .seen
            .iter()
            .any(|(p, g)| self.tree.get(p).map(|n| n.gen) != *g);
        if conflict {
            return Err(ErrName::Eagain);
        }
        let mut tree = std::mem::take(&mut self.tree);
        let mut changes = Vec::new();
        let mut failed = None;
        for op in &t.ops {
            match self.apply(&mut tree, t.caller, op) {
                Ok(c) => changes.extend(c),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if failed.is_some() {
            // Cannot happen after a clean conflict check; keep the tree as
            // it was rather than half a transaction.
            return Err(ErrName::Eio);
        }
        self.tree = tree;
        self.fire(&changes);
        Ok(())
    }

    /// A connection went away or asked RESET_WATCHES: its watches and
    /// transactions go.
    pub fn forget(&mut self, conn: u64) {
        self.watches.retain(|w| w.caller.conn != conn);
        self.txs.retain(|(c, _), _| *c != conn);
    }

    pub fn set_target(&mut self, domid: u32, target: u32) {
        self.targets.insert(domid, target);
    }

    pub fn exists(&self, path: &str) -> bool {
        self.tree.contains_key(path)
    }
}

#[cfg(test)]
mod tests;
