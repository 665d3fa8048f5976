//! libvirt domain XML to the `(vm …)` SXP xend's `op=create` and `op=new`
//! take, as libvirt's xend driver wrote it for xend config format 4 (Xen
//! 3.1+): HVM graphics in the image, PV graphics as a vfb, the clock as
//! `rtc_timeoffset`/`localtime`.
//!
//! Pure: a `DomainDef` in, an `Sexpr` out. Quoting is the SXP printer's
//! business, so no value here can change the structure of the request.

use super::chr::Chr;
use super::sxp::Sexpr;
use crate::error::{Error, ErrorKind, Result};
use crate::model::xml::Element;
use crate::model::DomainDef;

fn pair(k: &str, v: impl Into<String>) -> Sexpr {
    Sexpr::pair(k, v)
}

fn invalid(m: impl Into<String>) -> Error {
    Error::invalid(m)
}

fn kib_to_mib(kib: u64) -> String {
    kib.div_ceil(1024).to_string()
}

/// The clock as xend keeps it: (rtc_timeoffset, localtime).
fn clock(root: &Element) -> Result<(i64, bool)> {
    let Some(c) = root.child("clock") else {
        return Ok((0, false));
    };
    match c.attr("offset").unwrap_or("utc") {
        "utc" => Ok((0, false)),
        "localtime" => Ok((0, true)),
        "variable" => {
            let adj = c.attr("adjustment").unwrap_or("0").trim();
            let adj: i64 = adj
                .parse()
                .map_err(|_| invalid(format!("clock adjustment '{adj}' is not a number")))?;
            Ok((adj, c.attr("basis") == Some("localtime")))
        }
        other => Err(invalid(format!(
            "clock offset '{other}' is not supported by xend"
        ))),
    }
}

fn devices(root: &Element) -> impl Iterator<Item = &Element> {
    root.child("devices").into_iter().flat_map(|d| d.elements())
}

