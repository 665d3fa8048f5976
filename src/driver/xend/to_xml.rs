//! xend's domain SXP to libvirt domain XML, as libvirt's xend driver
//! converted it (xend config format 4, Xen 3.1+): the element tree is built
//! in libvirt's order with the defaults libvirt added (implicit inputs,
//! video, memballoon, IDE addresses), then validated by the model.
//!
//! Pure: an `Sexpr` in, a `DomainDef` out. What xenstore knows and the SXP
//! does not (the console pty, the VNC port) is passed in by the caller.

use super::chr::Chr;
use super::sxp::Sexpr;
use crate::error::{Error, Result};
use crate::model::xml::{Element, Node};
use crate::model::{DomainDef, Uuid};

/// What the caller learnt outside the SXP, e.g. from xenstore.
#[derive(Debug, Clone, Default)]
pub struct Extra {
    /// `console/tty` of the domain, when known.
    pub tty: Option<String>,
    /// `console/vnc-port`, when known.
    pub vnc_port: Option<i32>,
}

fn el(name: &str, attrs: &[(&str, &str)]) -> Element {
    let mut e = Element::new(name);
    for (k, v) in attrs {
        e.attrs.push(((*k).to_string(), (*v).to_string()));
    }
    e
}

fn text_el(name: &str, attrs: &[(&str, &str)], text: &str) -> Element {
    let mut e = el(name, attrs);
    e.set_text(text);
    e
}

fn push(parent: &mut Element, child: Element) {
    parent.children.push(Node::Element(child));
}

fn bad(message: impl Into<String>) -> Error {
    Error::backend(format!("xend domain record: {}", message.into()))
}

/// A 0/1 flag as libvirt's `sexpr_int(…) == 1`.
fn flag(s: &Sexpr, path: &str) -> bool {
    s.get_int(path) == Some(1)
}

