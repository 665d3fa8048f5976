//! The xenstore driver: domains as Xen 4.17's toolstack describes them in
//! xenstored's tree, read and written over the daemon's socket or the xenbus
//! device.

pub mod client;
pub mod wire;
