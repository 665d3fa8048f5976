//! The host a test connection starts from: the embedded default (the same
//! host and domain as libvirt's `test:///default`) or a libvirt test-driver
//! host file (`<node>` with `<cpu>`, `<memory>` and `<domain>` inline or by
//! `file=`). Objects domfs does not model (networks, pools, interfaces,
//! devices) are skipped with a log line.

use crate::error::{Error, Result};
use crate::model::xml::{parse_tree, split_children, Element, Part};
use crate::model::{DomainDef, NodeInfo};
use std::path::Path;

/// The node libvirt's test driver reports when a host file leaves a value out,
/// which is also the node of `test:///default`.
pub fn default_node() -> NodeInfo {
    NodeInfo {
        model: "i686".into(),
        cpus: 16,
        mhz: 1400,
        nodes: 2,
        sockets: 2,
        cores: 2,
        threads: 2,
        memory_kib: 3 * 1024 * 1024,
    }
}

/// The domain of `test:///default`, as libvirt 9.0 describes it (its PCI
/// addresses included, so `cat test/xml` and `virsh dumpxml test` agree).
const DEFAULT_DOMAIN: &str = "<domain type='test'>
  <name>test</name>
  <uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid>
  <memory unit='KiB'>8388608</memory>
  <currentMemory unit='KiB'>2097152</currentMemory>
  <vcpu placement='static'>2</vcpu>
  <os>
    <type arch='i686'>hvm</type>
    <boot dev='hd'/>
  </os>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <source file='/guest/diskimage1'/>
      <target dev='vda' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>
    </disk>
    <interface type='network'>
      <mac address='aa:bb:cc:dd:ee:ff'/>
      <source network='default'/>
      <target dev='testnet0'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x0'/>
    </interface>
    <memballoon model='virtio'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/>
    </memballoon>
  </devices>
</domain>
";

/// A host to start a connection from: its node and its domains in file order.
/// Every domain of a host starts running, as in libvirt.
pub struct HostSpec {
    pub node: NodeInfo,
    /// Free memory of each NUMA cell (KiB). libvirt's default host has two;
    /// a host file has none (libvirt 9 shows `<cells num='0'>` for its
    /// example host, which gives `<nodes>` but no cells).
    pub cells_kib: Vec<u64>,
    pub domains: Vec<DomainDef>,
}

/// The NUMA cells of libvirt's default test host, their sizes in KiB (2
/// and 4 GiB). Its `nodeGetCellsFreeMemory` answers these numbers as bytes,
/// and its `nodeGetFreeMemory` the node's memory in KiB as bytes; domfs
/// answers the same, so `node/cells/N/free_memory` and `virsh freecell`
/// agree. A host file without cells has none (see `HostSpec::cells_kib`).
const DEFAULT_CELLS_KIB: [u64; 2] = [2 * 1024 * 1024, 4 * 1024 * 1024];

pub fn default_host() -> Result<HostSpec> {
    Ok(HostSpec {
        node: default_node(),
        cells_kib: DEFAULT_CELLS_KIB.to_vec(),
        domains: vec![DomainDef::parse(DEFAULT_DOMAIN)?],
    })
}

fn read(path: &Path, what: &str) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::invalid(format!("cannot read {what} {}: {e}", path.display())))
}

/// Loads a libvirt test-driver host file. `file=` references that are not
/// absolute are resolved against the host file's directory.
pub fn load_host_file(path: &Path) -> Result<HostSpec> {
    parse_host(&read(path, "host file")?, path)
}

/// A host file's text, read from `path` (which names it in errors and is
/// where relative `file=` references start).
pub fn parse_host(text: &str, path: &Path) -> Result<HostSpec> {
    let at = |e: crate::model::xml::XmlError| {
        Error::invalid(format!("host file {}: {e}", path.display()))
    };
    // One top-level element at a time (see `split_children`).
    let (root, parts) = split_children(text).map_err(at)?;
    if root != "node" {
        return Err(Error::invalid(format!(
            "host file {}: root element is <{root}>, expected <node>",
            path.display(),
        )));
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    let mut node = default_node();
    let mut domains = Vec::with_capacity(parts.len());
    for part in parts {
        let child = parse_tree(part.text).map_err(|e| at(part.locate(e)))?;
        match child.name.as_str() {
            "cpu" => read_cpu(&child, &mut node, path)?,
            "memory" => node.memory_kib = number(&child, path)?,
            "domain" => domains.push(load_domain(child, &part, dir, path)?),
            other => log::info!(
                "host file {}: skipping <{other}>: domfs models domains only",
                path.display()
            ),
        }
    }
    Ok(HostSpec {
        node,
        cells_kib: Vec::new(),
        domains,
    })
}

fn load_domain(el: Element, part: &Part, dir: &Path, host: &Path) -> Result<DomainDef> {
    match el.attr("file") {
        Some(file) => {
            let file = dir.join(file);
            let text = read(&file, "domain file")?;
            DomainDef::parse(&text)
                .map_err(|e| Error::invalid(format!("domain file {}: {e}", file.display())))
        }
        None => DomainDef::from_tree(el).map_err(|e| {
            Error::invalid(format!("host file {}: {}", host.display(), part.locate(e)))
        }),
    }
}

fn number<T: std::str::FromStr>(el: &Element, host: &Path) -> Result<T> {
    let text = el.text();
    text.trim().parse().map_err(|_| {
        Error::invalid(format!(
            "host file {}: <{}> holds '{}', not a number",
            host.display(),
            el.name,
            text.trim()
        ))
    })
}

/// `<cpu>`: missing values keep the defaults; the CPU count is the product of
/// the topology, capped by `<active>` when that is smaller (libvirt's rule).
fn read_cpu(cpu: &Element, node: &mut NodeInfo, host: &Path) -> Result<()> {
    let mut active = None;
    for el in cpu.elements() {
        match el.name.as_str() {
            "mhz" => node.mhz = number(el, host)?,
            "model" => node.model = el.text().trim().to_string(),
            "active" => active = Some(number::<u32>(el, host)?),
            "nodes" => node.nodes = number(el, host)?,
            "sockets" => node.sockets = number(el, host)?,
            "cores" => node.cores = number(el, host)?,
            "threads" => node.threads = number(el, host)?,
            other => log::info!("host file {}: skipping <cpu><{other}>", host.display()),
        }
    }
    let topology = node
        .nodes
        .saturating_mul(node.sockets)
        .saturating_mul(node.cores)
        .saturating_mul(node.threads);
    node.cpus = match active {
        Some(a) if a < topology => a,
        _ => topology,
    };
    Ok(())
}
