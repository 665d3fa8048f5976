//! libvirt domain XML to libxl's `libxl_domain_config`, as the JSON document
//! `libxl_domain_config_from_json` of Xen 4.17 parses: the field names and
//! enum spellings of libxl's own `_to_json` (`"type": "hvm"`,
//! `"on_reboot": "restart"`, defbools as `"True"`/`"False"`). The mapping is
//! the one libvirt's libxl driver applies (libxlBuildDomainConfig and the
//! libxlMake* helpers), so a definition starts the same guest under domfs as
//! under libvirt.
//!
//! Pure: a `DomainDef` and the few values a caller decides at start time
//! (`Options`) in, a JSON value out. It must not touch the host (no file
//! checks, no port probing, no network lookups): what needs the host is the
//! driver's business, and is refused here when it cannot be expressed.
//!
//! Anything the conversion does not understand, or Xen 4.17 cannot do, is an
//! `Error::invalid` naming it; nothing that would change the guest is
//! dropped. The few things left out on purpose are listed at
//! [`domain_config`]. As in libxl's own printer, a field at libxl's initial
//! value is not written.

use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::model::xml::{Device, Disk, Element, Interface, LifecycleAction};
use crate::model::DomainDef;

/// What the caller settles when the guest starts rather than what the
/// definition says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// The TCP port chosen for a VNC display with `autoport` (libvirt takes
    /// one from its 5900–65535 allocator). None lets libxl's device model
    /// find a free display itself (`findunused`).
    pub vnc_port: Option<u16>,
}

/// libxl's guest kinds (`libxl_domain_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestKind {
    Pv,
    Hvm,
    Pvh,
}

impl GuestKind {
    fn as_str(self) -> &'static str {
        match self {
            GuestKind::Pv => "pv",
            GuestKind::Hvm => "hvm",
            GuestKind::Pvh => "pvh",
        }
    }
}

/// The first VNC port; a display number is the port minus this.
const VNC_BASE_PORT: i64 = 5900;

/// The bootloader libvirt names for a PV guest with neither a kernel nor a
/// bootloader; libxl looks a bare name up in its own libexec directory.
const DEFAULT_BOOTLOADER: &str = "pygrub";

/// The least video RAM (KiB) upstream QEMU needs per adapter, which libvirt
/// also gives an adapter without `vram`.
const CIRRUS_VRAM_KIB: u64 = 8 * 1024;
const VGA_VRAM_KIB: u64 = 16 * 1024;

/// `<domain>` children the conversion reads or that cannot change the guest.
const KNOWN_TOP: [&str; 18] = [
    "name",
    "uuid",
    "title",
    "description",
    "metadata",
    "memory",
    "currentMemory",
    "vcpu",
    "cputune",
    "bootloader",
    "bootloader_args",
    "os",
    "features",
    "clock",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "devices",
];

fn invalid(m: impl Into<String>) -> Error {
    Error::invalid(m)
}

fn defbool(b: bool) -> Value {
    Value::from(if b { "True" } else { "False" })
}

/// Shadow (paging) memory libxl reserves for a guest, as
/// `libxl_get_required_shadow_memory` of Xen 4.17 counts it in 4 KiB pages:
/// 256 per vCPU, and two per MiB of guest memory (its P2M map and the
/// shadows of its page tables).
pub fn shadow_memkb(max_memkb: u64, max_vcpus: u32) -> u64 {
    4 * (256 * u64::from(max_vcpus) + 2 * (max_memkb / 1024))
}

/// The guest kind a definition asks for, or why libxl cannot run it.
pub fn guest_kind(def: &DomainDef) -> Result<GuestKind> {
    match def.os.os_type.as_str() {
        "linux" | "xen" => Ok(GuestKind::Pv),
        "hvm" => Ok(GuestKind::Hvm),
        "xenpvh" => Ok(GuestKind::Pvh),
        other => Err(invalid(format!(
            "os type '{other}' cannot run on libxl (expected linux, xen, xenpvh or hvm)"
        ))),
    }
}

/// `on="yes"`-style switches of `<features>` children: present means on
/// unless `state='off'`.
fn switch(e: &Element) -> Result<bool> {
    match e.attr("state") {
        None | Some("on") => Ok(true),
        Some("off") => Ok(false),
        Some(other) => Err(invalid(format!(
            "<{}> state '{other}' is not 'on' or 'off'",
            e.name
        ))),
    }
}

#[derive(Debug, Default)]
struct Features {
    acpi: bool,
    apic: bool,
    pae: bool,
    hap: Option<bool>,
}

fn features(root: &Element, kind: GuestKind) -> Result<Features> {
    let mut f = Features::default();
    let Some(el) = root.child("features") else {
        return Ok(f);
    };
    for e in el.elements() {
        let on = switch(e)?;
        match (e.name.as_str(), kind) {
            ("acpi", GuestKind::Hvm | GuestKind::Pvh) => f.acpi = on,
            ("apic", GuestKind::Hvm) => f.apic = on,
            ("pae", GuestKind::Hvm) => f.pae = on,
            // Every 64-bit PV guest runs with PAE paging; there is no switch.
            ("pae", GuestKind::Pv) => {}
            ("hap", GuestKind::Hvm | GuestKind::Pvh) => f.hap = Some(on),
            ("hyperv" | "viridian", _) => {
                return Err(invalid(
                    "Hyper-V enlightenments (<hyperv>, <viridian>) are not converted for libxl yet",
                ))
            }
            (name, _) => {
                return Err(invalid(format!(
                    "feature <{name}> is not supported for a {} guest on libxl",
                    kind.as_str()
                )))
            }
        }
    }
    Ok(f)
}

/// What `<clock>` sets in `b_info`: the RTC offset, localtime, and the TSC
/// and HPET timers.
#[derive(Debug, Default)]
struct Clock {
    rtc_timeoffset: i64,
    localtime: bool,
    tsc_mode: Option<&'static str>,
    hpet: Option<bool>,
}

fn adjustment(c: &Element) -> Result<i64> {
    match c.attr("adjustment").map(str::trim) {
        None | Some("reset") => Ok(0),
        Some(a) => a
            .parse()
            .map_err(|_| invalid(format!("clock adjustment '{a}' is not a number"))),
    }
}

