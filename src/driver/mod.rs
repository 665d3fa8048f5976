//! The driver interface: one trait holding the common set of operations, as
//! libvirt's driver table does. A driver implements the operations its back end
//! can do; every other method keeps its default, which answers "not supported"
//! so the dispatcher asks the next driver.
//!
//! Drivers never see the filesystem: they speak the model (`DomainRef`,
//! `DomainInfo`, `DomainDef`, ...) and the one `Error` type.

pub mod dom0stats;
pub mod hypervisor;
pub mod libxl;
pub mod test;
pub mod xen;
pub mod xend;
pub mod xenstore;

use crate::error::{Error, Result};
use crate::events::Bus;
pub use crate::model::Operation;
use crate::model::{
    BlockStats, CpuSet, DomainDef, DomainId, DomainInfo, DomainRef, Hypervisor, InterfaceStats,
    NodeInfo, SchedParam, Uuid, VcpuInfo,
};
use std::fmt;
use std::path::Path;

/// A device fragment written to `devices/attach` or `devices/detach`, as
/// a tree: EINVAL with the parser's reason when it is not XML. The
/// dispatcher's check and the drivers that need the tree share it.
pub fn parse_device(xml: &str) -> Result<crate::model::xml::Element> {
    crate::model::xml::parse_tree(xml)
        .map_err(|e| Error::invalid(format!("the device XML does not parse: {e}")))
}

/// The kinds of driver, for routing tables and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DriverKind {
    Test,
    Hypervisor,
    Xend,
    Xenstore,
    Libxl,
}

impl DriverKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DriverKind::Test => "test",
            DriverKind::Hypervisor => "hypervisor",
            DriverKind::Xend => "xend",
            DriverKind::Xenstore => "xenstore",
            DriverKind::Libxl => "libxl",
        }
    }
}

impl fmt::Display for DriverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! declare_driver {
    ($(
        $(#[$meta:meta])*
        $variant:ident $name:literal $kind:ident($states:ident) $command:expr,
            fn $method:ident($($arg:ident: $ty:ty),*) -> $ret:ty, $check:ident;
    )*) => {
        /// The common set of operations (declared in `model::operation`).
        /// Every operation method defaults to "not supported"; a driver
        /// overrides those it carries out and says which in `supports`,
        /// which the dispatcher asks before calling (libvirt's NULL slot).
        ///
        /// Domain operations take the `DomainRef` a lookup returned; a
        /// driver must answer `NoDomain` when that domain no longer exists.
        pub trait Driver: Send + Sync {
            fn kind(&self) -> DriverKind;

            /// Whether this driver carries out `op`, known without asking
            /// the back end. Written as an exhaustive match in each driver,
            /// so a new operation is a decision in every driver.
            fn supports(&self, op: Operation) -> bool;

            /// Hands the driver the connection's change feed: a driver
            /// that sees changes (its own, or its back end's) publishes
            /// them there. The default sees none.
            fn publish_to(&self, _bus: Bus) {}

            $(
                $(#[$meta])*
                fn $method(&self, $($arg: $ty),*) -> Result<$ret> {
                    let _ = ($($arg,)*);
                    Err(Error::not_supported(Operation::$variant))
                }
            )*
        }
    };
}

crate::with_operations!(declare_driver);
