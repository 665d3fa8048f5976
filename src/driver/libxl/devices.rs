//! Disks attached to and detached from a definition, as pure edits of its
//! tree: what `devices/attach` and `devices/detach` change in the XML a
//! domain runs with (or its persistent one), checked before libxl is asked.
//! libxl itself is called by the driver; nothing here touches the host.

use crate::error::{Error, Result};
use crate::model::xml::{Element, Node};
use crate::model::DomainDef;

/// A device fragment that must be one `<disk>` with a `<target dev=…>`:
/// the element and its target. Not XML is EINVAL; another device is
/// EOPNOTSUPP (libxl attaches only disks through domfs).
pub fn one_disk(xml: &str) -> Result<(Element, String)> {
    let dev = crate::driver::parse_device(xml)?;
    if dev.name != "disk" {
        return Err(Error::new(
            crate::error::ErrorKind::NotSupported,
            format!(
                "libxl: attaching or detaching <{}> is not supported here; disks only",
                dev.name
            ),
        ));
    }
    let target = dev
        .child("target")
        .and_then(|t| t.attr("dev"))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::invalid("a <disk> needs <target dev=…>"))?
        .to_string();
    Ok((dev, target))
}

/// `def` with `disk` added to its devices; EINVAL if it has a disk with that
/// target already or the result is not a valid definition.
pub fn with_disk(def: &DomainDef, disk: Element, target: &str) -> Result<DomainDef> {
    if def.disk_targets().iter().any(|t| t == target) {
        return Err(Error::invalid(format!(
            "domain '{}' already has a disk '{target}'",
            def.name
        )));
    }
    let mut root = def.root().clone();
    match root.child_mut("devices") {
        Some(devices) => devices.children.push(Node::Element(disk)),
        None => {
            let mut devices = Element::new("devices");
            devices.children.push(Node::Element(disk));
            root.children.push(Node::Element(devices));
        }
    }
    DomainDef::from_tree(root).map_err(|e| Error::invalid(format!("the disk: {e}")))
}

/// `def` without its disk `target`; EINVAL if it has none.
pub fn without_disk(def: &DomainDef, target: &str) -> Result<DomainDef> {
    if !def.disk_targets().iter().any(|t| t == target) {
        return Err(Error::invalid(format!(
            "domain '{}' has no disk '{target}'",
            def.name
        )));
    }
    let mut root = def.root().clone();
    if let Some(devices) = root.child_mut("devices") {
        devices.children.retain(|n| match n {
            Node::Element(e) => {
                e.name != "disk" || e.child("target").and_then(|t| t.attr("dev")) != Some(target)
            }
            Node::Text(_) => true,
        });
    }
    DomainDef::from_tree(root).map_err(|e| Error::invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::error::ErrorKind;

    const DEF: &str = "<domain type='xen'><name>g</name><memory>65536</memory>\
        <vcpu>1</vcpu><os><type>linux</type><kernel>/k</kernel></os><devices>\
        <disk type='block' device='disk'><source dev='/dev/loop0'/><target dev='xvda'/></disk>\
        </devices></domain>";
    const XVDB: &str = "<disk type='block' device='disk'><driver name='phy'/>\
        <source dev='/dev/loop1'/><target dev='xvdb' bus='xen'/></disk>";

    #[test]
    fn a_disk_is_added_and_removed_by_its_target() {
        let def = DomainDef::parse(DEF).unwrap();
        let (disk, target) = one_disk(XVDB).unwrap();
        assert_eq!(target, "xvdb");
        let more = with_disk(&def, disk, &target).unwrap();
        assert_eq!(more.disk_targets(), ["xvda", "xvdb"]);
        let json = super::super::config::disk_device(&more, "xvdb").unwrap();
        assert_eq!(json["vdev"], "xvdb", "{json}");
        assert_eq!(json["pdev_path"], "/dev/loop1", "{json}");
        let back = without_disk(&more, "xvdb").unwrap();
        assert_eq!(back.disk_targets(), ["xvda"]);
        assert_eq!(back.to_xml(), def.to_xml());
    }

    #[test]
    fn bad_fragments_are_refused_before_libxl_is_asked() {
        let def = DomainDef::parse(DEF).unwrap();
        let kind = |r: Result<(Element, String)>| r.unwrap_err().kind;
        assert_eq!(kind(one_disk("<disk")), ErrorKind::InvalidArgument);
        assert_eq!(
            kind(one_disk("<disk type='file'><source file='/x'/></disk>")),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            kind(one_disk("<interface type='bridge'/>")),
            ErrorKind::NotSupported
        );
        let (dup, t) =
            one_disk("<disk type='file'><source file='/x'/><target dev='xvda'/></disk>").unwrap();
        assert_eq!(
            with_disk(&def, dup, &t).unwrap_err().kind,
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            without_disk(&def, "xvdz").unwrap_err().kind,
            ErrorKind::InvalidArgument
        );
    }
}