fn clock(root: &Element, kind: GuestKind) -> Result<Clock> {
    let mut out = Clock::default();
    let Some(c) = root.child("clock") else {
        return Ok(out);
    };
    // `sync` is the attribute's name before libvirt 0.8.
    match c.attr("offset").or_else(|| c.attr("sync")).unwrap_or("utc") {
        "utc" => {}
        "localtime" => {
            out.localtime = true;
            out.rtc_timeoffset = adjustment(c)?;
        }
        "variable" => {
            out.rtc_timeoffset = adjustment(c)?;
            out.localtime = c.attr("basis") == Some("localtime");
        }
        other => {
            return Err(invalid(format!(
                "clock offset '{other}' is not supported by libxl"
            )))
        }
    }
    for t in c.elements() {
        if t.name != "timer" {
            return Err(invalid(format!(
                "<clock> child <{}> is not supported",
                t.name
            )));
        }
        let name = t.attr("name").unwrap_or("");
        let present = match t.attr("present") {
            None | Some("yes") => true,
            Some("no") => false,
            Some(p) => return Err(invalid(format!("timer present '{p}' is not yes or no"))),
        };
        match name {
            "tsc" => {
                if !present {
                    return Err(invalid("a guest cannot run without its TSC"));
                }
                out.tsc_mode = match t.attr("mode") {
                    None | Some("auto") => None,
                    Some("native") => Some("native"),
                    Some("emulate") => Some("always_emulate"),
                    Some("paravirt") => Some("native_paravirt"),
                    Some(m) => {
                        return Err(invalid(format!("TSC mode '{m}' is not supported by libxl")))
                    }
                };
            }
            "hpet" if kind == GuestKind::Hvm => out.hpet = Some(present),
            other => {
                return Err(invalid(format!(
                    "timer '{other}' is not supported for a {} guest on libxl",
                    kind.as_str()
                )))
            }
        }
    }
    Ok(out)
}

fn devices(root: &Element) -> impl Iterator<Item = &Element> {
    root.child("devices").into_iter().flat_map(|d| d.elements())
}

/// The children of `e` outside `known`, refused by name.
fn only_children(e: &Element, known: &[&str]) -> Result<()> {
    match e.elements().find(|c| !known.contains(&c.name.as_str())) {
        Some(c) => Err(invalid(format!(
            "<{}> child <{}> is not supported by libxl",
            e.name, c.name
        ))),
        None => Ok(()),
    }
}

fn disk_format(t: Option<&str>) -> Result<&'static str> {
    match t {
        None | Some("raw") | Some("aio") => Ok("raw"),
        Some("qcow") => Ok("qcow"),
        Some("qcow2") => Ok("qcow2"),
        Some("vhd") => Ok("vhd"),
        Some("qed") => Ok("qed"),
        Some(other) => Err(invalid(format!(
            "disk format '{other}' is not supported by libxl"
        ))),
    }
}

/// The `libxl_device_disk` of `def`'s disk with target `target`, for
/// attaching it to a running domain (`libxl_device_disk_add`); the same
/// mapping as at start.
pub fn disk_device(def: &DomainDef, target: &str) -> Result<Value> {
    devices(def.root())
        .zip(def.devices.iter())
        .find_map(|(e, dev)| match dev {
            Device::Disk(d) if d.target_dev.as_deref() == Some(target) => Some(disk(d, e)),
            _ => None,
        })
        .unwrap_or_else(|| Err(invalid(format!("no disk with target '{target}'"))))
}

/// One `libxl_device_disk`.
fn disk(d: &Disk, e: &Element) -> Result<Value> {
    only_children(
        e,
        &[
            "driver",
            "source",
            "target",
            "readonly",
            "address",
            "alias",
            "backenddomain",
            "shareable",
        ],
    )?;
    let cdrom = match d.device.as_str() {
        "disk" => false,
        "cdrom" => true,
        other => {
            return Err(invalid(format!(
                "disk device '{other}' is not supported by libxl"
            )))
        }
    };
    if !matches!(d.disk_type.as_str(), "file" | "block") {
        return Err(invalid(format!(
            "disk type '{}' is not supported by libxl (file or block)",
            d.disk_type
        )));
    }
    if d.shareable {
        return Err(invalid(
            "libxl cannot share a disk between guests (<shareable/>)",
        ));
    }
    let vdev = d
        .target_dev
        .as_deref()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| invalid("a disk needs <target dev=…>"))?;
    let mut out = Map::new();
    let format = disk_format(d.driver_type.as_deref())?;
    let raw_only = |driver: &str| {
        if format == "raw" {
            Ok(())
        } else {
            Err(invalid(format!(
                "disk driver '{driver}' takes raw images only, not '{format}'"
            )))
        }
    };
    let backend = match d.driver_name.as_deref() {
        Some("qemu") => Some("qdisk"),
        Some("phy") => raw_only("phy").map(|()| Some("phy"))?,
        // xend's loopback driver; libvirt serves such a file with qdisk.
        Some("file") => raw_only("file").map(|()| Some("qdisk"))?,
        // libvirt sends image formats given to blktap to qdisk, but raw and
        // vhd to blktap itself, which Xen 4.17 no longer has.
        Some("tap" | "tap2") if matches!(format, "qcow" | "qcow2" | "qed") => Some("qdisk"),
        Some(t @ ("tap" | "tap2")) => {
            return Err(invalid(format!(
                "disk driver '{t}' with a {format} image needs blktap, which Xen 4.17 no \
                 longer has (use driver 'qemu')"
            )))
        }
        // No driver: libxl picks the backend for the image itself.
        None => None,
        Some(other) => {
            return Err(invalid(format!(
                "disk driver '{other}' is not supported by libxl"
            )))
        }
    };
    let readwrite = !cdrom && !d.readonly;
    if let Some(drv) = e.child("driver") {
        for (k, v) in &drv.attrs {
            match (k.as_str(), v.as_str()) {
                ("name" | "type", _) | ("cache", "default") => {}
                // libvirt passes discard for writable disks only.
                ("discard", "unmap") if readwrite => {
                    out.insert("discard_enable".into(), defbool(true));
                }
                ("discard", "ignore") if readwrite => {
                    out.insert("discard_enable".into(), defbool(false));
                }
                ("discard", "unmap" | "ignore") => {}
                _ => {
                    return Err(invalid(format!(
                        "disk driver {k}='{v}' is not supported by libxl"
                    )))
                }
            }
        }
    }
    match d.source.as_deref().filter(|s| !s.is_empty()) {
        Some(src) => {
            out.insert("pdev_path".into(), src.into());
            out.insert("format".into(), format.into());
        }
        None if cdrom => {
            out.insert("format".into(), "empty".into());
        }
        None => return Err(invalid(format!("disk {vdev} has no source"))),
    }
    out.insert("vdev".into(), vdev.into());
    if let Some(b) = backend {
        out.insert("backend".into(), b.into());
    }
    if let Some(name) = e.child("backenddomain").and_then(|b| b.attr("name")) {
        out.insert("backend_domname".into(), name.into());
    }
    // libvirt marks every disk removable; a CD-ROM is read-only by nature.
    out.insert("removable".into(), 1.into());
    if cdrom {
        out.insert("is_cdrom".into(), 1.into());
    }
    if readwrite {
        out.insert("readwrite".into(), 1.into());
    }
    Ok(Value::Object(out))
}