/// Converts a definition into the `(vm …)` document for xend.
pub fn domain_to_sexpr(def: &DomainDef) -> Result<Sexpr> {
    let root = def.root();
    if def.domain_type != "xen" {
        return Err(invalid(format!(
            "domain type '{}' cannot run on xend (expected 'xen')",
            def.domain_type
        )));
    }
    let hvm = def.os.os_type == "hvm";
    if !hvm && !matches!(def.os.os_type.as_str(), "linux" | "xen") {
        return Err(invalid(format!(
            "os type '{}' is not supported by xend (linux, xen or hvm)",
            def.os.os_type
        )));
    }
    let mut vm = vec![Sexpr::atom("vm"), pair("name", def.name.clone())];
    let max = def.memory_kib;
    let cur = def.current_memory_kib.unwrap_or(max).min(max);
    vm.push(pair("memory", kib_to_mib(cur)));
    vm.push(pair("maxmem", kib_to_mib(max)));
    vm.push(pair("vcpus", def.vcpus.to_string()));
    let avail = def.current_vcpus.filter(|c| *c < def.vcpus).map(|c| {
        let mask: u64 = if c >= 64 { u64::MAX } else { (1u64 << c) - 1 };
        mask.to_string()
    });
    if let Some(a) = &avail {
        vm.push(pair("vcpu_avail", a.clone()));
    }
    if let Some(u) = def.uuid {
        vm.push(pair("uuid", u.to_string()));
    }
    if let Some(d) = root.child("description") {
        vm.push(pair("description", d.text()));
    }
    if !hvm {
        match def.bootloader.as_deref() {
            Some("") => vm.push(Sexpr::node("bootloader", vec![])),
            Some(b) => vm.push(pair("bootloader", b)),
            None => {}
        }
        if let Some(a) = def.bootloader_args.as_deref().filter(|a| !a.is_empty()) {
            vm.push(pair("bootloader_args", a));
        }
    }
    for (key, action, default) in [
        ("on_poweroff", def.on_poweroff, "destroy"),
        ("on_reboot", def.on_reboot, "restart"),
        ("on_crash", def.on_crash, "destroy"),
    ] {
        vm.push(pair(
            key,
            action.map_or(default.to_string(), |a| a.to_string()),
        ));
    }

    let (rtc, localtime) = clock(root)?;
    let lt = if localtime { "1" } else { "0" };
    let graphics = devices(root).find(|d| d.name == "graphics");
    let mut image: Vec<Sexpr> = Vec::new();
    if hvm {
        image.push(Sexpr::atom("hvm"));
        let loader = def
            .os
            .loader
            .as_deref()
            .filter(|l| !l.is_empty())
            .ok_or_else(|| {
                invalid("an HVM domain needs <loader> (e.g. /usr/lib/xen/boot/hvmloader)")
            })?;
        match def.os.kernel.as_deref().filter(|k| !k.is_empty()) {
            Some(k) => {
                image.push(pair("kernel", k));
                push_opt(&mut image, "ramdisk", def.os.initrd.as_deref());
                push_opt(&mut image, "args", def.os.cmdline.as_deref());
                image.push(pair("loader", loader));
            }
            None => image.push(pair("kernel", loader)),
        }
        image.push(pair("vcpus", def.vcpus.to_string()));
        if let Some(a) = &avail {
            image.push(pair("vcpu_avail", a.clone()));
        }
        let mut boot = String::new();
        for b in &def.os.boot {
            boot.push(match b.as_str() {
                "fd" => 'a',
                "hd" => 'c',
                "cdrom" => 'd',
                "network" => 'n',
                other => return Err(invalid(format!("boot device '{other}' is unknown"))),
            });
        }
        if boot.is_empty() {
            boot.push('c');
        }
        image.push(pair("boot", boot));
        for d in devices(root).filter(|d| d.name == "disk" && d.attr("device") == Some("floppy")) {
            let t = d.child("target").and_then(|t| t.attr("dev")).unwrap_or("");
            let src = d
                .child("source")
                .and_then(|s| s.attr("file").or(s.attr("dev")));
            if let (Some(src), "fda" | "fdb") = (src, t) {
                image.push(pair(t, src));
            }
        }
        if let Some(f) = root.child("features") {
            for name in ["acpi", "apic", "pae", "hap", "viridian"] {
                if f.child(name)
                    .is_some_and(|e| e.attr("state") != Some("off"))
                {
                    image.push(pair(name, "1"));
                }
            }
        }
        image.push(pair("usb", "1"));
        for i in devices(root).filter(|d| d.name == "input" && d.attr("bus") == Some("usb")) {
            match i.attr("type") {
                Some(t @ ("mouse" | "tablet")) => image.push(pair("usbdevice", t)),
                other => {
                    return Err(invalid(format!(
                        "usb input '{}' is not supported by xend",
                        other.unwrap_or("")
                    )))
                }
            }
        }
        let parallel = devices(root).find(|d| d.name == "parallel");
        image.push(pair(
            "parallel",
            match parallel {
                Some(p) => Chr::from_element(p).to_value().map_err(invalid)?,
                None => "none".into(),
            },
        ));
        image.push(serial_sexpr(root)?);
        let sounds: Vec<&str> = devices(root)
            .filter(|d| d.name == "sound")
            .filter_map(|d| d.attr("model"))
            .collect();
        if !sounds.is_empty() {
            image.push(pair("soundhw", sounds.join(",")));
        }
        push_opt(&mut image, "device_model", emulator(root).as_deref());
        if let Some(t) = root
            .child("clock")
            .into_iter()
            .flat_map(|c| c.elements())
            .find(|t| t.name == "timer" && t.attr("name") == Some("hpet"))
        {
            let present = t.attr("present") != Some("no");
            image.push(pair("hpet", if present { "1" } else { "0" }));
        }
        if let Some(g) = graphics {
            image.extend(graphics_in_image(g)?);
        }
        image.push(pair("rtc_timeoffset", rtc.to_string()));
        image.push(pair("localtime", lt));
    } else {
        // Beside a bootloader the kernel is the bootloader's business (a
        // running domain shows the one it extracted): only args are sent.
        image.push(Sexpr::atom("linux"));
        if def.bootloader.is_none() {
            push_opt(&mut image, "kernel", def.os.kernel.as_deref());
            push_opt(&mut image, "ramdisk", def.os.initrd.as_deref());
        }
        push_opt(&mut image, "args", def.os.cmdline.as_deref());
        if def.bootloader.is_none() {
            push_opt(&mut image, "root", def.os.root.as_deref());
        }
        // PV device models (xend 3.0.4+) for the PV framebuffer.
        push_opt(&mut image, "device_model", emulator(root).as_deref());
        image.push(pair("localtime", lt));
    }
    vm.push(Sexpr::node("image", vec![Sexpr::List(image)]));
    vm.push(pair("localtime", lt));

    for d in ordered_disks(root, hvm) {
        vm.push(Sexpr::node("device", vec![disk_sexpr(d, hvm)?]));
    }
    for n in devices(root).filter(|d| d.name == "interface") {
        vm.push(Sexpr::node("device", vec![vif_sexpr(n)?]));
    }
    let pci = pci_sexpr(root)?;
    if let Some(p) = pci {
        vm.push(Sexpr::node("device", vec![p]));
    }
    if !hvm {
        if let Some(g) = graphics {
            vm.push(Sexpr::node("device", vec![Sexpr::node("vkbd", vec![])]));
            vm.push(Sexpr::node("device", vec![vfb_sexpr(g)?]));
        }
    }
    Ok(Sexpr::List(vm))
}

