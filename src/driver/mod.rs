//! The driver interface: one trait holding the common set of operations, as
//! libvirt's driver table does. A driver implements the operations its back end
//! can do; every other method keeps its default, which answers "not supported"
//! so the dispatcher asks the next driver.
//!
//! Drivers never see the filesystem: they speak the model (`DomainRef`,
//! `DomainInfo`, `DomainDef`, ...) and the one `Error` type.

pub mod hypervisor;
pub mod libxl;
pub mod test;
pub mod xend;
pub mod xenstore;

use crate::error::{Error, Result};
use crate::events::Bus;
use crate::model::{DomainDef, DomainId, DomainInfo, DomainRef, Hypervisor, NodeInfo, Uuid};
use std::fmt;
use std::path::Path;

/// Every operation of the interface, named for errors, logs and the
/// dispatcher's "not supported" answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    ListActive,
    ListDefined,
    LookupByName,
    LookupById,
    LookupByUuid,
    DomainInfo,
    DomainOsType,
    DomainXml,
    DomainXmlInactive,
    NodeInfo,
    Hypervisor,
    CreateXml,
    DefineXml,
    Undefine,
    Start,
    Shutdown,
    Reboot,
    Destroy,
    Suspend,
    Resume,
    Save,
    Restore,
    SetMemory,
    SetMaxMemory,
    SetVcpus,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::ListActive => "list active domains",
            Operation::ListDefined => "list defined domains",
            Operation::LookupByName => "lookup by name",
            Operation::LookupById => "lookup by id",
            Operation::LookupByUuid => "lookup by uuid",
            Operation::DomainInfo => "domain info",
            Operation::DomainOsType => "domain os type",
            Operation::DomainXml => "domain xml",
            Operation::DomainXmlInactive => "domain xml (inactive)",
            Operation::NodeInfo => "node info",
            Operation::Hypervisor => "hypervisor type and version",
            Operation::CreateXml => "create",
            Operation::DefineXml => "define",
            Operation::Undefine => "undefine",
            Operation::Start => "start",
            Operation::Shutdown => "shutdown",
            Operation::Reboot => "reboot",
            Operation::Destroy => "destroy",
            Operation::Suspend => "suspend",
            Operation::Resume => "resume",
            Operation::Save => "save",
            Operation::Restore => "restore",
            Operation::SetMemory => "setmem",
            Operation::SetMaxMemory => "setmaxmem",
            Operation::SetVcpus => "setvcpus",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The common set of operations. Every method defaults to "not supported".
///
/// Domain operations take the `DomainRef` a lookup returned; a driver must
/// answer `NoDomain` when that domain no longer exists.
pub trait Driver: Send + Sync {
    /// Short name for logs (`test`, `xenstore`, ...).
    fn name(&self) -> &str;

    /// Hands the driver the connection's change feed: a driver that sees
    /// changes (its own, or its back end's) publishes them there. The
    /// default sees none.
    fn publish_to(&self, _bus: Bus) {}