/// One `libxl_device_nic`; `devid` is its index among the guest's NICs.
fn nic(i: &Interface, e: &Element, devid: usize, kind: GuestKind) -> Result<Value> {
    only_children(
        e,
        &[
            "source",
            "mac",
            "script",
            "ip",
            "target",
            "model",
            "mtu",
            "address",
            "alias",
            "backenddomain",
        ],
    )?;
    let mut out = Map::new();
    out.insert("devid".into(), devid.into());
    match i.iface_type.as_str() {
        "bridge" => {
            let br = i
                .source_bridge
                .as_deref()
                .filter(|b| !b.is_empty())
                .ok_or_else(|| invalid("a bridge interface needs <source bridge=…>"))?;
            out.insert("bridge".into(), br.into());
        }
        "ethernet" => {}
        "network" => {
            return Err(invalid(
                "interface type 'network' needs the network's bridge from libvirt's network \
                 driver; name the bridge (type='bridge')",
            ))
        }
        other => {
            return Err(invalid(format!(
                "interface type '{other}' is not supported by libxl"
            )))
        }
    }
    if let Some(mac) = &i.mac {
        out.insert("mac".into(), mac.as_str().into());
    }
    let ips: Vec<&str> = e
        .elements()
        .filter(|c| c.name == "ip")
        .filter_map(|c| c.attr("address"))
        .collect();
    if !ips.is_empty() {
        out.insert("ip".into(), ips.join(" ").into());
    }
    if let Some(s) = &i.script {
        out.insert("script".into(), s.as_str().into());
    }
    if let Some(t) = &i.target_dev {
        out.insert("ifname".into(), t.as_str().into());
    }
    if let Some(m) = &i.model {
        if kind != GuestKind::Hvm && m != "netfront" {
            return Err(invalid(format!(
                "NIC model '{m}' needs an emulator; a PV or PVH guest has only 'netfront'"
            )));
        }
        out.insert("model".into(), m.as_str().into());
    }
    if let Some(size) = e.child("mtu").and_then(|m| m.attr("size")) {
        let mtu: u32 = size
            .trim()
            .parse()
            .map_err(|_| invalid(format!("mtu size '{size}' is not a number")))?;
        out.insert("mtu".into(), mtu.into());
    }
    if let Some(name) = e.child("backenddomain").and_then(|b| b.attr("name")) {
        out.insert("backend_domname".into(), name.into());
    }
    // An HVM guest gets an emulated card next to the PV one, unless it asks
    // for the PV one only.
    let ioemu = kind == GuestKind::Hvm && i.model.as_deref() != Some("netfront");
    out.insert(
        "nictype".into(),
        if ioemu { "vif_ioemu" } else { "vif" }.into(),
    );
    Ok(Value::Object(out))
}

fn pci_number(a: &Element, name: &str, max: u32) -> Result<u32> {
    let raw = a.attr(name).unwrap_or("0").trim();
    let n = match raw.strip_prefix("0x").or_else(|| raw.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => raw.parse(),
    }
    .map_err(|_| invalid(format!("PCI address {name} '{raw}' is not a number")))?;
    if n > max {
        return Err(invalid(format!(
            "PCI address {name} {n:#x} is out of range"
        )));
    }
    Ok(n)
}

/// One `libxl_device_pci` from a PCI `<source>`. Detaching a managed device
/// from its host driver is the driver's job before the guest starts.
fn pcidev(source: &Element) -> Result<Value> {
    let addr = source
        .child("address")
        .ok_or_else(|| invalid("a PCI host device needs <source><address …/>"))?;
    let mut out = Map::new();
    for (field, attr, max) in [
        ("domain", "domain", 0xffff),
        ("bus", "bus", 0xff),
        ("dev", "slot", 0x1f),
        ("func", "function", 7),
    ] {
        let n = pci_number(addr, attr, max)?;
        if n != 0 {
            out.insert(field.into(), n.into());
        }
    }
    match source.attr("writeFiltering") {
        None | Some("yes") => {}
        Some("no") => {
            out.insert("permissive".into(), true.into());
        }
        Some(v) => return Err(invalid(format!("writeFiltering '{v}' is not yes or no"))),
    }
    Ok(Value::Object(out))
}

/// A character device as qemu's `-serial` value, which libxl hands on.
fn chardev(e: &Element) -> Result<String> {
    let kind = e.attr("type").unwrap_or("pty");
    let sources: Vec<&Element> = e.elements().filter(|s| s.name == "source").collect();
    let source = |mode: &str| {
        sources
            .iter()
            .find(|s| s.attr("mode").unwrap_or("connect") == mode)
            .copied()
    };
    let path = || {
        sources
            .first()
            .and_then(|s| s.attr("path"))
            .ok_or_else(|| invalid(format!("a '{kind}' serial port needs <source path=…>")))
    };
    let server = |s: Option<&Element>| s.and_then(|s| s.attr("mode")) == Some("bind");
    let opt = |s: Option<&Element>, k: &str| s.and_then(|s| s.attr(k)).unwrap_or("").to_string();
    Ok(match kind {
        "null" | "stdio" | "vc" | "pty" => kind.to_string(),
        "pipe" | "file" => format!("{kind}:{}", path()?),
        "dev" => path()?.to_string(),
        "udp" => {
            let (c, b) = (source("connect"), source("bind"));
            let bind_service = b.and_then(|b| b.attr("service")).unwrap_or("0");
            format!(
                "udp:{}:{}@{}:{bind_service}",
                opt(c, "host"),
                opt(c, "service"),
                opt(b, "host")
            )
        }
        "tcp" => {
            let s = sources.first().copied();
            let telnet = e.child("protocol").and_then(|p| p.attr("type")) == Some("telnet");
            let mut v = format!(
                "{}:{}:{}",
                if telnet { "telnet" } else { "tcp" },
                opt(s, "host"),
                opt(s, "service")
            );
            if server(s) {
                v.push_str(",server,nowait");
            }
            v
        }
        "unix" => {
            let mut v = format!("unix:{}", path()?);
            if server(sources.first().copied()) {
                v.push_str(",server,nowait");
            }
            v
        }
        other => {
            return Err(invalid(format!(
                "serial type '{other}' is not supported by libxl"
            )))
        }
    })
}

/// The display settings shared by a vfb and HVM's built-in display.
struct Display {
    vnc: Map<String, Value>,
    sdl: Map<String, Value>,
    keymap: Option<String>,
}

