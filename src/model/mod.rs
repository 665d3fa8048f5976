//! The domain model shared by every layer: typed ids, states and their
//! transition table, info records and domain XML. It depends on no other part
//! of domfs and does no I/O.

pub mod cpulist;
pub mod event;
pub mod ids;
pub mod info;
pub mod limits;
pub mod operation;
pub mod state;
pub mod xml;

pub use cpulist::{CpuSet, VcpuInfo, VcpuState};
pub use event::{Event, EventKind, StopReason};
pub use ids::{DomainId, DomainName, Uuid};
pub use info::{
    BlockStats, DomainInfo, DomainRef, Hypervisor, InterfaceStats, NodeInfo, SchedParam, Version,
};
pub use operation::{Arg, Operation, States};
pub use state::State;
pub use xml::DomainDef;
