//! domfs: a host's virtual machines as a directory of small text files.
//!
//! Layers, each knowing only the one below: `fs` (FUSE) over `dispatch` (the
//! front end) over `driver` (test, later hypervisor, xenstore and xend). The
//! `model` is shared by all and depends on none.

pub mod cli;
pub mod connection;
pub mod dispatch;
pub mod driver;
pub mod error;
pub mod events;
pub mod fs;
pub mod model;
pub mod safefile;
pub mod sync;
pub mod uri;

pub use error::{Error, ErrorKind, Result};