fn display(e: &Element, opts: &Options) -> Result<Display> {
    let mut vnc = Map::new();
    let mut sdl = Map::new();
    let kind = e.attr("type").unwrap_or("");
    match kind {
        "vnc" => {
            only_children(e, &["listen"])?;
            vnc.insert("enable".into(), defbool(true));
            let listen = e
                .attr("listen")
                .or_else(|| e.child("listen").and_then(|l| l.attr("address")));
            if let Some(l) = e.child("listen") {
                if !matches!(l.attr("type"), None | Some("address")) {
                    return Err(invalid(
                        "a VNC <listen> other than an address is not supported",
                    ));
                }
            }
            if let Some(l) = listen {
                vnc.insert("listen".into(), l.into());
            }
            if let Some(p) = e.attr("passwd") {
                vnc.insert("passwd".into(), p.into());
            }
            let port: Option<i64> = match e.attr("port").map(str::trim) {
                None => None,
                Some(p) => Some(
                    p.parse()
                        .map_err(|_| invalid(format!("VNC port '{p}' is not a number")))?,
                ),
            };
            let auto = e.attr("autoport") == Some("yes") || matches!(port, None | Some(-1 | 0));
            let port = if auto {
                opts.vnc_port.map(i64::from)
            } else {
                port
            };
            match port {
                None => {
                    vnc.insert("findunused".into(), defbool(true));
                }
                Some(p) if (VNC_BASE_PORT..=65535).contains(&p) => {
                    if p > VNC_BASE_PORT {
                        vnc.insert("display".into(), (p - VNC_BASE_PORT).into());
                    }
                    vnc.insert("findunused".into(), defbool(false));
                }
                Some(p) => {
                    return Err(invalid(format!(
                        "VNC port {p} is outside {VNC_BASE_PORT}–65535"
                    )))
                }
            }
            sdl.insert("enable".into(), defbool(false));
        }
        "sdl" => {
            only_children(e, &["gl"])?;
            sdl.insert("enable".into(), defbool(true));
            if let Some(d) = e.attr("display") {
                sdl.insert("display".into(), d.into());
            }
            if let Some(x) = e.attr("xauth") {
                sdl.insert("xauthority".into(), x.into());
            }
            let gl = e.child("gl").and_then(|g| g.attr("enable")) == Some("yes");
            sdl.insert("opengl".into(), defbool(gl));
            vnc.insert("enable".into(), defbool(false));
        }
        other => {
            return Err(invalid(format!(
                "graphics type '{other}' is not supported by libxl (vnc or sdl)"
            )))
        }
    }
    for (k, _) in &e.attrs {
        let known: &[&str] = match kind {
            "vnc" => &["type", "port", "autoport", "listen", "passwd", "keymap"],
            _ => &["type", "display", "xauth", "keymap"],
        };
        if !known.contains(&k.as_str()) {
            return Err(invalid(format!(
                "graphics attribute '{k}' is not supported by libxl"
            )));
        }
    }
    Ok(Display {
        vnc,
        sdl,
        keymap: e.attr("keymap").map(str::to_string),
    })
}

/// The emulated adapter of an HVM guest: (libxl's vga kind, video RAM KiB).
fn video(e: &Element) -> Result<(&'static str, Option<u64>)> {
    let model = e.child("model");
    let vram = model
        .and_then(|m| m.attr("vram"))
        .map(|v| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| invalid(format!("video vram '{v}' is not a number")))
        })
        .transpose()?;
    if let Some(m) = model {
        if m.attr("heads").is_some_and(|h| h.trim() != "1") {
            return Err(invalid("libxl gives a guest one video head"));
        }
        only_children(m, &[])?;
    }
    let (kind, least) = match model.and_then(|m| m.attr("type")).unwrap_or("cirrus") {
        "cirrus" => ("cirrus", CIRRUS_VRAM_KIB),
        "vga" => ("std", VGA_VRAM_KIB),
        "none" => return Ok(("none", None)),
        other => {
            return Err(invalid(format!(
                "video model '{other}' is not supported for an HVM guest on libxl"
            )))
        }
    };
    match vram {
        Some(v) if v < least => Err(invalid(format!(
            "a {kind} adapter needs at least {least} KiB of video RAM, not {v}"
        ))),
        Some(v) => Ok((kind, Some(v))),
        None => Ok((kind, Some(least))),
    }
}

fn action(a: Option<LifecycleAction>, default: LifecycleAction) -> &'static str {
    match a.unwrap_or(default) {
        LifecycleAction::Destroy => "destroy",
        LifecycleAction::Restart => "restart",
        LifecycleAction::Preserve => "preserve",
        LifecycleAction::RenameRestart => "restart_rename",
        LifecycleAction::CoredumpDestroy => "coredump_destroy",
        LifecycleAction::CoredumpRestart => "coredump_restart",
    }
}

/// `<os>`: boot order for HVM, firmware, and anything libxl cannot honour.
fn hvm_boot(def: &DomainDef) -> Result<String> {
    let mut order = String::new();
    for b in &def.os.boot {
        order.push(match b.as_str() {
            "fd" => 'a',
            "hd" => 'c',
            "cdrom" => 'd',
            "network" => 'n',
            other => return Err(invalid(format!("boot device '{other}' is unknown"))),
        });
    }
    if order.is_empty() {
        order.push('c');
    }
    Ok(order)
}

/// Firmware fields of `type.hvm`: OVMF from a pflash loader or
/// `firmware='efi'`, and an ACPI SLIC table.
fn hvm_firmware(os: Option<&Element>, hvm: &mut Map<String, Value>) -> Result<()> {
    let Some(os) = os else {
        return Ok(());
    };
    if let Some(l) = os.child("loader") {
        let path = l.text().trim().to_string();
        if l.attr("type") == Some("pflash") {
            hvm.insert("bios".into(), "ovmf".into());
            if !path.is_empty() {
                hvm.insert("system_firmware".into(), path.into());
            }
        } else if !path.is_empty() && !path.ends_with("/hvmloader") {
            // libxl always loads its own hvmloader and has no field for another.
            return Err(invalid(format!(
                "loader '{path}' is not supported by libxl (hvmloader or a pflash OVMF image)"
            )));
        }
    }
    match os.attr("firmware") {
        None | Some("bios") => {}
        Some("efi") => {
            hvm.insert("bios".into(), "ovmf".into());
        }
        Some(f) => return Err(invalid(format!("firmware '{f}' is not supported by libxl"))),
    }
    if let Some(acpi) = os.child("acpi") {
        for t in acpi.elements() {
            match (t.name.as_str(), t.attr("type")) {
                ("table", Some("slic")) => {
                    hvm.insert("acpi_firmware".into(), t.text().trim().into());
                }
                _ => return Err(invalid("only an ACPI SLIC table is supported by libxl")),
            }
        }
    }
    Ok(())
}

fn check_os(def: &DomainDef, kind: GuestKind) -> Result<()> {
    if let Some(arch) = def.os.arch.as_deref() {
        if !matches!(arch, "x86_64" | "i686") {
            return Err(invalid(format!(
                "architecture '{arch}' is not supported (x86 only)"
            )));
        }
    }
    let Some(os) = def.root().child("os") else {
        return Ok(());
    };
    let known: &[&str] = match kind {
        GuestKind::Hvm => &[
            "type", "loader", "boot", "kernel", "initrd", "cmdline", "acpi", "root",
        ],
        // libvirt ignores <boot> for PV guests; they boot their kernel.
        GuestKind::Pv | GuestKind::Pvh => &["type", "boot", "kernel", "initrd", "cmdline", "root"],
    };
    only_children(os, known)?;
    if let Some(m) = def.os.machine.as_deref() {
        let ok = match kind {
            GuestKind::Pv => m == "xenpv",
            GuestKind::Hvm => m == "xenfv",
            GuestKind::Pvh => m == "xenpvh",
        };
        if !ok {
            return Err(invalid(format!(
                "machine '{m}' does not fit a {} guest",
                kind.as_str()
            )));
        }
    }
    if def.os.root.is_some() {
        return Err(invalid(
            "<root> has no libxl field; put root= in <cmdline> instead",
        ));
    }
    Ok(())
}

