//! The xend driver: libvirt's XenDaemon back end. It speaks HTTP/1.x to xend
//! over a unix socket or TCP and describes domains in S-expressions.

pub mod chr;
pub mod http;
pub mod sxp;
pub mod to_sxp;
pub mod to_xml;
