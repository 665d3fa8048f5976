//! The one error type of domfs: a kind that decides the errno, the operation
//! that failed, and a message for humans (the log and `last_error`).
//!
//! | kind             | errno      | when                                            |
//! |------------------|------------|-------------------------------------------------|
//! | NotSupported     | EOPNOTSUPP | no driver of the connection implements the call |
//! | InvalidArgument  | EINVAL     | text that does not parse, bad XML, bad value    |
//! | InvalidState     | EBUSY      | operation not valid in the domain's state       |
//! | NoDomain         | ENODEV     | the domain does not exist (any more)            |
//! | AlreadyExists    | EEXIST     | a domain with that name or UUID exists          |
//! | PermissionDenied | EACCES     | the back end refused us                         |
//! | ReadOnly         | EROFS      | a change asked of a read-only connection        |
//! | NotConnected     | ENOTCONN   | the back end cannot be reached                  |
//! | TimedOut         | ETIMEDOUT  | the back end did not answer in time             |
//! | Backend          | EIO        | the back end failed or answered nonsense        |

use crate::model::{Operation, State};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotSupported,
    InvalidArgument,
    InvalidState,
    NoDomain,
    AlreadyExists,
    PermissionDenied,
    ReadOnly,
    NotConnected,
    TimedOut,
    Backend,
}

impl ErrorKind {
    /// The errno a filesystem call fails with (see the table above).
    pub fn errno(self) -> i32 {
        match self {
            ErrorKind::NotSupported => libc::EOPNOTSUPP,
            ErrorKind::InvalidArgument => libc::EINVAL,
            ErrorKind::InvalidState => libc::EBUSY,
            ErrorKind::NoDomain => libc::ENODEV,
            ErrorKind::AlreadyExists => libc::EEXIST,
            ErrorKind::PermissionDenied => libc::EACCES,
            ErrorKind::ReadOnly => libc::EROFS,
            ErrorKind::NotConnected => libc::ENOTCONN,
            ErrorKind::TimedOut => libc::ETIMEDOUT,
            ErrorKind::Backend => libc::EIO,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    /// The operation that failed, when known; the dispatcher fills it in.
    pub op: Option<Operation>,
    pub message: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            op: None,
            message: message.into(),
        }
    }

    /// What a driver answers for an operation it does not implement, so the
    /// dispatcher moves on to the next driver.
    pub fn not_supported(op: Operation) -> Error {
        Error {
            kind: ErrorKind::NotSupported,
            op: Some(op),
            message: format!("{op} is not supported by this driver"),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    pub fn state(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidState, message)
    }

    pub fn no_domain(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::NoDomain, message)
    }

    pub fn backend(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Backend, message)
    }

    /// The state table's refusal, the same words whichever driver checks:
    /// EBUSY unless the declaration of `op` allows `state`.
    pub fn check_state(op: Operation, state: State, domain: &str) -> Result<()> {
        if op.valid_in(state) {
            return Ok(());
        }
        let valid: Vec<&str> = op.declaration().states.iter().map(State::as_str).collect();
        Err(Error::state(format!(
            "domain '{domain}' is {state}; {op} needs it {}",
            valid.join(" or ")
        ))
        .during(op))
    }

    /// Sets the operation unless a more precise one is already there.
    pub fn during(mut self, op: Operation) -> Error {
        self.op.get_or_insert(op);
        self
    }

    pub fn errno(&self) -> i32 {
        self.kind.errno()
    }

    pub fn is_not_supported(&self) -> bool {
        self.kind == ErrorKind::NotSupported
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.op {
            Some(op) => write!(f, "{op}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {}

impl From<crate::model::xml::XmlError> for Error {
    fn from(e: crate::model::xml::XmlError) -> Error {
        Error::invalid(format!("invalid domain XML: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_errno() {
        let kinds = [
            ErrorKind::NotSupported,
            ErrorKind::InvalidArgument,
            ErrorKind::InvalidState,
            ErrorKind::NoDomain,
            ErrorKind::AlreadyExists,
            ErrorKind::PermissionDenied,
            ErrorKind::ReadOnly,
            ErrorKind::NotConnected,
            ErrorKind::TimedOut,
            ErrorKind::Backend,
        ];
        let mut errnos: Vec<i32> = kinds.iter().map(|k| k.errno()).collect();
        errnos.sort_unstable();
        errnos.dedup();
        assert_eq!(errnos.len(), kinds.len());
        assert_eq!(ErrorKind::InvalidState.errno(), libc::EBUSY);
        assert_eq!(ErrorKind::NotSupported.errno(), libc::EOPNOTSUPP);
    }

    #[test]
    fn display_names_the_operation() {
        let e = Error::state("domain 'test' is not paused").during(Operation::Resume);
        assert_eq!(e.to_string(), "resume: domain 'test' is not paused");
        let e = e.during(Operation::Start);
        assert_eq!(e.op, Some(Operation::Resume));
    }
}