fn cputune(root: &Element, b_info: &mut Map<String, Value>) -> Result<()> {
    let Some(ct) = root.child("cputune") else {
        return Ok(());
    };
    only_children(ct, &["shares"])?;
    if let Some(s) = ct.child("shares") {
        let text = s.text();
        let weight: u32 = text
            .trim()
            .parse()
            .map_err(|_| invalid(format!("cpu shares '{}' is not a number", text.trim())))?;
        b_info.insert("sched_params".into(), json!({ "weight": weight }));
    }
    Ok(())
}

fn xenbus(e: &Element, b_info: &mut Map<String, Value>) -> Result<()> {
    for (attr, field) in [
        ("maxGrantFrames", "max_grant_frames"),
        ("maxEventChannels", "event_channels"),
    ] {
        if let Some(v) = e.attr(attr) {
            let n: u32 = v
                .trim()
                .parse()
                .map_err(|_| invalid(format!("xenbus {attr} '{v}' is not a number")))?;
            b_info.insert(field.into(), n.into());
        }
    }
    Ok(())
}

/// The devices, converted where they map one to one and sorted by kind
/// where the guest kind decides what they become.
#[derive(Default)]
struct Gathered<'a> {
    disks: Vec<Value>,
    nics: Vec<Value>,
    pcidevs: Vec<Value>,
    graphics: Vec<&'a Element>,
    videos: Vec<&'a Element>,
    serials: Vec<&'a Element>,
    consoles: Vec<&'a Element>,
    usb_inputs: Vec<&'a str>,
}

fn gather<'a>(
    def: &'a DomainDef,
    kind: GuestKind,
    b_info: &mut Map<String, Value>,
) -> Result<Gathered<'a>> {
    let mut g = Gathered::default();
    for (e, dev) in devices(def.root()).zip(def.devices.iter()) {
        match dev {
            Device::Emulator(path) => {
                let path = path.trim();
                if !path.is_empty() {
                    b_info.insert("device_model_version".into(), "qemu_xen".into());
                    b_info.insert("device_model".into(), path.into());
                }
            }
            Device::Disk(d) => g.disks.push(disk(d, e)?),
            Device::Interface(i) if i.iface_type == "hostdev" => {
                let source = e
                    .child("source")
                    .ok_or_else(|| invalid("a hostdev interface needs <source>"))?;
                g.pcidevs.push(pcidev(source)?);
            }
            Device::Interface(i) => g.nics.push(nic(i, e, g.nics.len(), kind)?),
            Device::Graphics(_) => g.graphics.push(e),
            Device::Console(_) => g.consoles.push(e),
            Device::Other(name) => match name.as_str() {
                "hostdev" => {
                    if e.attr("mode") != Some("subsystem") || e.attr("type") != Some("pci") {
                        return Err(invalid(
                            "only PCI host devices (mode='subsystem' type='pci') are supported",
                        ));
                    }
                    let source = e
                        .child("source")
                        .ok_or_else(|| invalid("a PCI host device needs <source>"))?;
                    g.pcidevs.push(pcidev(source)?);
                }
                "video" => g.videos.push(e),
                "serial" => g.serials.push(e),
                "input" => {
                    let bus = e.attr("bus").unwrap_or("");
                    let itype = e.attr("type").unwrap_or("");
                    match (kind, bus, itype) {
                        (GuestKind::Hvm, "ps2", "mouse" | "keyboard") => {}
                        (GuestKind::Hvm, "usb", "mouse" | "tablet" | "keyboard") => {
                            g.usb_inputs.push(itype)
                        }
                        (GuestKind::Pv | GuestKind::Pvh, "xen", "mouse" | "keyboard") => {}
                        _ => {
                            return Err(invalid(format!(
                                "input {itype} on bus '{bus}' is not supported for a {} guest",
                                kind.as_str()
                            )))
                        }
                    }
                }
                "controller" => match e.attr("type") {
                    Some("xenbus") => xenbus(e, b_info)?,
                    Some("ide" | "pci") => {}
                    other => {
                        return Err(invalid(format!(
                            "controller type '{}' is not supported by libxl",
                            other.unwrap_or("")
                        )))
                    }
                },
                "memballoon" => {
                    if !matches!(e.attr("model"), Some("xen" | "none")) {
                        return Err(invalid("only the Xen balloon is supported by libxl"));
                    }
                }
                other => {
                    return Err(invalid(format!(
                        "device <{other}> is not supported by the libxl conversion"
                    )))
                }
            },
        }
    }
    Ok(g)
}

/// `type.hvm`, plus the `b_info` fields only an HVM guest has.
fn hvm_info(
    def: &DomainDef,
    feats: &Features,
    clk: &Clock,
    g: &Gathered,
    shown: Option<&Display>,
    b_info: &mut Map<String, Value>,
) -> Result<Map<String, Value>> {
    let root = def.root();
    b_info.insert("acpi".into(), defbool(feats.acpi));
    b_info.insert("apic".into(), defbool(feats.apic));
    let mut hvm = Map::new();
    hvm.insert("pae".into(), defbool(feats.pae));
    if let Some(h) = clk.hpet {
        hvm.insert("hpet".into(), defbool(h));
    }
    hvm_firmware(root.child("os"), &mut hvm)?;
    if g.videos.len() > 1 {
        return Err(invalid("libxl gives an HVM guest one video adapter"));
    }
    // libvirt gives a guest with a display an implicit cirrus card.
    let (vga, vram) = match (g.videos.first(), shown) {
        (Some(v), _) => video(v)?,
        (None, Some(_)) => ("cirrus", Some(CIRRUS_VRAM_KIB)),
        (None, None) => ("none", None),
    };
    if let Some(v) = vram {
        b_info.insert("video_memkb".into(), v.into());
    }
    hvm.insert("vga".into(), json!({ "kind": vga }));
    match shown {
        Some(d) => {
            hvm.insert("vnc".into(), Value::Object(d.vnc.clone()));
            hvm.insert("sdl".into(), Value::Object(d.sdl.clone()));
            if let Some(k) = &d.keymap {
                hvm.insert("keymap".into(), k.as_str().into());
            }
        }
        None => {
            hvm.insert("nographic".into(), defbool(true));
            hvm.insert("vnc".into(), json!({ "enable": "False" }));
            hvm.insert("sdl".into(), json!({ "enable": "False" }));
        }
    }
    // libvirt turns an HVM console into the first serial port.
    let console_serial = g
        .consoles
        .iter()
        .filter(|c| {
            c.child("target")
                .and_then(|t| t.attr("type"))
                .unwrap_or("serial")
                == "serial"
        })
        .take(1);
    let ports: Vec<String> = if g.serials.is_empty() {
        console_serial.map(|c| chardev(c)).collect::<Result<_>>()?
    } else {
        g.serials
            .iter()
            .map(|s| chardev(s))
            .collect::<Result<_>>()?
    };
    match ports.as_slice() {
        [] => {}
        [one] => {
            hvm.insert("serial".into(), one.as_str().into());
        }
        many => {
            hvm.insert("serial_list".into(), many.to_vec().into());
        }
    }
    hvm.insert("boot".into(), hvm_boot(def)?.into());
    if !g.usb_inputs.is_empty() {
        hvm.insert("usbdevice_list".into(), g.usb_inputs.clone().into());
    }
    Ok(hvm)
}

