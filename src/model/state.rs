//! Domain states and the one table that says which lifecycle operation is valid
//! in which state. The test driver enforces it, the filesystem lists it in
//! `control`, and the error mapping turns a refusal into EBUSY: one table, so the
//! three never disagree.

use std::fmt;
use std::str::FromStr;

/// libvirt's seven domain states of the Xen era (`virDomainState` 0..=6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    NoState,
    Running,
    /// Running but idle: waiting for an event (Xen's `b`).
    Blocked,
    Paused,
    /// Being shut down: the guest has been asked and is on its way.
    Shutdown,
    ShutOff,
    Crashed,
}

impl State {
    pub const ALL: [State; 7] = [
        State::NoState,
        State::Running,
        State::Blocked,
        State::Paused,
        State::Shutdown,
        State::ShutOff,
        State::Crashed,
    ];

    /// The word the filesystem shows in `state`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::NoState => "nostate",
            State::Running => "running",
            State::Blocked => "blocked",
            State::Paused => "paused",
            State::Shutdown => "shutdown",
            State::ShutOff => "shutoff",
            State::Crashed => "crashed",
        }
    }

    /// libvirt's numeric value (`VIR_DOMAIN_*`).
    pub fn code(self) -> u8 {
        match self {
            State::NoState => 0,
            State::Running => 1,
            State::Blocked => 2,
            State::Paused => 3,
            State::Shutdown => 4,
            State::ShutOff => 5,
            State::Crashed => 6,
        }
    }

    /// A domain is active (has an id, uses host resources) in every state but
    /// shut off.
    pub fn is_active(self) -> bool {
        self != State::ShutOff
    }

    /// Whether `op` may be applied to a domain in this state.
    ///
    /// The table follows libvirt's test driver (the reference for
    /// `test:///default`) and the xend driver where they agree:
    ///
    /// | operation      | valid in                                        |
    /// |----------------|-------------------------------------------------|
    /// | start          | shutoff                                         |
    /// | shutdown       | running, blocked, paused                        |
    /// | reboot         | running, blocked, paused                        |
    /// | destroy        | every active state                              |
    /// | suspend        | running, blocked                                |
    /// | resume         | paused                                          |
    /// | save           | running, blocked, paused                        |
    /// | undefine       | shutoff (xend's "Domain is not halted")         |
    /// | set memory     | every state (live when active, config when not) |
    /// | set max memory | shutoff (libvirt: not on an active domain)      |
    /// | set vcpus      | every state (live when active, config when not) |
    pub fn allows(self, op: Lifecycle) -> bool {
        use Lifecycle as L;
        use State as S;
        match op {
            L::Start => self == S::ShutOff,
            L::Suspend => matches!(self, S::Running | S::Blocked),
            L::Shutdown | L::Reboot | L::Save => {
                matches!(self, S::Running | S::Blocked | S::Paused)
            }
            L::Destroy => self.is_active(),
            L::Resume => self == S::Paused,
            L::Undefine | L::SetMaxMemory => self == S::ShutOff,
            L::SetMemory | L::SetVcpus => true,
        }
    }

    /// The operations valid in this state, in the table's order.
    pub fn valid_operations(self) -> impl Iterator<Item = Lifecycle> {
        Lifecycle::ALL
            .into_iter()
            .filter(move |op| self.allows(*op))
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = String;
    fn from_str(s: &str) -> Result<State, String> {
        State::ALL
            .into_iter()
            .find(|st| st.as_str() == s.trim())
            .ok_or_else(|| format!("'{}' is not a domain state", s.trim()))
    }
}

/// Lifecycle operations whose validity depends on the domain's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lifecycle {
    Start,
    Shutdown,
    Reboot,
    Destroy,
    Suspend,
    Resume,
    Save,
    Undefine,
    SetMemory,
    SetMaxMemory,
    SetVcpus,
}

impl Lifecycle {
    pub const ALL: [Lifecycle; 11] = [
        Lifecycle::Start,
        Lifecycle::Shutdown,
        Lifecycle::Reboot,
        Lifecycle::Destroy,
        Lifecycle::Suspend,
        Lifecycle::Resume,
        Lifecycle::Save,
        Lifecycle::Undefine,
        Lifecycle::SetMemory,
        Lifecycle::SetMaxMemory,
        Lifecycle::SetVcpus,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Start => "start",
            Lifecycle::Shutdown => "shutdown",
            Lifecycle::Reboot => "reboot",
            Lifecycle::Destroy => "destroy",
            Lifecycle::Suspend => "suspend",
            Lifecycle::Resume => "resume",
            Lifecycle::Save => "save",
            Lifecycle::Undefine => "undefine",
            Lifecycle::SetMemory => "setmem",
            Lifecycle::SetMaxMemory => "setmaxmem",
            Lifecycle::SetVcpus => "setvcpus",
        }
    }
}

impl fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Lifecycle as L;
    use State as S;

    /// The whole table, written out so a change to `allows` must change this too.
    #[test]
    fn state_table_is_exactly_as_documented() {
        let expect: &[(State, &[Lifecycle])] = &[
            (S::NoState, &[L::Destroy, L::SetMemory, L::SetVcpus]),
            (
                S::Running,
                &[
                    L::Shutdown,
                    L::Reboot,
                    L::Destroy,
                    L::Suspend,
                    L::Save,
                    L::SetMemory,
                    L::SetVcpus,
                ],
            ),
            (
                S::Blocked,
                &[
                    L::Shutdown,
                    L::Reboot,
                    L::Destroy,
                    L::Suspend,
                    L::Save,
                    L::SetMemory,
                    L::SetVcpus,
                ],
            ),
            (
                S::Paused,
                &[
                    L::Shutdown,
                    L::Reboot,
                    L::Destroy,
                    L::Resume,
                    L::Save,
                    L::SetMemory,
                    L::SetVcpus,
                ],
            ),
            (S::Shutdown, &[L::Destroy, L::SetMemory, L::SetVcpus]),
            (
                S::ShutOff,
                &[
                    L::Start,
                    L::Undefine,
                    L::SetMemory,
                    L::SetMaxMemory,
                    L::SetVcpus,
                ],
            ),
            (S::Crashed, &[L::Destroy, L::SetMemory, L::SetVcpus]),
        ];
        for (state, ops) in expect {
            let got: Vec<Lifecycle> = state.valid_operations().collect();
            assert_eq!(&got, ops, "state {state}");
        }
    }

    #[test]
    fn state_words_round_trip() {
        for s in State::ALL {
            assert_eq!(s.as_str().parse::<State>().unwrap(), s);
        }
        assert_eq!(S::ShutOff.to_string(), "shutoff");
        assert_eq!(S::NoState.code(), 0);
        assert_eq!(S::Crashed.code(), 6);
        assert!("stopped".parse::<State>().is_err());
    }

    #[test]
    fn only_shutoff_is_inactive() {
        for s in State::ALL {
            assert_eq!(s.is_active(), s != S::ShutOff);
        }
    }
}