/// Converts a `(domain …)` record as xend's GET returns it.
pub fn domain_from_sexpr(root: &Sexpr, extra: &Extra) -> Result<DomainDef> {
    match root.head() {
        Some("domain") | Some("vm") => {}
        other => {
            return Err(bad(format!(
                "expected (domain ...), found {}",
                other.unwrap_or("no list")
            )))
        }
    }
    let hvm = root.lookup("image/hvm").is_some();
    let img = if hvm { "image/hvm" } else { "image/linux" };
    let id = match root.get_int("domid") {
        Some(n) if n >= 0 => Some(n),
        _ => None,
    };

    let mut dom = el("domain", &[("type", "xen")]);
    if let Some(id) = id {
        dom.attrs.push(("id".into(), id.to_string()));
    }
    let name = root.get_nonempty("name").ok_or_else(|| bad("no (name)"))?;
    push(&mut dom, text_el("name", &[], name));
    if let Some(u) = root.get_nonempty("uuid") {
        let u = Uuid::parse(u).map_err(bad)?;
        push(&mut dom, text_el("uuid", &[], &u.to_string()));
    }
    if let Some(d) = root.get_nonempty("description") {
        push(&mut dom, text_el("description", &[], d));
    }

    // Memory: MiB in xend, KiB in libvirt.
    // Up to 2^40 MiB, so KiB values cannot overflow.
    let mem = root.get_int("memory").filter(|m| (1..=1 << 40).contains(m));
    let max = root.get_int("maxmem").filter(|m| (1..=1 << 40).contains(m));
    let (cur, max) = match (mem, max) {
        (None, None) => return Err(bad("no (memory) or (maxmem)")),
        (Some(c), None) => (c, c),
        (None, Some(m)) => (m, m),
        (Some(c), Some(m)) => (c, m.max(c)),
    };
    let kib = |mib: i64| (mib << 10).to_string();
    push(&mut dom, text_el("memory", &[("unit", "KiB")], &kib(max)));
    push(
        &mut dom,
        text_el("currentMemory", &[("unit", "KiB")], &kib(cur)),
    );

    let vcpus = root.get_int("vcpus").filter(|v| *v > 0).unwrap_or(1);
    let vcpus = u32::try_from(vcpus).map_err(|_| bad("(vcpus) out of range"))?;
    let mut vcpu = text_el("vcpu", &[("placement", "static")], &vcpus.to_string());
    if let Some(avail) = root.get_int("vcpu_avail") {
        let online = (avail as u64).count_ones().min(vcpus);
        if online > 0 && online < vcpus {
            vcpu.attrs.push(("current".into(), online.to_string()));
        }
    }
    push(&mut dom, vcpu);

    if !hvm {
        if let Some(b) = root.lookup("bootloader") {
            let text = b.items().get(1).and_then(Sexpr::as_atom).unwrap_or("");
            push(&mut dom, text_el("bootloader", &[], text));
        }
        if let Some(a) = root.get_nonempty("bootloader_args") {
            push(&mut dom, text_el("bootloader_args", &[], a));
        }
    }

    // <os>
    let mut os = el("os", &[]);
    push(
        &mut os,
        text_el("type", &[], if hvm { "hvm" } else { "linux" }),
    );
    let kernel = root.get_nonempty(&format!("{img}/kernel"));
    let mut direct_kernel = false;
    if hvm {
        let loader = root.get_nonempty(&format!("{img}/loader"));
        let (loader, k) = match loader {
            Some(l) => (Some(l), kernel),
            None => (kernel, None),
        };
        if let Some(l) = loader {
            push(&mut os, text_el("loader", &[("type", "rom")], l));
        }
        if let Some(k) = k {
            direct_kernel = true;
            push(&mut os, text_el("kernel", &[], k));
        }
    } else if let Some(k) = kernel {
        push(&mut os, text_el("kernel", &[], k));
    }
    if !hvm || direct_kernel {
        if let Some(r) = root.get_nonempty(&format!("{img}/ramdisk")) {
            push(&mut os, text_el("initrd", &[], r));
        }
        if let Some(a) = root.get_nonempty(&format!("{img}/args")) {
            push(&mut os, text_el("cmdline", &[], a));
        }
        if let Some(r) = root.get_nonempty(&format!("{img}/root")) {
            push(&mut os, text_el("root", &[], r));
        }
    }
    if hvm && !direct_kernel {
        let boot = root.get_nonempty(&format!("{img}/boot")).unwrap_or("c");
        for c in boot.chars() {
            let dev = match c {
                'a' => "fd",
                'c' => "hd",
                'd' => "cdrom",
                'n' => "network",
                _ => continue,
            };
            push(&mut os, el("boot", &[("dev", dev)]));
        }
    }
    push(&mut dom, os);

    if hvm {
        let mut features = el("features", &[]);
        for f in ["acpi", "apic", "pae", "hap", "viridian"] {
            if flag(root, &format!("{img}/{f}")) {
                push(&mut features, el(f, &[]));
            }
        }
        if !features.children.is_empty() {
            push(&mut dom, features);
        }
    }

    // <clock>
    let localtime = flag(root, "localtime") || flag(root, &format!("{img}/localtime"));
    if hvm {
        let offset = root
            .get_int(&format!("{img}/rtc_timeoffset"))
            .unwrap_or(0)
            .to_string();
        let basis = if localtime { "localtime" } else { "utc" };
        let mut clock = el(
            "clock",
            &[
                ("offset", "variable"),
                ("adjustment", &offset),
                ("basis", basis),
            ],
        );
        if let Some(h) = root.get_int(&format!("{img}/hpet")) {
            let present = if h == 1 { "yes" } else { "no" };
            push(
                &mut clock,
                el("timer", &[("name", "hpet"), ("present", present)]),
            );
        }
        push(&mut dom, clock);
    } else {
        let offset = if localtime { "localtime" } else { "utc" };
        push(
            &mut dom,
            el("clock", &[("offset", offset), ("adjustment", "reset")]),
        );
    }

    for (key, default) in [
        ("on_poweroff", "destroy"),
        ("on_reboot", "restart"),
        ("on_crash", "destroy"),
    ] {
        let v = root.get_nonempty(key).unwrap_or(default);
        push(&mut dom, text_el(key, &[], v));
    }

    let mut devices = el("devices", &[]);
    if let Some(dm) = root.get_nonempty(&format!("{img}/device_model")) {
        push(&mut devices, text_el("emulator", &[], dm));
    }
    let disks = disks(root, hvm)?;
    let ide = disks.iter().any(|d| {
        d.child("target")
            .and_then(|t| t.attr("bus"))
            .is_some_and(|b| b == "ide")
    });
    for d in disks {
        push(&mut devices, d);
    }
    if ide {
        push(
            &mut devices,
            el("controller", &[("type", "ide"), ("index", "0")]),
        );
    }
    for n in interfaces(root, id)? {
        push(&mut devices, n);
    }

    if hvm {
        chr_devices(root, img, extra, &mut devices)?;
    } else {
        let mut console = el("console", &[("type", "pty")]);
        if let Some(tty) = &extra.tty {
            console.attrs.push(("tty".into(), tty.clone()));
            push(&mut console, el("source", &[("path", tty)]));
        }
        push(
            &mut console,
            el("target", &[("type", "xen"), ("port", "0")]),
        );
        push(&mut devices, console);
    }

    let bus = if hvm { "ps2" } else { "xen" };
    if hvm {
        if let Some(u) = root.get_nonempty(&format!("{img}/usbdevice")) {
            if u == "mouse" || u == "tablet" {
                push(&mut devices, el("input", &[("type", u), ("bus", "usb")]));
            }
        }
    }
    push(
        &mut devices,
        el("input", &[("type", "mouse"), ("bus", bus)]),
    );
    push(
        &mut devices,
        el("input", &[("type", "keyboard"), ("bus", bus)]),
    );

    let graphics = match graphics_old(root, img, extra) {
        Some(g) => Some(g),
        None => graphics_new(root, extra)?,
    };
    let has_graphics = graphics.is_some();
    if let Some(g) = graphics {
        push(&mut devices, g);
    }
    if hvm {
        if let Some(s) = root.get_nonempty(&format!("{img}/soundhw")) {
            let models: Vec<&str> = if s == "all" {
                vec!["sb16", "es1370"]
            } else {
                s.split(',').filter(|m| !m.is_empty()).collect()
            };
            for m in models {
                push(&mut devices, el("sound", &[("model", m)]));
            }
        }
    }
    if has_graphics {
        let (model, vram) = if hvm {
            ("cirrus", "16384")
        } else {
            ("xen", "4096")
        };
        let mut video = el("video", &[]);
        push(
            &mut video,
            el(
                "model",
                &[
                    ("type", model),
                    ("vram", vram),
                    ("heads", "1"),
                    ("primary", "yes"),
                ],
            ),
        );
        push(&mut devices, video);
    }
    for h in hostdevs(root)? {
        push(&mut devices, h);
    }
    push(&mut devices, el("memballoon", &[("model", "xen")]));
    push(&mut dom, devices);

    DomainDef::from_tree(dom).map_err(|e| bad(format!("converted XML is invalid: {e}")))
}