/// Converts a definition into libxl's `libxl_domain_config` JSON.
///
/// Left out on purpose, since they cannot change the guest or are the
/// driver's business: `<title>`, `<description>`, `<metadata>`; `<address>`
/// and `<alias>` of devices (libxl places devices by their `vdev`/`devid`);
/// a disk's `<target bus>` (the name says it); the `hvmloader` path (libxl's
/// own is the only one it loads); PS/2 and Xen-bus input devices (implied by
/// the emulator and by a vfb); a PV guest's `<console>` (xenconsole always
/// exists) and `<boot>`; the `managed` flag of PCI devices and the MAC of an
/// `<interface type='hostdev'>` (host-side preparation the driver does before
/// creating the guest).
///
/// Two places differ from libvirt on purpose, because libvirt loses what the
/// definition says there: `<timer name='hpet' present='no'/>` turns the HPET
/// off (libvirt leaves libxl's default, on), and a disk without a driver
/// keeps the format its `type` names (libvirt calls every such image raw).
pub fn domain_config(def: &DomainDef, opts: &Options) -> Result<Value> {
    let root = def.root();
    if def.domain_type != "xen" {
        return Err(invalid(format!(
            "domain type '{}' cannot run on libxl (expected 'xen')",
            def.domain_type
        )));
    }
    if let Some(e) = root
        .elements()
        .find(|e| !KNOWN_TOP.contains(&e.name.as_str()))
    {
        return Err(invalid(format!(
            "<{}> is not supported by the libxl conversion",
            e.name
        )));
    }
    if root
        .child("vcpu")
        .is_some_and(|v| v.attr("cpuset").is_some())
    {
        return Err(invalid(
            "vCPU placement (<vcpu cpuset>) is not converted for libxl yet",
        ));
    }
    let kind = guest_kind(def)?;
    check_os(def, kind)?;
    let feats = features(root, kind)?;
    let uuid = def
        .uuid
        .ok_or_else(|| invalid("libxl needs the definition's <uuid>"))?;

    let mut c_info = Map::new();
    c_info.insert("type".into(), kind.as_str().into());
    if let Some(hap) = feats.hap {
        c_info.insert("hap".into(), defbool(hap));
    }
    c_info.insert("name".into(), def.name.as_str().into());
    c_info.insert("uuid".into(), uuid.to_string().into());

    let mut b_info = Map::new();
    let max_vcpus = def.vcpus;
    let avail = def.current_vcpus.unwrap_or(max_vcpus).min(max_vcpus);
    b_info.insert("max_vcpus".into(), max_vcpus.into());
    b_info.insert(
        "avail_vcpus".into(),
        (0..avail).collect::<Vec<u32>>().into(),
    );
    let max_memkb = def.memory_kib;
    let target = def.current_memory_kib.unwrap_or(max_memkb).min(max_memkb);
    b_info.insert("max_memkb".into(), max_memkb.into());
    b_info.insert("target_memkb".into(), target.into());
    b_info.insert(
        "shadow_memkb".into(),
        shadow_memkb(max_memkb, max_vcpus).into(),
    );
    let clk = clock(root, kind)?;
    if let Some(m) = clk.tsc_mode {
        b_info.insert("tsc_mode".into(), m.into());
    }
    if clk.rtc_timeoffset != 0 {
        // libxl keeps the offset as a uint32 and Xen reads it back as a
        // signed 32-bit number, so a negative one travels as its two's
        // complement, as the C assignment in libvirt does.
        let offset = i32::try_from(clk.rtc_timeoffset)
            .map_err(|_| invalid("clock adjustment is out of range"))?;
        b_info.insert("rtc_timeoffset".into(), (offset as u32).into());
    }
    if clk.localtime {
        b_info.insert("localtime".into(), defbool(true));
    }
    cputune(root, &mut b_info)?;
    if let Some(k) = def.os.kernel.as_deref().filter(|k| !k.is_empty()) {
        b_info.insert("kernel".into(), k.into());
    }
    if let Some(r) = def.os.initrd.as_deref().filter(|r| !r.is_empty()) {
        b_info.insert("ramdisk".into(), r.into());
    }
    if let Some(c) = def.os.cmdline.as_deref().filter(|c| !c.is_empty()) {
        b_info.insert("cmdline".into(), c.into());
    }

    let g = gather(def, kind, &mut b_info)?;
    if g.graphics.len() > 1 {
        return Err(invalid("libxl gives a guest one graphical display"));
    }
    let shown = g.graphics.first().map(|g| display(g, opts)).transpose()?;

    match kind {
        GuestKind::Hvm => {
            let hvm = hvm_info(def, &feats, &clk, &g, shown.as_ref(), &mut b_info)?;
            b_info.insert("type.hvm".into(), Value::Object(hvm));
        }
        GuestKind::Pv | GuestKind::Pvh => {
            if !g.serials.is_empty() {
                return Err(invalid(
                    "a PV or PVH guest has no emulated serial port (its console is xenconsole)",
                ));
            }
            if g.videos.iter().any(|v| {
                v.child("model")
                    .and_then(|m| m.attr("type"))
                    .unwrap_or("xen")
                    != "xen"
            }) {
                return Err(invalid(
                    "a PV or PVH guest's only video is the Xen framebuffer",
                ));
            }
            if kind == GuestKind::Pvh {
                if feats.acpi {
                    b_info.insert("acpi".into(), defbool(true));
                }
                if def.bootloader.is_some() {
                    return Err(invalid("a PVH guest boots a <kernel>, not a bootloader"));
                }
                if !b_info.contains_key("kernel") {
                    return Err(invalid("a PVH guest needs a <kernel>"));
                }
                b_info.insert("type.pvh".into(), json!({}));
            } else {
                let mut pv = Map::new();
                match def.bootloader.as_deref().map(str::trim) {
                    Some(b) if !b.is_empty() => {
                        pv.insert("bootloader".into(), b.into());
                    }
                    _ if !b_info.contains_key("kernel") => {
                        pv.insert("bootloader".into(), DEFAULT_BOOTLOADER.into());
                    }
                    _ => {}
                }
                if let Some(args) = def.bootloader_args.as_deref() {
                    let list: Vec<&str> = args.split_whitespace().collect();
                    if !list.is_empty() {
                        pv.insert("bootloader_args".into(), list.into());
                    }
                }
                b_info.insert("type.pv".into(), Value::Object(pv));
            }
        }
    }

    let mut config = Map::new();
    config.insert("c_info".into(), Value::Object(c_info));
    config.insert("b_info".into(), Value::Object(b_info));
    for (key, list) in [("disks", g.disks), ("nics", g.nics), ("pcidevs", g.pcidevs)] {
        if !list.is_empty() {
            config.insert(key.into(), list.into());
        }
    }
    if let Some(d) = shown {
        let mut vfb = Map::new();
        vfb.insert("vnc".into(), Value::Object(d.vnc));
        vfb.insert("sdl".into(), Value::Object(d.sdl));
        if let Some(k) = d.keymap {
            vfb.insert("keymap".into(), k.into());
        }
        config.insert("vfbs".into(), vec![Value::Object(vfb)].into());
        config.insert("vkbs".into(), vec![json!({})].into());
    }
    for (key, a, default) in [
        ("on_poweroff", def.on_poweroff, LifecycleAction::Destroy),
        ("on_reboot", def.on_reboot, LifecycleAction::Restart),
        ("on_crash", def.on_crash, LifecycleAction::Destroy),
    ] {
        // destroy is libxl's initial value, which its printer leaves out.
        let name = action(a, default);
        if name != "destroy" {
            config.insert(key.into(), name.into());
        }
    }
    Ok(Value::Object(config))
}