    /// The active domains (those with an id), like libvirt's `listDomains`.
    fn list_active(&self) -> Result<Vec<DomainRef>> {
        Err(Error::not_supported(Operation::ListActive))
    }
    /// The defined but inactive domains, like libvirt's
    /// `listDefinedDomains`. Kept apart from `list_active` because on Xen
    /// different back ends know each (the hypervisor and xenstore see
    /// running domains, xend also the defined ones).
    fn list_defined(&self) -> Result<Vec<DomainRef>> {
        Err(Error::not_supported(Operation::ListDefined))
    }
    fn lookup_by_name(&self, _name: &str) -> Result<DomainRef> {
        Err(Error::not_supported(Operation::LookupByName))
    }
    fn lookup_by_id(&self, _id: DomainId) -> Result<DomainRef> {
        Err(Error::not_supported(Operation::LookupById))
    }
    fn lookup_by_uuid(&self, _uuid: Uuid) -> Result<DomainRef> {
        Err(Error::not_supported(Operation::LookupByUuid))
    }
    fn domain_info(&self, _dom: &DomainRef) -> Result<DomainInfo> {
        Err(Error::not_supported(Operation::DomainInfo))
    }
    /// The live definition of an active domain (with its `id`), the
    /// persistent one of an inactive domain.
    /// The OS type (`linux`, `hvm`, ...), like libvirt's `domainGetOSType`;
    /// apart from `domain_info` because the hypervisor knows the one and
    /// not the other.
    fn domain_os_type(&self, _dom: &DomainRef) -> Result<String> {
        Err(Error::not_supported(Operation::DomainOsType))
    }
    fn domain_xml(&self, _dom: &DomainRef) -> Result<DomainDef> {
        Err(Error::not_supported(Operation::DomainXml))
    }
    /// The persistent definition, which the next start uses (virsh's
    /// `dumpxml --inactive`); for a shut-off domain the same as `domain_xml`.
    fn domain_xml_inactive(&self, _dom: &DomainRef) -> Result<DomainDef> {
        Err(Error::not_supported(Operation::DomainXmlInactive))
    }
    fn node_info(&self) -> Result<NodeInfo> {
        Err(Error::not_supported(Operation::NodeInfo))
    }
    fn hypervisor(&self) -> Result<Hypervisor> {
        Err(Error::not_supported(Operation::Hypervisor))
    }
    /// Defines and starts a transient domain.
    fn create_xml(&self, _def: DomainDef) -> Result<DomainRef> {
        Err(Error::not_supported(Operation::CreateXml))
    }
    /// Defines a persistent domain, or replaces the persistent definition of
    /// the domain with the same name and UUID.
    fn define_xml(&self, _def: DomainDef) -> Result<DomainRef> {
        Err(Error::not_supported(Operation::DefineXml))
    }
    fn undefine(&self, _dom: &DomainRef) -> Result<()> {
        Err(Error::not_supported(Operation::Undefine))
    }
    fn start(&self, _dom: &DomainRef) -> Result<()> {
        Err(Error::not_supported(Operation::Start))
    }
    fn shutdown(&self, _dom: &DomainRef) -> Result<()> {
        Err(Error::not_supported(Operation::Shutdown))
    }
    fn reboot(&self, _dom: &DomainRef) -> Result<()> {
        Err(Error::not_supported(Operation::Reboot))
    }
    fn destroy(&self, _dom: &DomainRef) -> Result<()> {
        Err(Error::not_supported(Operation::Destroy))
    }
    fn suspend(&self, _dom: &DomainRef) -> Result<()> {
        Err(Error::not_supported(Operation::Suspend))
    }
    fn resume(&self, _dom: &DomainRef) -> Result<()> {
        Err(Error::not_supported(Operation::Resume))
    }
    /// Saves the domain's state to `path` (absolute) and stops it.
    fn save(&self, _dom: &DomainRef, _path: &Path) -> Result<()> {
        Err(Error::not_supported(Operation::Save))
    }
    /// Restores a domain saved to `path` (absolute) and starts it.
    fn restore(&self, _path: &Path) -> Result<DomainRef> {
        Err(Error::not_supported(Operation::Restore))
    }
    /// Current memory (balloon target) in KiB.
    fn set_memory(&self, _dom: &DomainRef, _kib: u64) -> Result<()> {
        Err(Error::not_supported(Operation::SetMemory))
    }
    /// Maximum memory in KiB.
    fn set_max_memory(&self, _dom: &DomainRef, _kib: u64) -> Result<()> {
        Err(Error::not_supported(Operation::SetMaxMemory))
    }
    /// Number of virtual CPUs in use (at most the domain's maximum).
    fn set_vcpus(&self, _dom: &DomainRef, _count: u32) -> Result<()> {
        Err(Error::not_supported(Operation::SetVcpus))
    }
}