/// The device subtrees of one kind (`vbd`, `vif`, …), in order.
pub(super) fn devices_of<'a>(
    root: &'a Sexpr,
    kinds: &'a [&'a str],
) -> impl Iterator<Item = &'a Sexpr> + 'a {
    root.children("device")
        .filter_map(|d| d.items().get(1))
        .filter(move |d| d.head().is_some_and(|h| kinds.contains(&h)))
}

/// libvirt's disk index from a device name (`hda` → 0, `xvdb` → 1, `sdaa` → 26).
pub(super) fn disk_index(name: &str) -> Option<u32> {
    let letters = ["xvd", "hd", "sd", "vd", "fd"]
        .iter()
        .find_map(|p| name.strip_prefix(p))?;
    if letters.is_empty() || !letters.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let mut idx: u32 = 0;
    for (i, b) in letters.bytes().enumerate() {
        let v = u32::from(b - b'a');
        idx = if i == 0 {
            v
        } else {
            idx.checked_add(1)?.checked_mul(26)?.checked_add(v)?
        };
    }
    Some(idx)
}

/// The bus a disk name implies, as libvirt guessed it.
pub(super) fn bus_of(target: &str, hvm: bool) -> &'static str {
    if target.starts_with("xvd") {
        "xen"
    } else if target.starts_with("hd") {
        "ide"
    } else if target.starts_with("sd") {
        "scsi"
    } else if target.starts_with("fd") {
        "fdc"
    } else if hvm {
        "ide"
    } else {
        "xen"
    }
}

