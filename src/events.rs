//! The one change feed: drivers publish [`Event`]s on a [`Bus`], and each
//! subscriber (the filesystem, mostly) receives them on a bounded queue of
//! its own. Publishing never blocks: a subscriber that falls behind loses
//! events and is told so once (`overflowed`), so memory stays bounded
//! whatever the subscribers do. It knows neither drivers nor FUSE.
//!
//! On Xen several back ends see one start or stop (the toolstack that made
//! it, xenstore's listings, the hypervisor's poll), and each reports what it
//! saw, since any of them may be the only one that did. The bus keeps one:
//! a run of a domain (its UUID with one id) starts once and stops once, and
//! never starts again (a new run has a new id), so a start or stop that
//! repeats one already seen of its run is dropped, and so is a start seen
//! after the run's stop (a listing read before a destroy, reported after
//! the destroying driver's own report).

use crate::model::event::Edge;
use crate::model::{Event, EventKind, Uuid};
use crate::sync::lock;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

/// How many events a subscriber may have waiting.
pub const QUEUE: usize = 4096;
/// How many runs of domains the bus remembers the last edge of; Xen gives
/// ids in turn, so a run is forgotten long before its id comes back.
const RUNS: usize = 4096;

#[derive(Clone, Default)]
pub struct Bus {
    inner: Arc<Mutex<Inner>>,
    /// The sequence number of the last event published.
    published: Arc<AtomicU64>,
}

#[derive(Default)]
struct Inner {
    subscribers: Vec<Subscriber>,
    runs: Runs,
}

/// The last edge of each run lately seen, oldest first in `order`.
#[derive(Default)]
struct Runs {
    last: HashMap<(Uuid, u32), Edge>,
    order: VecDeque<(Uuid, u32)>,
}

impl Runs {
    /// Whether `e` is a start or stop already seen of its run (see the
    /// module doc); records it otherwise. A `rebooted` of a running run is
    /// kept: it says more than the plain start another back end may have
    /// reported first.
    fn repeats(&mut self, e: &Event) -> bool {
        let (Some(edge), Some(id)) = (e.kind.edge(), e.id) else {
            return false;
        };
        let key = (e.uuid, id.0);
        match self.last.get(&key).copied() {
            Some(Edge::Down) => true,
            Some(Edge::Up) if edge == Edge::Up => e.kind != EventKind::Rebooted,
            Some(Edge::Up) => {
                self.last.insert(key, edge);
                false
            }
            None => {
                self.last.insert(key, edge);
                self.order.push_back(key);
                if self.order.len() > RUNS {
                    if let Some(old) = self.order.pop_front() {
                        self.last.remove(&old);
                    }
                }
                false
            }
        }
    }
}

struct Subscriber {
    tx: SyncSender<(u64, Event)>,
    overflowed: Arc<AtomicBool>,
}

/// A subscriber's end: events in publishing order, each with its sequence
/// number (from 1, one more per event published on the bus).
pub struct Subscription {
    pub rx: Receiver<(u64, Event)>,
    overflowed: Arc<AtomicBool>,
}

impl Subscription {
    /// Whether events were dropped since the last call (and clears it).
    pub fn overflowed(&self) -> bool {
        self.overflowed.swap(false, Ordering::AcqRel)
    }
}

impl Bus {
    pub fn new() -> Bus {
        Bus::default()
    }

    pub fn subscribe(&self) -> Subscription {
        let (tx, rx) = sync_channel(QUEUE);
        let overflowed = Arc::new(AtomicBool::new(false));
        lock(&self.inner).subscribers.push(Subscriber {
            tx,
            overflowed: overflowed.clone(),
        });
        Subscription { rx, overflowed }
    }

    /// The sequence number of the last event published so far.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }

    pub fn publish(&self, event: Event) {
        let mut inner = lock(&self.inner);
        if inner.runs.repeats(&event) {
            log::debug!("event (seen): {} {} {}", event.kind, event.name, event.uuid);
            return;
        }
        log::debug!("event: {} {} {}", event.kind, event.name, event.uuid);
        // Numbered under the lock, so every subscriber sees numbers in order.
        let seq = self.published.fetch_add(1, Ordering::AcqRel) + 1;
        inner
            .subscribers
            .retain(|s| match s.tx.try_send((seq, event.clone())) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    s.overflowed.store(true, Ordering::Release);
                    true
                }
                Err(TrySendError::Disconnected(_)) => false,
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EventKind, Uuid};

