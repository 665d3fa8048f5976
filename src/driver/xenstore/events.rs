//! xenstore's watches as lifecycle events. `@introduceDomain` and
//! `@releaseDomain` say that some domain came or went, so the domain list is
//! read again and compared with the last one (`started`, `stopped`); a watch
//! on `/local/domain` reports the keys a toolstack writes for a running
//! domain (`memory/target`: `memory-changed`; `control/shutdown`:
//! `shutdown-requested`). The reading happens on a thread of its own: the
//! client's reader thread, where watch events arrive, must not make requests.

use super::{list_domains, Client};
use crate::events::Bus;
use crate::model::{DomainRef, Event, EventKind, StopReason};
use crate::sync::lock;
use std::collections::{HashMap, HashSet};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

/// What the client's reader thread hands on.
pub enum Signal {
    /// A domain came or went, or the connection was restored.
    Domains,
    /// A key under `/local/domain` changed.
    Key(String),
}

/// The event a changed key stands for, and the domain id it is under.
pub fn key_event(path: &str) -> Option<(u32, EventKind)> {
    let rest = path.strip_prefix("/local/domain/")?;
    let (id, key) = rest.split_once('/')?;
    let id = id.parse().ok()?;
    match key {
        "memory/target" => Some((id, EventKind::MemoryChanged)),
        "control/shutdown" => Some((id, EventKind::ShutdownRequested)),
        _ => None,
    }
}

/// Whether `control/shutdown` holds a request: one of the words a guest
/// acts on (Linux's `drivers/xen/manage.c`: poweroff, halt, reboot,
/// suspend). The key is the guest's to write, so anything else there (an
/// acknowledgement's empty value, or junk) is no request.
pub fn is_request(value: &[u8]) -> bool {
    matches!(value, b"poweroff" | b"halt" | b"reboot" | b"suspend")
}

/// Whether a change at `path` may change which name or UUID a domain id
/// has: its `name` or `vm` key, or its whole directory.
pub fn names_change(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/local/domain/") else {
        return false;
    };
    let (id, key) = rest.split_once('/').unwrap_or((rest, ""));
    id.parse::<u32>().is_ok() && matches!(key, "" | "name" | "vm")
}

/// Compares two domain lists: what started and what stopped.
pub fn diff(old: &HashMap<u32, DomainRef>, new: &[DomainRef]) -> Vec<(EventKind, DomainRef)> {
    let mut out = Vec::new();
    let new_ids: HashMap<u32, &DomainRef> =
        new.iter().filter_map(|d| d.id.map(|i| (i.0, d))).collect();
    for (id, d) in old {
        if !new_ids.contains_key(id) {
            out.push((EventKind::Stopped(StopReason::Shutdown), d.clone()));
        }
    }
    for (id, d) in &new_ids {
        if !old.contains_key(id) {
            out.push((EventKind::Started, (*d).clone()));
        }
    }
    out
}

fn index(list: Vec<DomainRef>) -> HashMap<u32, DomainRef> {
    list.into_iter()
        .filter_map(|d| d.id.map(|i| (i.0, d)))
        .collect()
}

/// The thread: turns signals into events until the driver goes.
pub fn run(client: Client, bus: Bus, rx: Receiver<Signal>, own: Arc<Mutex<HashSet<u32>>>) {
    let mut known = index(list_domains(&client).unwrap_or_default());
    let publish = |kind: EventKind, d: &DomainRef| {
        bus.publish(Event::now(kind, d.name.as_str(), d.id, d.uuid));
    };
    for signal in rx {
        match signal {
            Signal::Domains => match list_domains(&client) {
                Ok(now) => {
                    for (kind, d) in diff(&known, &now) {
                        publish(kind, &d);
                    }
                    known = index(now);
                }
                Err(e) => log::info!("xenstore events: listing domains: {e}"),
            },
            Signal::Key(path) => {
                let Some((id, kind)) = key_event(&path) else {
                    continue;
                };
                let Some(d) = known.get(&id) else { continue };
                if kind == EventKind::ShutdownRequested {
                    // The driver published its own request already.
                    if lock(&own).remove(&id) {
                        continue;
                    }
                    // An emptied request (the guest acknowledging) is none,
                    // nor is junk the guest wrote there.
                    if !client.read(0, &path).is_ok_and(|v| is_request(&v)) {
                        continue;
                    }
                }
                publish(kind, d);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DomainId, DomainName, Uuid};

    fn dom(id: u32) -> DomainRef {
        DomainRef {
            name: DomainName(format!("d{id}")),
            uuid: Uuid([id as u8; 16]),
            id: Some(DomainId(id)),
        }
    }

    #[test]
    fn keys_name_their_events() {
        assert_eq!(
            key_event("/local/domain/3/memory/target"),
            Some((3, EventKind::MemoryChanged))
        );
        assert_eq!(
            key_event("/local/domain/12/control/shutdown"),
            Some((12, EventKind::ShutdownRequested))
        );
        assert_eq!(key_event("/local/domain/3/memory/static-max"), None);
        assert_eq!(key_event("/local/domain/x/memory/target"), None);
        assert_eq!(key_event("/vm/abc"), None);
    }

    #[test]
    fn only_words_a_guest_acts_on_are_requests() {
        for yes in ["poweroff", "halt", "reboot", "suspend"] {
            assert!(is_request(yes.as_bytes()), "{yes}");
        }
        for no in [
            &b""[..],
            b"poweroff\n",
            b"reboot\0",
            b"x",
            b"Poweroff",
            b"\xff",
        ] {
            assert!(!is_request(no), "{no:?}");
        }
    }

    #[test]
    fn renames_are_told_from_other_keys() {
        for yes in [
            "/local/domain/3/name",
            "/local/domain/3/vm",
            "/local/domain/3",
        ] {
            assert!(names_change(yes), "{yes}");
        }
        for no in [
            "/local/domain",
            "/local/domain/3/memory/target",
            "/local/domain/3/name/x",
            "/local/domain/x/name",
            "/vm/abc/name",
        ] {
            assert!(!names_change(no), "{no}");
        }
    }

    #[test]
    fn lists_are_compared_by_id() {
        let old = index(vec![dom(0), dom(1), dom(2)]);
        let mut got = diff(&old, &[dom(0), dom(2), dom(5)]);
        got.sort_by_key(|(_, d)| d.id);
        assert_eq!(
            got,
            vec![
                (EventKind::Stopped(StopReason::Shutdown), dom(1)),
                (EventKind::Started, dom(5)),
            ]
        );
    }
}