/// [`domain_config`] as the text handed to `libxl_domain_config_from_json`.
pub fn domain_config_json(def: &DomainDef, opts: &Options) -> Result<String> {
    let v = domain_config(def, opts)?;
    serde_json::to_string_pretty(&v)
        .map_err(|e| Error::new(crate::error::ErrorKind::Backend, e.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const UUID: &str = "3f0c2a51-7d1e-4b6a-9c2e-51aa08d3e001";

    fn domain(body: &str) -> DomainDef {
        let xml = format!(
            "<domain type='xen'><name>g1</name><uuid>{UUID}</uuid>\
             <memory>262144</memory>{body}</domain>"
        );
        DomainDef::parse(&xml).unwrap()
    }

    fn convert(body: &str) -> Value {
        domain_config(&domain(body), &Options::default()).unwrap()
    }

    fn refused(body: &str) -> String {
        domain_config(&domain(body), &Options::default())
            .unwrap_err()
            .message
    }

    #[test]
    fn pv_with_a_kernel_boots_it_without_a_bootloader() {
        let v = convert(
            "<os><type>linux</type><kernel>/boot/vmlinuz</kernel>\
             <initrd>/boot/initrd.img</initrd><cmdline>root=/dev/xvda1 ro</cmdline></os>",
        );
        assert_eq!(v["c_info"]["type"], "pv");
        assert_eq!(v["c_info"]["name"], "g1");
        assert_eq!(v["c_info"]["uuid"], UUID);
        let b = &v["b_info"];
        assert_eq!(b["kernel"], "/boot/vmlinuz");
        assert_eq!(b["ramdisk"], "/boot/initrd.img");
        assert_eq!(b["cmdline"], "root=/dev/xvda1 ro");
        assert_eq!(b["type.pv"], json!({}));
        assert!(b.get("type.hvm").is_none());
        // libvirt's defaults: on_reboot restart, the others destroy (left out).
        assert_eq!(v["on_reboot"], "restart");
        assert!(v.get("on_poweroff").is_none() && v.get("on_crash").is_none());
    }

    #[test]
    fn pv_without_a_kernel_gets_pygrub_and_split_bootloader_args() {
        let v = convert(
            "<bootloader_args>-q  --entry=2</bootloader_args><os><type>xen</type></os>\
             <on_crash>coredump-restart</on_crash><on_poweroff>rename-restart</on_poweroff>",
        );
        let pv = &v["b_info"]["type.pv"];
        assert_eq!(pv["bootloader"], "pygrub");
        assert_eq!(pv["bootloader_args"], json!(["-q", "--entry=2"]));
        assert_eq!(v["on_crash"], "coredump_restart");
        assert_eq!(v["on_poweroff"], "restart_rename");
    }

    #[test]
    fn hvm_gets_its_union_features_and_a_display() {
        let v = domain_config(
            &domain(
                "<os><type>hvm</type><loader>/usr/lib/xen/boot/hvmloader</loader>\
                 <boot dev='cdrom'/><boot dev='hd'/></os>\
                 <features><acpi/><pae/><hap state='off'/></features>\
                 <clock offset='variable' adjustment='-3600' basis='localtime'/>\
                 <devices><emulator>/usr/lib/xen/bin/qemu-system-i386</emulator>\
                 <graphics type='vnc' autoport='yes' keymap='de'/>\
                 <video><model type='vga'/></video></devices>",
            ),
            &Options {
                vnc_port: Some(5903),
            },
        )
        .unwrap();
        assert_eq!(v["c_info"]["type"], "hvm");
        assert_eq!(v["c_info"]["hap"], "False");
        let b = &v["b_info"];
        assert_eq!(b["acpi"], "True");
        assert_eq!(b["apic"], "False");
        assert_eq!(b["device_model_version"], "qemu_xen");
        assert_eq!(b["device_model"], "/usr/lib/xen/bin/qemu-system-i386");
        assert_eq!(b["localtime"], "True");
        assert_eq!(b["rtc_timeoffset"], (-3600i32) as u32);
        assert_eq!(b["video_memkb"], 16384);
        let hvm = &b["type.hvm"];
        assert_eq!(hvm["pae"], "True");
        assert_eq!(hvm["boot"], "dc");
        assert_eq!(hvm["vga"]["kind"], "std");
        assert_eq!(hvm["keymap"], "de");
        assert_eq!(
            hvm["vnc"],
            json!({"enable": "True", "display": 3, "findunused": "False"})
        );
        assert_eq!(v["vfbs"][0]["vnc"], hvm["vnc"]);
        assert_eq!(v["vkbs"], json!([{}]));
        assert!(b.get("type.pv").is_none());
    }

    #[test]
    fn hvm_without_graphics_has_no_display_and_boots_from_disk() {
        let v = convert("<os><type>hvm</type></os>");
        let hvm = &v["b_info"]["type.hvm"];
        assert_eq!(hvm["nographic"], "True");
        assert_eq!(hvm["vga"]["kind"], "none");
        assert_eq!(hvm["vnc"]["enable"], "False");
        assert_eq!(hvm["boot"], "c");
        assert!(v.get("vfbs").is_none() && v["b_info"].get("video_memkb").is_none());
    }

    #[test]
    fn an_unallocated_vnc_port_is_left_to_libxl() {
        let v = convert(
            "<os><type>linux</type><kernel>/k</kernel></os>\
             <devices><graphics type='vnc' port='-1' listen='0.0.0.0'/></devices>",
        );
        assert_eq!(
            v["vfbs"][0]["vnc"],
            json!({"enable": "True", "listen": "0.0.0.0", "findunused": "True"})
        );
        assert!(v["b_info"]["type.pv"].get("vnc").is_none());
    }

    #[test]
    fn vcpus_current_below_max_fill_the_avail_bitmap() {
        let v = convert("<vcpu current='2'>4</vcpu><os><type>hvm</type></os>");
        assert_eq!(v["b_info"]["max_vcpus"], 4);
        assert_eq!(v["b_info"]["avail_vcpus"], json!([0, 1]));
        let v = convert("<os><type>hvm</type></os>");
        assert_eq!(v["b_info"]["max_vcpus"], 1);
        assert_eq!(v["b_info"]["avail_vcpus"], json!([0]));
    }

    #[test]
    fn memory_is_kib_with_the_target_from_current_memory() {
        let v = convert(
            "<currentMemory unit='MiB'>128</currentMemory><vcpu>2</vcpu>\
             <os><type>hvm</type></os>",
        );
        let b = &v["b_info"];
        assert_eq!(b["max_memkb"], 262144);
        assert_eq!(b["target_memkb"], 131072);
        // 1 MiB per vCPU and 8 KiB per MiB of guest memory.
        assert_eq!(b["shadow_memkb"], 4 * (256 * 2 + 2 * 256));
        let v = convert("<os><type>hvm</type></os>");
        assert_eq!(v["b_info"]["target_memkb"], 262144);
    }

    #[test]
    fn disks_map_drivers_formats_and_cdroms() {
        let v = convert(
            "<os><type>hvm</type></os><devices>\
             <disk type='block'><driver name='phy'/><source dev='/dev/vg/g1'/>\
             <target dev='hda'/></disk>\
             <disk type='file'><driver name='qemu' type='qcow2' discard='unmap'/>\
             <source file='/img/g1.qcow2'/><target dev='hdb'/><readonly/></disk>\
             <disk type='file' device='cdrom'><target dev='hdc'/></disk>\
             <disk><source file='/img/plain'/><target dev='xvdd'/></disk></devices>",
        );
        assert_eq!(
            v["disks"],
            json!([
                {"pdev_path": "/dev/vg/g1", "vdev": "hda", "backend": "phy",
                 "format": "raw", "removable": 1, "readwrite": 1},
                {"pdev_path": "/img/g1.qcow2", "vdev": "hdb", "backend": "qdisk",
                 "format": "qcow2", "removable": 1},
                {"vdev": "hdc", "format": "empty", "removable": 1, "is_cdrom": 1},
                {"pdev_path": "/img/plain", "vdev": "xvdd", "format": "raw",
                 "removable": 1, "readwrite": 1}
            ])
        );
    }

    #[test]
    fn nics_number_themselves_and_emulate_on_hvm() {
        let v = convert(
            "<os><type>hvm</type></os><devices>\
             <interface type='bridge'><source bridge='xenbr0'/>\
             <mac address='00:16:3e:00:00:01'/><target dev='vif-g1'/></interface>\
             <interface type='ethernet'><ip address='10.0.0.2'/>\
             <script path='vif-route'/><model type='netfront'/></interface>\
             </devices>",
        );
        assert_eq!(
            v["nics"],
            json!([
                {"devid": 0, "bridge": "xenbr0", "mac": "00:16:3e:00:00:01",
                 "ifname": "vif-g1", "nictype": "vif_ioemu"},
                {"devid": 1, "ip": "10.0.0.2", "script": "vif-route",
                 "model": "netfront", "nictype": "vif"}
            ])
        );
        let v = convert(
            "<os><type>linux</type><kernel>/k</kernel></os><devices>\
             <interface type='bridge'><source bridge='xenbr0'/></interface></devices>",
        );
        assert_eq!(v["nics"][0]["nictype"], "vif");
    }

    #[test]
    fn pvh_needs_a_kernel() {
        let v = convert("<os><type>xenpvh</type><kernel>/k</kernel></os>");
        assert_eq!(v["c_info"]["type"], "pvh");
        assert_eq!(v["b_info"]["type.pvh"], json!({}));
        assert!(refused("<os><type>xenpvh</type></os>").contains("kernel"));
    }

    #[test]
    fn what_libxl_cannot_do_is_refused_not_dropped() {
        let pv = "<os><type>linux</type><kernel>/k</kernel></os>";
        for (body, says) in [
            (
                format!(
                    "{pv}<devices><disk><driver name='tap' type='raw'/>\
                 <source file='/i'/><target dev='xvda'/></disk></devices>"
                ),
                "blktap",
            ),
            (
                format!(
                    "{pv}<devices><disk><source file='/i'/><target dev='xvda'/>\
                 <shareable/></disk></devices>"
                ),
                "share",
            ),
            (
                format!(
                    "{pv}<devices><interface type='network'>\
                 <source network='default'/></interface></devices>"
                ),
                "network",
            ),
            (
                format!("{pv}<devices><sound model='es1370'/></devices>"),
                "<sound>",
            ),
            (format!("{pv}<cpu mode='host-passthrough'/>"), "<cpu>"),
            (
                "<os><type>hvm</type></os><features><hyperv/></features>".into(),
                "Hyper-V",
            ),
            (
                "<os><type>hvm</type><loader>/opt/my-bios</loader></os>".into(),
                "loader",
            ),
            (
                "<os><type>hvm</type></os><clock offset='timezone'/>".into(),
                "timezone",
            ),
            (
                format!("{pv}<devices><graphics type='spice'/></devices>"),
                "spice",
            ),
            (
                format!("{pv}<devices><serial type='pty'/></devices>"),
                "serial",
            ),
            ("<os><type>exe</type></os>".into(), "exe"),
        ] {
            let m = refused(&body);
            assert!(m.contains(says), "{body}: {m}");
        }
        let kvm = DomainDef::parse(
            "<domain type='kvm'><name>k</name><memory>1024</memory>\
             <os><type>hvm</type></os></domain>",
        )
        .unwrap();
        assert!(domain_config(&kvm, &Options::default()).is_err());
    }

    #[test]
    fn hvm_serial_ports_use_qemu_values() {
        let v = convert(
            "<os><type>hvm</type></os><devices>\
             <serial type='tcp'><source mode='bind' host='0.0.0.0' service='4555'/>\
             <protocol type='telnet'/></serial>\
             <serial type='udp'><source mode='connect' host='h' service='1'/>\
             <source mode='bind' host='l' service='2'/></serial></devices>",
        );
        assert_eq!(
            v["b_info"]["type.hvm"]["serial_list"],
            json!(["telnet:0.0.0.0:4555,server,nowait", "udp:h:1@l:2"])
        );
        let v = convert("<os><type>hvm</type></os><devices><console type='pty'/></devices>");
        assert_eq!(v["b_info"]["type.hvm"]["serial"], "pty");
    }

    #[test]
    fn the_json_text_parses_back_to_the_value() {
        let def = domain("<os><type>hvm</type></os><description>\"quoted\"\n</description>");
        let text = domain_config_json(&def, &Options::default()).unwrap();
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, domain_config(&def, &Options::default()).unwrap());
    }
}