    fn ev(n: u32) -> Event {
        Event::now(EventKind::Started, &format!("d{n}"), None, Uuid([0; 16]))
    }

    #[test]
    fn every_subscriber_sees_every_event_in_order() {
        let bus = Bus::new();
        let (a, b) = (bus.subscribe(), bus.subscribe());
        for n in 0..3 {
            bus.publish(ev(n));
        }
        for s in [&a, &b] {
            let got: Vec<(u64, String)> = s.rx.try_iter().map(|(n, e)| (n, e.name)).collect();
            assert_eq!(got, [(1, "d0".into()), (2, "d1".into()), (3, "d2".into())]);
            assert!(!s.overflowed());
        }
    }

    #[test]
    fn a_slow_subscriber_overflows_without_blocking_or_growing() {
        let bus = Bus::new();
        let slow = bus.subscribe();
        for n in 0..(QUEUE as u32 + 10) {
            bus.publish(ev(n));
        }
        assert!(slow.overflowed());
        assert!(!slow.overflowed(), "told once");
        assert_eq!(slow.rx.try_iter().count(), QUEUE);
        assert_eq!(bus.published(), QUEUE as u64 + 10);
        drop(slow);
        bus.publish(ev(0));
        assert!(bus.inner.lock().unwrap().subscribers.is_empty());
    }

    fn run_event(kind: EventKind, uuid: u8, id: u32) -> Event {
        Event::now(
            kind,
            "d",
            Some(crate::model::DomainId(id)),
            Uuid([uuid; 16]),
        )
    }

    #[test]
    fn a_run_starts_once_and_stops_once_whoever_reports_it() {
        use crate::model::StopReason::{Destroyed, Shutdown};
        let bus = Bus::new();
        let s = bus.subscribe();
        for e in [
            run_event(EventKind::Started, 1, 5),
            run_event(EventKind::Started, 1, 5),
            run_event(EventKind::MemoryChanged, 1, 5),
            run_event(EventKind::MemoryChanged, 1, 5),
            run_event(EventKind::Stopped(Destroyed), 1, 5),
            run_event(EventKind::Stopped(Shutdown), 1, 5),
            // A listing read before the stop, reported after it.
            run_event(EventKind::Started, 1, 5),
            // A run that was running before anyone looked stops.
            run_event(EventKind::Stopped(Shutdown), 4, 2),
            // The next run (a new id), another domain with the same id.
            run_event(EventKind::Started, 1, 6),
            run_event(EventKind::Started, 2, 5),
            // A restart another back end reported as a plain start first.
            run_event(EventKind::Rebooted, 1, 6),
            run_event(EventKind::Started, 1, 6),
            Event::now(EventKind::Started, "d", None, Uuid([3; 16])),
            Event::now(EventKind::Started, "d", None, Uuid([3; 16])),
        ] {
            bus.publish(e);
        }
        let got: Vec<(String, u8, Option<u32>)> =
            s.rx.try_iter()
                .map(|(_, e)| (e.kind.to_string(), e.uuid.0[0], e.id.map(|i| i.0)))
                .collect();
        let want = [
            ("started", 1, Some(5)),
            ("memory-changed", 1, Some(5)),
            ("memory-changed", 1, Some(5)),
            ("stopped destroyed", 1, Some(5)),
            ("stopped shutdown", 4, Some(2)),
            ("started", 1, Some(6)),
            ("started", 2, Some(5)),
            ("rebooted", 1, Some(6)),
            ("started", 3, None),
            ("started", 3, None),
        ]
        .map(|(k, u, i)| (k.to_string(), u, i));
        assert_eq!(got, want);
        assert_eq!(bus.published(), want.len() as u64);
    }

    #[test]
    fn old_runs_are_forgotten() {
        let bus = Bus::new();
        for id in 0..(RUNS as u32 + 10) {
            bus.publish(run_event(EventKind::Started, 1, id));
        }
        let inner = bus.inner.lock().unwrap();
        assert_eq!(inner.runs.last.len(), RUNS);
        assert_eq!(inner.runs.order.len(), RUNS);
    }
}