fn disks(root: &Sexpr, hvm: bool) -> Result<Vec<Element>> {
    let mut out: Vec<(bool, Element)> = Vec::new();
    for d in devices_of(root, &["vbd", "tap", "tap2"]) {
        let Some(dev) = d.get_nonempty("dev") else {
            return Err(bad("a disk has no (dev)"));
        };
        let dev = dev.strip_prefix("ioemu:").unwrap_or(dev);
        let (target, cdrom) = match dev.rsplit_once(':') {
            Some((t, "cdrom")) => (t, true),
            Some((t, "disk")) => (t, false),
            _ => (dev, false),
        };
        let device = if cdrom {
            "cdrom"
        } else if target.starts_with("fd") {
            "floppy"
        } else {
            "disk"
        };
        let mut driver: Option<Element> = None;
        let mut disk_type = "file";
        let mut source: Option<Element> = None;
        if let Some(uname) = d.get_nonempty("uname") {
            let (drv, rest) = uname
                .split_once(':')
                .ok_or_else(|| bad(format!("disk uname '{uname}' has no driver prefix")))?;
            match drv {
                "tap" | "tap2" => {
                    let (fmt, path) = rest
                        .split_once(':')
                        .ok_or_else(|| bad(format!("tap disk '{uname}' has no format")))?;
                    let fmt = if fmt == "aio" { "raw" } else { fmt };
                    driver = Some(el("driver", &[("name", drv), ("type", fmt)]));
                    source = Some(el("source", &[("file", path)]));
                }
                "phy" => {
                    disk_type = "block";
                    driver = Some(el("driver", &[("name", "phy")]));
                    let path = if rest.starts_with('/') {
                        rest.to_string()
                    } else {
                        format!("/dev/{rest}")
                    };
                    source = Some(el("source", &[("dev", &path)]));
                }
                other => {
                    driver = Some(el("driver", &[("name", other)]));
                    source = Some(el("source", &[("file", rest)]));
                }
            }
        }
        let bus = bus_of(target, hvm);
        let mut disk = el("disk", &[("type", disk_type), ("device", device)]);
        if let Some(drv) = driver {
            push(&mut disk, drv);
        }
        if let Some(s) = source {
            push(&mut disk, s);
        }
        push(&mut disk, el("target", &[("dev", target), ("bus", bus)]));
        let mode = d.get("mode").unwrap_or("w");
        if cdrom || mode.starts_with('r') {
            push(&mut disk, el("readonly", &[]));
        } else if mode == "w!" {
            push(&mut disk, el("shareable", &[]));
        }
        if bus == "ide" {
            if let Some(i) = disk_index(target) {
                let (c, b, u) = (
                    (i / 4).to_string(),
                    ((i % 4) / 2).to_string(),
                    (i % 2).to_string(),
                );
                push(
                    &mut disk,
                    el(
                        "address",
                        &[
                            ("type", "drive"),
                            ("controller", &c),
                            ("bus", &b),
                            ("target", "0"),
                            ("unit", &u),
                        ],
                    ),
                );
            }
        }
        out.push((d.get_int("bootable") == Some(1), disk));
    }
    // libvirt lists the bootable disk first.
    out.sort_by_key(|(bootable, _)| !*bootable);
    Ok(out.into_iter().map(|(_, d)| d).collect())
}