/// One `<disk>` or `<interface>` as the device SXP xend's
/// `op=device_create` takes (`(vbd (dev xvdb) (uname file:/x) (mode w))`).
pub fn device_to_sexpr(dev: &Element, hvm: bool) -> Result<Sexpr> {
    match dev.name.as_str() {
        "disk" => disk_sexpr(dev, hvm),
        "interface" => vif_sexpr(dev),
        other => Err(invalid(format!(
            "<{other}> is not a device xend attaches (a <disk> or an <interface>)"
        ))),
    }
}

fn push_opt(list: &mut Vec<Sexpr>, key: &str, v: Option<&str>) {
    if let Some(v) = v.filter(|v| !v.is_empty()) {
        list.push(pair(key, v));
    }
}

fn emulator(root: &Element) -> Option<String> {
    devices(root)
        .find(|d| d.name == "emulator")
        .map(Element::text)
}

/// `(serial VALUE)`, `(serial (V0 V1 …))` when a port other than 0 is used,
/// `(serial pty)` for a lone console, else `(serial none)`.
fn serial_sexpr(root: &Element) -> Result<Sexpr> {
    let mut ports: Vec<(usize, String)> = Vec::new();
    for (i, s) in devices(root).filter(|d| d.name == "serial").enumerate() {
        let port = match s.child("target").and_then(|t| t.attr("port")) {
            Some(p) => p
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|p| *p < 64)
                .ok_or_else(|| invalid(format!("serial port '{p}' is not 0..63")))?,
            None => i,
        };
        ports.push((port, Chr::from_element(s).to_value().map_err(invalid)?));
    }
    if ports.is_empty() {
        let console = devices(root).any(|d| d.name == "console");
        return Ok(pair("serial", if console { "pty" } else { "none" }));
    }
    if ports.len() == 1 && ports[0].0 == 0 {
        return Ok(pair("serial", ports[0].1.clone()));
    }
    let top = ports.iter().map(|(p, _)| *p).max().unwrap_or(0);
    let mut values = vec![Sexpr::atom("none"); top + 1];
    for (p, v) in ports {
        values[p] = Sexpr::Atom(v);
    }
    Ok(Sexpr::node("serial", vec![Sexpr::List(values)]))
}

struct Vnc {
    port: Option<i32>,
    auto: bool,
}

fn vnc_of(g: &Element) -> Result<Vnc> {
    let port = g
        .attr("port")
        .map(|p| {
            p.trim()
                .parse::<i32>()
                .map_err(|_| invalid(format!("vnc port '{p}'")))
        })
        .transpose()?;
    let auto = g.attr("autoport") == Some("yes") || port.is_none_or(|p| p < 0);
    Ok(Vnc { port, auto })
}

fn graphics_attrs(g: &Element, vnc: bool) -> Result<Vec<Sexpr>> {
    let mut out = Vec::new();
    let listen = g
        .attr("listen")
        .or_else(|| g.child("listen").and_then(|l| l.attr("address")));
    if vnc {
        let v = vnc_of(g)?;
        if v.auto {
            out.push(pair("vncunused", "1"));
        } else {
            let port = v.port.unwrap_or(5900);
            let display = if port >= 5900 { port - 5900 } else { port };
            out.push(pair("vncunused", "0"));
            out.push(pair("vncdisplay", display.to_string()));
        }
        push_opt(&mut out, "vnclisten", listen);
        push_opt(&mut out, "vncpasswd", g.attr("passwd"));
        push_opt(&mut out, "keymap", g.attr("keymap"));
    } else {
        push_opt(&mut out, "display", g.attr("display"));
        push_opt(&mut out, "xauthority", g.attr("xauth"));
    }
    Ok(out)
}

fn graphics_in_image(g: &Element) -> Result<Vec<Sexpr>> {
    match g.attr("type") {
        Some("vnc") => {
            let mut v = vec![pair("vnc", "1")];
            v.extend(graphics_attrs(g, true)?);
            Ok(v)
        }
        Some("sdl") => {
            let mut v = vec![pair("sdl", "1")];
            v.extend(graphics_attrs(g, false)?);
            Ok(v)
        }
        other => Err(invalid(format!(
            "graphics type '{}' is not supported by xend (vnc, sdl)",
            other.unwrap_or("")
        ))),
    }
}

