//! Changes no watch reports, found by asking Xen for its domain list every
//! few hundred milliseconds and comparing: a pause or unpause done with `xl`
//! outside domfs, a crash, the balloon moving, vCPUs going on or off line.
//! Domains coming and going are left to xenstore's watches (they would be
//! reported twice otherwise). The hypervisor knows no names: events carry
//! an empty name, which the consumer fills in from a lookup.

use super::{HvDomain, HypervisorDriver};
use crate::events::Bus;
use crate::model::{Event, EventKind, State, StopReason};
use std::collections::HashMap;
use std::time::Duration;

/// The events between two looks at one domain.
pub fn changes(old: &HvDomain, new: &HvDomain) -> Vec<EventKind> {
    let (was, is) = (old.info.state, new.info.state);
    let stopped = |s: State| matches!(s, State::Shutdown | State::ShutOff | State::Crashed);
    let mut out = Vec::new();
    if was != is {
        match is {
            State::Paused => out.push(EventKind::Suspended),
            State::Crashed => out.push(EventKind::Stopped(StopReason::Crashed)),
            s if stopped(s) && !stopped(was) => out.push(EventKind::Stopped(StopReason::Shutdown)),
            State::Running | State::Blocked if was == State::Paused => out.push(EventKind::Resumed),
            _ => {}
        }
    }
    if old.info.memory_kib != new.info.memory_kib
        || old.info.max_memory_kib != new.info.max_memory_kib
    {
        out.push(EventKind::MemoryChanged);
    }
    if old.info.vcpus != new.info.vcpus {
        out.push(EventKind::VcpusChanged);
    }
    out
}

/// The polling thread: runs for the life of the process.
pub fn run(hv: HypervisorDriver, bus: Bus, every: Duration) {
    let mut last: HashMap<u32, HvDomain> = HashMap::new();
    loop {
        match hv.domains() {
            Ok(now) => {
                for d in &now {
                    if let Some(old) = last.get(&d.id.0).filter(|o| o.uuid == d.uuid) {
                        for kind in changes(old, d) {
                            bus.publish(Event::now(kind, "", Some(d.id), d.uuid));
                        }
                    }
                }
                last = now.into_iter().map(|d| (d.id.0, d)).collect();
            }
            Err(e) => log::debug!("hypervisor poll: {e}"),
        }
        std::thread::sleep(every);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DomainId, DomainInfo, Uuid};

    fn dom(state: State, mem: u64, vcpus: u32) -> HvDomain {
        HvDomain {
            id: DomainId(1),
            uuid: Uuid([1; 16]),
            flags: 0,
            info: DomainInfo {
                state,
                max_memory_kib: 1 << 20,
                memory_kib: mem,
                vcpus,
                cpu_time_ns: 0,
            },
        }
    }

    #[test]
    fn transitions_become_events_and_flicker_does_not() {
        let run = dom(State::Running, 1024, 2);
        assert_eq!(
            changes(&run, &dom(State::Paused, 1024, 2)),
            [EventKind::Suspended]
        );
        assert_eq!(
            changes(&dom(State::Paused, 1024, 2), &dom(State::Blocked, 1024, 2)),
            [EventKind::Resumed]
        );
        assert!(
            changes(&run, &dom(State::Blocked, 1024, 2)).is_empty(),
            "running/blocked is not an event"
        );
        assert_eq!(
            changes(&run, &dom(State::Crashed, 1024, 2)),
            [EventKind::Stopped(StopReason::Crashed)]
        );
        assert_eq!(
            changes(&run, &dom(State::Shutdown, 1024, 2)),
            [EventKind::Stopped(StopReason::Shutdown)]
        );
        assert!(changes(
            &dom(State::Shutdown, 1024, 2),
            &dom(State::ShutOff, 1024, 2)
        )
        .is_empty());
        assert_eq!(
            changes(&run, &dom(State::Running, 512, 1)),
            [EventKind::MemoryChanged, EventKind::VcpusChanged]
        );
    }
}