/// `10240KB/s` → KB/s, libvirt's `outbound average`.
fn parse_rate(rate: &str) -> Option<u64> {
    let r = rate.split('@').next()?.strip_suffix("/s")?;
    let digits = r.bytes().take_while(u8::is_ascii_digit).count();
    let n: u64 = r[..digits].parse().ok()?;
    let (scale, unit) = match &r[digits..] {
        u if u.starts_with('G') => (1u64 << 30, &u[1..]),
        u if u.starts_with('M') => (1 << 20, &u[1..]),
        u if u.starts_with('K') => (1 << 10, &u[1..]),
        u => (1, u),
    };
    let bytes = match unit {
        "B" => n.checked_mul(scale)?,
        "b" => n.checked_mul(scale)? / 8,
        _ => return None,
    };
    Some(bytes / 1024)
}

fn interfaces(root: &Sexpr, id: Option<i64>) -> Result<Vec<Element>> {
    let mut out = Vec::new();
    for (index, v) in devices_of(root, &["vif"]).enumerate() {
        let bridge = v.get_nonempty("bridge");
        let mut nic = el(
            "interface",
            &[(
                "type",
                if bridge.is_some() {
                    "bridge"
                } else {
                    "ethernet"
                },
            )],
        );
        if let Some(mac) = v.get_nonempty("mac") {
            push(&mut nic, el("mac", &[("address", mac)]));
        }
        if let Some(b) = bridge {
            push(&mut nic, el("source", &[("bridge", b)]));
        }
        if let Some(r) = v.get_nonempty("rate") {
            let kb = parse_rate(r).ok_or_else(|| bad(format!("vif rate '{r}'")))?;
            let mut bw = el("bandwidth", &[]);
            push(&mut bw, el("outbound", &[("average", &kb.to_string())]));
            push(&mut nic, bw);
        }
        if let Some(ip) = v.get_nonempty("ip") {
            let family = if ip.contains(':') { "ipv6" } else { "ipv4" };
            push(&mut nic, el("ip", &[("address", ip), ("family", family)]));
        }
        if let Some(s) = v.get_nonempty("script") {
            push(&mut nic, el("script", &[("path", s)]));
        }
        let vifname = v
            .get_nonempty("vifname")
            .map(str::to_string)
            .or_else(|| id.map(|id| format!("vif{id}.{index}")));
        if let Some(n) = vifname {
            push(&mut nic, el("target", &[("dev", &n)]));
        }
        let model = v
            .get_nonempty("model")
            .or_else(|| v.get_nonempty("type").filter(|t| *t == "netfront"));
        if let Some(m) = model {
            push(&mut nic, el("model", &[("type", m)]));
        }
        out.push(nic);
    }
    Ok(out)
}