fn vfb_sexpr(g: &Element) -> Result<Sexpr> {
    let t = g.attr("type").unwrap_or("");
    if t != "vnc" && t != "sdl" {
        return Err(invalid(format!(
            "graphics type '{t}' is not supported by xend (vnc, sdl)"
        )));
    }
    let mut items = vec![pair("type", t)];
    items.extend(graphics_attrs(g, t == "vnc")?);
    Ok(Sexpr::node("vfb", items))
}

/// The disks in libvirt's order: each disk goes before the first disk on
/// the same bus with a higher index, else after the last one on its bus.
fn ordered_disks(root: &Element, hvm: bool) -> Vec<&Element> {
    let mut out: Vec<(String, Option<u32>, &Element)> = Vec::new();
    for d in devices(root).filter(|d| d.name == "disk") {
        if hvm && d.attr("device") == Some("floppy") {
            continue;
        }
        let target = d.child("target");
        let dev = target.and_then(|t| t.attr("dev")).unwrap_or("");
        let dev = dev.strip_prefix("ioemu:").unwrap_or(dev);
        let bus = target
            .and_then(|t| t.attr("bus"))
            .map(str::to_string)
            .unwrap_or_else(|| super::to_xml::bus_of(dev, hvm).to_string());
        let idx = super::to_xml::disk_index(dev);
        let mut at: Option<usize> = None;
        for (i, (b, x, _)) in out.iter().enumerate().rev() {
            if *b != bus {
                continue;
            }
            if x > &idx {
                at = Some(i);
            } else if at.is_none() {
                at = Some(i + 1);
            }
        }
        let at = at.unwrap_or(out.len());
        out.insert(at, (bus, idx, d));
    }
    out.into_iter().map(|(_, _, d)| d).collect()
}

fn disk_sexpr(d: &Element, hvm: bool) -> Result<Sexpr> {
    let device = d.attr("device").unwrap_or("disk");
    let target = d
        .child("target")
        .and_then(|t| t.attr("dev"))
        .ok_or_else(|| invalid("a <disk> has no <target dev=...>"))?;
    let target = target.strip_prefix("ioemu:").unwrap_or(target);
    let cdrom = device == "cdrom";
    let dev = if hvm {
        format!("{target}:{}", if cdrom { "cdrom" } else { "disk" })
    } else if cdrom {
        format!("{target}:cdrom")
    } else {
        target.to_string()
    };
    let source = d
        .child("source")
        .and_then(|s| s.attr("file").or(s.attr("dev")))
        .filter(|s| !s.is_empty());
    let driver = d.child("driver");
    let drv_name = driver.and_then(|e| e.attr("name"));
    let mut kind = "vbd";
    let uname = match (source, drv_name) {
        (None, _) => None,
        (Some(src), Some(n @ ("tap" | "tap2"))) => {
            kind = n;
            let fmt = match driver.and_then(|e| e.attr("type")) {
                None | Some("raw") => "aio",
                Some(f) => f,
            };
            Some(format!("{n}:{fmt}:{src}"))
        }
        (Some(src), Some(n)) => Some(format!("{n}:{src}")),
        (Some(src), None) => {
            let prefix = match d.attr("type").unwrap_or("file") {
                "block" => "phy",
                "file" => "file",
                other => {
                    return Err(invalid(format!(
                        "disk type '{other}' is not supported by xend"
                    )))
                }
            };
            Some(format!("{prefix}:{src}"))
        }
    };
    let mode = if cdrom || d.child("readonly").is_some() {
        "r"
    } else if d.child("shareable").is_some() {
        "w!"
    } else {
        "w"
    };
    let mut items = vec![pair("dev", dev)];
    if let Some(u) = uname {
        items.push(pair("uname", u));
    }
    items.push(pair("mode", mode));
    Ok(Sexpr::node(kind, items))
}

