//! Domain states. Which operation is valid in which state is declared with
//! the operation (`operation`): drivers enforce it through
//! `Error::check_state`, the filesystem lists it in `control`, so the two
//! never disagree.

use super::Operation;
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
    pub const fn code(self) -> u8 {
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

    /// Whether `op` may be applied to a domain in this state (the
    /// declaration in `operation` says).
    pub fn allows(self, op: Operation) -> bool {
        op.valid_in(self)
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

#[cfg(test)]
mod tests {
    use super::*;
    use State as S;

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