fn chr_devices(root: &Sexpr, img: &str, extra: &Extra, devices: &mut Element) -> Result<()> {
    let mut serials: Vec<(u32, Chr)> = Vec::new();
    if let Some(node) = root.lookup(&format!("{img}/serial")) {
        let values: Vec<(u32, &str)> = match node.items().get(1) {
            Some(Sexpr::Atom(a)) => vec![(0, a.as_str())],
            Some(Sexpr::List(l)) => l
                .iter()
                .enumerate()
                .filter_map(|(i, v)| Some((u32::try_from(i).ok()?, v.as_atom()?)))
                .collect(),
            None => Vec::new(),
        };
        for (port, v) in values {
            if let Some(mut c) = Chr::from_value(v).map_err(bad)? {
                if c.kind == "pty" {
                    c.path = extra.tty.clone();
                }
                serials.push((port, c));
            }
        }
    }
    let target = |port: u32, kind: Option<&str>| {
        let p = port.to_string();
        match kind {
            Some(k) => el("target", &[("type", k), ("port", &p)]),
            None => el("target", &[("port", &p)]),
        }
    };
    for (port, c) in &serials {
        push(devices, c.to_element("serial", target(*port, None)));
    }
    if let Some(v) = root.get_nonempty(&format!("{img}/parallel")) {
        if let Some(c) = Chr::from_value(v).map_err(bad)? {
            push(devices, c.to_element("parallel", target(0, None)));
        }
    }
    if let Some((port, c)) = serials.first() {
        push(
            devices,
            c.to_element("console", target(*port, Some("serial"))),
        );
    }
    Ok(())
}

fn vnc_element(port: i32, autoport: bool, listen: Option<&str>, keymap: Option<&str>) -> Element {
    let port_s = port.to_string();
    let mut g = el(
        "graphics",
        &[
            ("type", "vnc"),
            ("port", &port_s),
            ("autoport", if autoport { "yes" } else { "no" }),
        ],
    );
    if let Some(l) = listen {
        g.attrs.push(("listen".into(), l.into()));
    }
    if let Some(k) = keymap {
        g.attrs.push(("keymap".into(), k.into()));
    }
    let mut l = el("listen", &[("type", "address")]);
    if let Some(a) = listen {
        l.attrs.push(("address".into(), a.into()));
    }
    push(&mut g, l);
    g
}

fn sdl_element(node: &Sexpr, base: &str) -> Element {
    let mut g = el("graphics", &[("type", "sdl")]);
    if let Some(d) = node.get_nonempty(&format!("{base}display")) {
        g.attrs.push(("display".into(), d.into()));
    }
    if let Some(x) = node.get_nonempty(&format!("{base}xauthority")) {
        g.attrs.push(("xauth".into(), x.into()));
    }
    g
}

/// The port and autoport libvirt showed: xenstore's port when known, else
/// the record's display number; auto when xend picks the port.
fn vnc_port(extra: &Extra, display: Option<i64>, unused: bool) -> (i32, bool) {
    let mut port = extra.vnc_port.unwrap_or(-1);
    if port < 0 {
        port = display
            .and_then(|d| i32::try_from(d).ok())
            .filter(|d| *d >= 0)
            .unwrap_or(-1);
    }
    if (0..5900).contains(&port) {
        port += 5900;
    }
    (port, unused || port < 0)
}

/// Graphics inside the image (HVM, and PV before xend 3.0.4).
fn graphics_old(root: &Sexpr, img: &str, extra: &Extra) -> Option<Element> {
    let base = format!("{img}/");
    if flag(root, &format!("{base}vnc")) {
        let (port, auto) = vnc_port(
            extra,
            root.get_int(&format!("{base}vncdisplay")),
            flag(root, &format!("{base}vncunused")),
        );
        return Some(vnc_element(
            port,
            auto,
            root.get_nonempty(&format!("{base}vnclisten")),
            root.get_nonempty(&format!("{base}keymap")),
        ));
    }
    if flag(root, &format!("{base}sdl")) {
        return Some(sdl_element(root, &base));
    }
    None
}

/// A `(device (vfb …))`; libvirt refused a vfb that names no type.
fn graphics_new(root: &Sexpr, extra: &Extra) -> Result<Option<Element>> {
    let Some(vfb) = devices_of(root, &["vfb"]).next() else {
        return Ok(None);
    };
    let kind = vfb.get_nonempty("type");
    if kind == Some("sdl") || flag(vfb, "sdl") {
        return Ok(Some(sdl_element(vfb, "")));
    }
    if kind == Some("vnc") || flag(vfb, "vnc") {
        let (port, auto) = vnc_port(extra, vfb.get_int("vncdisplay"), flag(vfb, "vncunused"));
        return Ok(Some(vnc_element(
            port,
            auto,
            vfb.get_nonempty("vnclisten"),
            vfb.get_nonempty("keymap"),
        )));
    }
    Err(bad("a (vfb) device has neither type vnc nor type sdl"))
}