fn vif_sexpr(n: &Element) -> Result<Sexpr> {
    let kind = n.attr("type").unwrap_or("user");
    let attr = |child: &str, a: &str| n.child(child).and_then(|c| c.attr(a));
    let mut items = Vec::new();
    push_opt(&mut items, "mac", attr("mac", "address"));
    if let Some(avg) = n
        .child("bandwidth")
        .and_then(|b| b.child("outbound"))
        .and_then(|o| o.attr("average"))
    {
        items.push(pair("rate", format!("{}KB/s", avg.trim())));
    }
    let script = attr("script", "path");
    match kind {
        "bridge" => {
            let bridge = attr("source", "bridge")
                .ok_or_else(|| invalid("a bridge <interface> has no <source bridge=...>"))?;
            items.push(pair("bridge", bridge));
            push_opt(&mut items, "script", script);
        }
        "ethernet" => push_opt(&mut items, "script", script),
        other => {
            return Err(Error::new(
                ErrorKind::NotSupported,
                format!(
                "interface type '{other}' is not supported by the xend driver (bridge, ethernet)"
            ),
            ))
        }
    }
    push_opt(&mut items, "ip", attr("ip", "address"));
    if let Some(t) = attr("target", "dev").filter(|t| !t.starts_with("vif")) {
        items.push(pair("vifname", t));
    }
    match attr("model", "type") {
        Some("netfront") => items.push(pair("type", "netfront")),
        Some(m) => items.push(pair("model", m)),
        None => {}
    }
    Ok(Sexpr::node("vif", items))
}

fn pci_sexpr(root: &Element) -> Result<Option<Sexpr>> {
    let mut devs = Vec::new();
    for h in devices(root).filter(|d| d.name == "hostdev") {
        if h.attr("type") != Some("pci") || h.attr("mode").unwrap_or("subsystem") != "subsystem" {
            return Err(invalid(
                "only PCI hostdevs in subsystem mode are supported by xend",
            ));
        }
        if h.attr("managed") == Some("yes") {
            return Err(invalid("managed PCI hostdevs are not supported by xend"));
        }
        let a = h
            .child("source")
            .and_then(|s| s.child("address"))
            .ok_or_else(|| invalid("a <hostdev> has no <source><address/></source>"))?;
        let num = |k: &str, width: usize| -> Result<Sexpr> {
            let raw = a.attr(k).unwrap_or("0");
            let hex = raw.trim().trim_start_matches("0x");
            let v = u32::from_str_radix(hex, 16)
                .map_err(|_| invalid(format!("hostdev {k} '{raw}' is not hex")))?;
            let key = if k == "function" { "func" } else { k };
            Ok(pair(key, format!("0x{v:0width$x}")))
        };
        devs.push(Sexpr::node(
            "dev",
            vec![
                num("domain", 4)?,
                num("bus", 2)?,
                num("slot", 2)?,
                num("function", 1)?,
            ],
        ));
    }
    Ok((!devs.is_empty()).then(|| Sexpr::node("pci", devs)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pv_example() {
        let def = DomainDef::parse(
            "<domain type='xen'><name>pv1</name><uuid>3f0c2a51-7d1e-4b6a-9c2e-51aa08d3e001</uuid>\
             <memory>262144</memory><currentMemory>131072</currentMemory><vcpu>1</vcpu>\
             <os><type>linux</type><kernel>/boot/vmlinuz-xen</kernel><cmdline>root=/dev/xvda1 ro</cmdline></os>\
             <devices><disk type='file' device='disk'><source file='/img (1).raw'/><target dev='xvda'/></disk>\
             <interface type='bridge'><source bridge='xenbr0'/><mac address='00:16:3e:00:00:01'/></interface>\
             </devices></domain>",
        )
        .unwrap();
        let s = domain_to_sexpr(&def).unwrap();
        assert_eq!(s.get("memory"), Some("128"));
        assert_eq!(s.get("maxmem"), Some("256"));
        assert_eq!(s.get("image/linux/args"), Some("root=/dev/xvda1 ro"));
        let text = s.to_text();
        assert!(text.contains("(uname 'file:/img (1).raw')"), "{text}");
        assert!(text.contains("(bridge xenbr0)"), "{text}");
    }

    #[test]
    fn refusals() {
        let base =
            "<domain type='xen'><name>a</name><memory>1024</memory><os><type>hvm</type>X</os>\
                    <devices>Y</devices></domain>";
        for (x, y) in [
            ("", ""),
            (
                "<loader>/l</loader>",
                "<interface type='network'><source network='default'/></interface>",
            ),
            ("<loader>/l</loader>", "<graphics type='spice'/>"),
            (
                "<loader>/l</loader>",
                "<hostdev mode='subsystem' type='pci' managed='yes'/>",
            ),
            (
                "<loader>/l</loader>",
                "<disk type='file'><source file='/x'/></disk>",
            ),
        ] {
            let def = DomainDef::parse(&base.replace('X', x).replace('Y', y)).unwrap();
            assert!(domain_to_sexpr(&def).is_err(), "{x} {y}");
        }
        let kvm =
            DomainDef::parse(&base.replace("'xen'", "'kvm'").replace(['X', 'Y'], "")).unwrap();
        assert!(domain_to_sexpr(&kvm).is_err());
    }
}
