//! The one change feed: drivers publish [`Event`]s on a [`Bus`], and each
//! subscriber (the filesystem, mostly) receives them on a bounded queue of
//! its own. Publishing never blocks: a subscriber that falls behind loses
//! events and is told so once (`overflowed`), so memory stays bounded
//! whatever the subscribers do. It knows neither drivers nor FUSE.

use crate::model::Event;
use crate::sync::lock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

/// How many events a subscriber may have waiting.
pub const QUEUE: usize = 4096;

#[derive(Clone, Default)]
pub struct Bus {
    subscribers: Arc<Mutex<Vec<Subscriber>>>,
    /// The sequence number of the last event published.
    published: Arc<AtomicU64>,
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
        lock(&self.subscribers).push(Subscriber {
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
        log::debug!("event: {} {} {}", event.kind, event.name, event.uuid);
        let mut subs = lock(&self.subscribers);
        // Numbered under the lock, so every subscriber sees numbers in order.
        let seq = self.published.fetch_add(1, Ordering::AcqRel) + 1;
        subs.retain(|s| match s.tx.try_send((seq, event.clone())) {
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
        assert!(bus.subscribers.lock().unwrap().is_empty());
    }
}