fn hostdevs(root: &Sexpr) -> Result<Vec<Element>> {
    let mut out = Vec::new();
    for pci in devices_of(root, &["pci"]) {
        for dev in pci.children("dev") {
            let num = |k: &str, width: usize| -> Result<String> {
                let raw = dev
                    .get(k)
                    .ok_or_else(|| bad(format!("pci dev has no ({k})")))?;
                let hex = raw.trim_start_matches("0x").trim_start_matches("0X");
                let v = u32::from_str_radix(hex, 16)
                    .map_err(|_| bad(format!("pci {k} '{raw}' is not hex")))?;
                Ok(format!("0x{v:0width$x}"))
            };
            let mut h = el(
                "hostdev",
                &[("mode", "subsystem"), ("type", "pci"), ("managed", "no")],
            );
            let mut source = el("source", &[]);
            let (d, b, s, f) = (
                num("domain", 4)?,
                num("bus", 2)?,
                num("slot", 2)?,
                num("func", 1)?,
            );
            push(
                &mut source,
                el(
                    "address",
                    &[("domain", &d), ("bus", &b), ("slot", &s), ("function", &f)],
                ),
            );
            push(&mut h, source);
            out.push(h);
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::driver::xend::sxp;

    #[test]
    fn minimal_pv_record() {
        let s = sxp::parse(
            b"(domain (domid 7) (uuid 3f0c2a51-7d1e-4b6a-9c2e-51aa08d3e001) (vcpus 1) (name pv1) \
              (maxmem 256) (memory 128) (image (linux (kernel /boot/vmlinuz-xen) \
              (args 'root=/dev/xvda1 ro'))) (device (vbd (uname file:/img) (dev xvda) (mode w))))",
        )
        .unwrap();
        let extra = Extra {
            tty: Some("/dev/pts/3".into()),
            vnc_port: None,
        };
        let def = domain_from_sexpr(&s, &extra).unwrap();
        assert_eq!(def.name, "pv1");
        assert_eq!(def.memory_kib, 262144);
        assert_eq!(def.current_memory_kib, Some(131072));
        let xml = def.to_xml();
        assert!(
            xml.contains("<console type='pty' tty='/dev/pts/3'>"),
            "{xml}"
        );
        assert!(
            xml.contains("<cmdline>root=/dev/xvda1 ro</cmdline>"),
            "{xml}"
        );
    }

    #[test]
    fn bad_records_are_errors() {
        for text in [
            &b"(node (x 1))"[..],
            b"(domain (memory 1))",
            b"(domain (name a))",
            b"(domain (name a) (memory 1) (uuid zz))",
            b"(domain (name a) (memory 1) (device (vbd (uname /x) (dev xvda))))",
            b"(domain (name a) (memory 1) (device (vfb (vncunused 1))))",
            b"(domain (name a) (memory 1) (image (hvm (serial 'weird:x'))))",
        ] {
            let s = sxp::parse(text).unwrap();
            assert!(domain_from_sexpr(&s, &Extra::default()).is_err(), "{s}");
        }
    }

    #[test]
    fn disk_indexes() {
        assert_eq!(disk_index("hda"), Some(0));
        assert_eq!(disk_index("hdc"), Some(2));
        assert_eq!(disk_index("xvdaa"), Some(26));
        assert_eq!(disk_index("eth0"), None);
        assert_eq!(parse_rate("10240KB/s"), Some(10240));
        assert_eq!(parse_rate("8Mb/s"), Some(1024));
    }
}
