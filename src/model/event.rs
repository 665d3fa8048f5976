//! Lifecycle events: what changed about a domain, as every driver reports it
//! and every consumer (poll, the `events` file, cache invalidation) reads it.

use super::{DomainId, Uuid};
use std::fmt;
use std::time::SystemTime;

/// Why a domain stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Shutdown,
    Destroyed,
    Crashed,
    Saved,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Shutdown => "shutdown",
            StopReason::Destroyed => "destroyed",
            StopReason::Crashed => "crashed",
            StopReason::Saved => "saved",
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Defined,
    Undefined,
    Started,
    Suspended,
    Resumed,
    Stopped(StopReason),
    ShutdownRequested,
    MemoryChanged,
    VcpusChanged,
    /// The guest rebooted itself and the toolstack built it again (its id
    /// changed); only the driver that restarts it knows.
    Rebooted,
}

/// Which way a lifecycle event moves one run of a domain (its UUID with
/// one id): every run starts once and stops once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    Up,
    Down,
}

impl EventKind {
    /// The edge this event is, if it is one; `Rebooted` is the start of a
    /// new run that only the restarting driver can tell from a plain start.
    pub fn edge(self) -> Option<Edge> {
        match self {
            EventKind::Started | EventKind::Rebooted => Some(Edge::Up),
            EventKind::Stopped(_) => Some(Edge::Down),
            EventKind::Defined
            | EventKind::Undefined
            | EventKind::Suspended
            | EventKind::Resumed
            | EventKind::ShutdownRequested
            | EventKind::MemoryChanged
            | EventKind::VcpusChanged => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Defined => "defined",
            EventKind::Undefined => "undefined",
            EventKind::Started => "started",
            EventKind::Suspended => "suspended",
            EventKind::Resumed => "resumed",
            EventKind::Stopped(_) => "stopped",
            EventKind::ShutdownRequested => "shutdown-requested",
            EventKind::MemoryChanged => "memory-changed",
            EventKind::VcpusChanged => "vcpus-changed",
            EventKind::Rebooted => "rebooted",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventKind::Stopped(r) => write!(f, "stopped {}", r.as_str()),
            other => f.write_str(other.as_str()),
        }
    }
}

/// One change to one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub at: SystemTime,
    pub kind: EventKind,
    pub name: String,
    /// The id the domain has (or had, for `stopped`), if any.
    pub id: Option<DomainId>,
    pub uuid: Uuid,
}

impl Event {
    pub fn now(kind: EventKind, name: &str, id: Option<DomainId>, uuid: Uuid) -> Event {
        Event {
            at: SystemTime::now(),
            kind,
            name: name.to_string(),
            id,
            uuid,
        }
    }
}
