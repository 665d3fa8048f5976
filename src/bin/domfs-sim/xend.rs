//! The simulated host's xend: xend 3.x's HTTP API (`/xend/node`,
//! `/xend/domain`, the POST ops) on a unix socket and on TCP loopback,
//! answering in SXP over the one host model. Running domains are the host's
//! guests; what xend itself keeps (each domain's configuration, and the
//! managed domains that are not running) lives here, as it lived in xend.
//!
//! It must not change the host except through `Host`'s methods, and it
//! never blocks a connection for long: one thread per connection, a read
//! timeout, and xend's own 10000-byte limit on request bodies.

use crate::host::{Device, GuestSpec, Host};
use crate::xenstored::lock;
use domfs::driver::dom0stats::vbd_devid;
use domfs::driver::xend::sxp::{self, Sexpr};
use domfs::model::Uuid;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A configuration xend knows, with whether it is managed (`op=new`) and so
/// survives the domain's stop.
#[derive(Clone)]
struct Config {
    vm: Sexpr,
    managed: bool,
}

pub struct Xend {
    host: Arc<Host>,
    configs: Mutex<BTreeMap<Uuid, Config>>,
    /// Held through each request that changes domains, as xend's
    /// `XendDomain.domains_lock` was: two starts of one domain at once
    /// start it once, and the other finds it running.
    domains_lock: Mutex<()>,
}

/// What a handler answers: status and body.
type Reply = (u16, String);

fn err500(message: impl Into<String>) -> Reply {
    let e = Sexpr::node("xend.err", vec![Sexpr::atom(message.into())]);
    (500, e.to_text())
}

fn get<'a>(args: &'a [(String, String)], k: &str) -> Option<&'a str> {
    args.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
}

fn p(k: &str, v: impl Into<String>) -> Sexpr {
    Sexpr::pair(k, v)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                match b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(kv), String::new()),
        })
        .collect()
}

fn spec_of(vm: &Sexpr) -> Result<GuestSpec, String> {
    let name = vm.get_nonempty("name").ok_or("the config has no (name)")?;
    let mut text = name.to_string();
    let int = |k: &str| vm.get_int(k).filter(|v| *v > 0);
    if let Some(m) = int("memory") {
        text.push_str(&format!(",memory={m}"));
    }
    if let Some(m) = int("maxmem") {
        text.push_str(&format!(",maxmem={m}"));
    }
    let max = int("vcpus").unwrap_or(1);
    let online = match vm.get_int("vcpu_avail") {
        Some(mask) => i64::from((mask as u64).count_ones() as u16).clamp(1, max),
        None => max,
    };
    text.push_str(&format!(",vcpus={online},maxvcpus={max}"));
    let mut spec = GuestSpec::parse(&text)?;
    if let Some(u) = vm.get_nonempty("uuid") {
        spec.uuid = Uuid::parse(u)?;
    }
    spec.devices = vm
        .children("device")
        .filter_map(|d| d.items().get(1))
        .filter(|d| matches!(d.head(), Some("vbd" | "tap" | "tap2" | "vif")))
        .map(device_of)
        .collect::<Result<_, _>>()?;
    if vm.lookup("image/hvm").is_some() {
        spec.ostype = "hvm".into();
    } else {
        for (k, slot) in [
            ("kernel", &mut spec.kernel),
            ("ramdisk", &mut spec.ramdisk),
            ("args", &mut spec.cmdline),
        ] {
            *slot = vm
                .get(&format!("image/linux/{k}"))
                .unwrap_or("")
                .to_string();
        }
    }
    Ok(spec)
}

/// A disk or an interface from its SXP (`(vbd (dev xvdb) (uname file:/x)
/// (mode w))`, `(vif (mac 00:16:3e:..) (bridge xenbr0))`), as xend's
/// device controllers read them.
fn device_of(d: &Sexpr) -> Result<Device, String> {
    match d.head() {
        Some("vbd" | "tap" | "tap2") => {
            let dev = d.get_nonempty("dev").ok_or("a vbd has no (dev)")?;
            let dev = dev.strip_prefix("ioemu:").unwrap_or(dev);
            let target = dev.split(':').next().unwrap_or(dev).to_string();
            Ok(Device::Vbd {
                target,
                uname: d.get("uname").unwrap_or("").to_string(),
                mode: d.get("mode").unwrap_or("w").to_string(),
            })
        }
        Some("vif") => Ok(Device::Vif {
            // xend's randomMAC: Xen's prefix, then three random bytes.
            mac: d.get_nonempty("mac").map_or_else(
                || {
                    let r = Uuid::generate().0;
                    format!("00:16:3e:{:02x}:{:02x}:{:02x}", r[0] & 0x7f, r[1], r[2])
                },
                str::to_string,
            ),
            bridge: d.get("bridge").unwrap_or("xenbr0").to_string(),
        }),
        other => Err(format!(
            "device class {} is not supported here",
            other.unwrap_or("(none)")
        )),
    }
}

/// The SXP of a device, as `device_of` reads it back.
fn device_sexpr(d: &Device) -> Sexpr {
    match d {
        Device::Vbd {
            target,
            uname,
            mode,
        } => Sexpr::node(
            "vbd",
            vec![
                p("dev", target.clone()),
                p("uname", uname.clone()),
                p("mode", mode.clone()),
            ],
        ),
        Device::Vif { mac, bridge } => Sexpr::node(
            "vif",
            vec![p("mac", mac.clone()), p("bridge", bridge.clone())],
        ),
    }
}

/// A config for a guest the host started on its own (`--guest`).
fn config_of_spec(g: &GuestSpec) -> Sexpr {
    let image = if g.ostype == "hvm" {
        Sexpr::node("hvm", vec![p("kernel", "/usr/lib/xen/boot/hvmloader")])
    } else {
        Sexpr::node(
            "linux",
            vec![
                p("kernel", g.kernel.clone()),
                p("ramdisk", g.ramdisk.clone()),
                p("args", g.cmdline.clone()),
            ],
        )
    };
    let mut items = vec![
        p("name", g.name.clone()),
        p("uuid", g.uuid.to_string()),
        p("memory", g.memory_mib.to_string()),
        p("maxmem", g.maxmem_mib.to_string()),
        p("vcpus", g.max_vcpus.to_string()),
        p("on_poweroff", "destroy"),
        p("on_reboot", "restart"),
        p("on_crash", "destroy"),
        p("on_xend_start", "ignore"),
        Sexpr::node("image", vec![image]),
    ];
    items.extend(
        g.devices
            .iter()
            .map(|d| Sexpr::node("device", vec![device_sexpr(d)])),
    );
    Sexpr::node("vm", items)
}

/// The keys of a domain record that are xend's live view, not
/// configuration: a record sent back as a config (libvirt's autostart
/// does) is read without them.
const RECORD_ONLY_KEYS: [&str; 6] = [
    "domid",
    "status",
    "state",
    "cpu_time",
    "online_vcpus",
    "start_time",
];

/// Replaces (or adds) `(key value)` at the top of a list.
fn set_field(list: &mut Sexpr, key: &str, value: String) {
    if let Sexpr::List(items) = list {
        let new = Sexpr::pair(key, value);
        match items.iter_mut().skip(1).find(|c| c.head() == Some(key)) {
            Some(slot) => *slot = new,
            None => items.push(new),
        }
    }
}

const LIVE_KEYS: [&str; 9] = [
    "domid",
    "name",
    "uuid",
    "memory",
    "maxmem",
    "vcpus",
    "vcpu_avail",
    "status",
    "state",
];

/// The magic xend's save images start with, then a 4-byte big-endian length
/// and the config SXP; our "memory image" is the rest of the file.
const SAVE_MAGIC: &[u8] = b"LinuxGuestRecord";
const MAX_SAVE: u64 = 1 << 20;

impl Xend {
    pub fn new(host: Arc<Host>) -> Arc<Xend> {
        Arc::new(Xend {
            host,
            configs: Mutex::new(BTreeMap::new()),
            domains_lock: Mutex::new(()),
        })
    }

    /// Serves the unix socket and the TCP listener, each connection on its
    /// own thread with 10 s read and write timeouts.
    pub fn serve(self: &Arc<Xend>, unix: UnixListener, tcp: TcpListener) {
        let limit = Some(Duration::from_secs(10));
        let unix = std::iter::repeat_with(move || unix.accept().map(|(s, _)| s));
        let tcp = std::iter::repeat_with(move || tcp.accept().map(|(s, _)| s));
        self.accept(unix, move |s| {
            let _ = s.set_read_timeout(limit);
            let _ = s.set_write_timeout(limit);
        });
        self.accept(tcp, move |s| {
            let _ = s.set_read_timeout(limit);
            let _ = s.set_write_timeout(limit);
        });
    }

    /// Takes connections from `incoming` on a thread of its own.
    fn accept<S: Read + Write + Send + 'static>(
        self: &Arc<Xend>,
        incoming: impl Iterator<Item = std::io::Result<S>> + Send + 'static,
        setup: impl Fn(&S) + Send + Copy + 'static,
    ) {
        let x = self.clone();
        std::thread::spawn(move || {
            for s in incoming.flatten() {
                let x = x.clone();
                std::thread::spawn(move || {
                    setup(&s);
                    x.connection(s);
                });
            }
        });
    }

    fn connection(&self, mut s: impl Read + Write) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let (head_end, sep) = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break (p, 4);
            }
            if buf.len() > 16384 {
                return;
            }
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let request = lines.next().unwrap_or("");
        let mut parts = request.split(' ');
        let (method, target, version) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or("HTTP/1.0"),
        );
        let length: usize = lines
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        let reply = if length > 10000 {
            (413, "Request Entity Too Large".to_string())
        } else {
            let mut body = buf[head_end + sep..].to_vec();
            while body.len() < length {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => body.extend_from_slice(&chunk[..n]),
                }
            }
            body.truncate(length);
            self.handle(method, target, &String::from_utf8_lossy(&body))
        };
        let version = if version.starts_with("HTTP/1.") {
            version
        } else {
            "HTTP/1.0"
        };
        let text = format!(
            "{version} {} {}\r\nContent-Type: application/sxp\r\nContent-length: {}\r\n\
             Pragma: no-cache\r\nCache-control: no-cache\r\nExpires: -1\r\n\r\n{}",
            reply.0,
            match reply.0 {
                200 => "OK",
                201 => "Created",
                202 => "Accepted",
                404 => "Not Found",
                406 => "Not Acceptable",
                413 => "Request Entity Too Large",
                501 => "Not Implemented",
                _ => "Internal Server Error",
            },
            reply.1.len(),
            reply.1
        );
        let _ = s.write_all(text.as_bytes());
    }

    fn handle(&self, method: &str, target: &str, body: &str) -> Reply {
        use std::sync::atomic::Ordering::Relaxed;
        if target == "/domfs-sim/requests" {
            return (
                200,
                format!(
                    "xenstore {}\nxend {}\n",
                    crate::XENSTORE_REQUESTS.load(Relaxed),
                    crate::XEND_REQUESTS.load(Relaxed)
                ),
            );
        }
        crate::XEND_REQUESTS.fetch_add(1, Relaxed);
        log::debug!("xend: {method} {target}");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut args = parse_form(query);
        if method == "POST" {
            args.extend(parse_form(body));
        }
        let ops: Vec<&str> = args
            .iter()
            .filter(|(k, _)| k == "op")
            .map(|(_, v)| v.as_str())
            .collect();
        let path = path.trim_end_matches('/');
        match (method, path) {
            ("GET", "/xend/node") => (200, self.node().to_text()),
            ("GET", "/xend/domain") => {
                let state = get(&args, "state").unwrap_or("running");
                let recs: Vec<Sexpr> = self
                    .records()
                    .into_iter()
                    .filter(|r| match state {
                        "all" => true,
                        "halted" => r.get_int("domid").is_none(),
                        _ => r.get_int("domid").is_some(),
                    })
                    .collect();
                if get(&args, "detail") == Some("1") {
                    (200, Sexpr::List(recs).to_text())
                } else {
                    let names = recs
                        .iter()
                        .filter_map(|r| r.get("name").map(Sexpr::atom))
                        .collect();
                    (200, Sexpr::List(names).to_text())
                }
            }
            ("POST", "/xend/domain") => match ops.as_slice() {
                [op] => {
                    let _serial = lock(&self.domains_lock);
                    self.dir_op(op, &args)
                }
                _ => (406, "Invalid request".into()),
            },
            (_, p) if p.starts_with("/xend/domain/") => {
                let _serial = (method == "POST").then(|| lock(&self.domains_lock));
                let key = percent_decode(&p["/xend/domain/".len()..]);
                let Some(rec) = self.find(&key) else {
                    return (404, key);
                };
                match (method, ops.as_slice()) {
                    ("GET", []) => (200, rec.to_text()),
                    ("POST", [op]) => self.domain_op(&rec, op, &args),
                    _ => (406, "Invalid request".into()),
                }
            }
            _ => (404, path.to_string()),
        }
    }

    fn node(&self) -> Sexpr {
        let guests: u64 = self.host.guests().iter().map(|g| g.spec.memory_mib).sum();
        let total = 16384u64;
        let used = guests + self.host.dom0_memory_kib() / 1024;
        Sexpr::node(
            "node",
            vec![
                p("system", "Linux"),
                p("host", "domfs-sim"),
                p("release", "6.1.0-13-amd64"),
                p("version", "#1 SMP Debian"),
                p("machine", "x86_64"),
                p("nr_cpus", "8"),
                p("nr_nodes", "1"),
                p("cores_per_socket", "4"),
                p("threads_per_core", "2"),
                p("cpu_mhz", "2400"),
                p("total_memory", total.to_string()),
                p("free_memory", total.saturating_sub(used).to_string()),
                p("xen_major", "4"),
                p("xen_minor", "17"),
                p("xen_extra", ".7"),
                p("xen_caps", "xen-3.0-x86_64 hvm-3.0-x86_64"),
                p("xen_scheduler", "credit2"),
                p("xend_config_format", "4"),
            ],
        )
    }

    /// Every domain's record: dom0, the running guests, then the managed
    /// domains that are not running.
    fn records(&self) -> Vec<Sexpr> {
        let mut out = vec![self.dom0()];
        let guests = self.host.guests();
        let mut configs = lock(&self.configs);
        for g in &guests {
            let c = configs.entry(g.spec.uuid).or_insert_with(|| Config {
                vm: config_of_spec(&g.spec),
                managed: false,
            });
            out.push(record(&c.vm, Some(g)));
        }
        // A transient domain that stopped is forgotten, as xend did.
        configs.retain(|u, c| c.managed || guests.iter().any(|g| g.spec.uuid == *u));
        for (u, c) in configs.iter() {
            if !guests.iter().any(|g| g.spec.uuid == *u) {
                out.push(record(&c.vm, None));
            }
        }
        out
    }

    fn dom0(&self) -> Sexpr {
        let mib = (self.host.dom0_memory_kib() / 1024).to_string();
        Sexpr::node(
            "domain",
            vec![
                p("domid", "0"),
                p("name", "Domain-0"),
                p("uuid", "00000000-0000-0000-0000-000000000000"),
                p("memory", mib.clone()),
                p("maxmem", mib),
                p("vcpus", "8"),
                p("status", "2"),
                p("state", "r-----"),
                p("cpu_time", "12.5"),
                p("on_poweroff", "destroy"),
                p("on_reboot", "restart"),
                p("on_crash", "restart"),
            ],
        )
    }

    /// xend's lookup: by name, then id, then uuid.
    fn find(&self, key: &str) -> Option<Sexpr> {
        let recs = self.records();
        let by = |k: &str, v: &str| recs.iter().find(|r| r.get(k) == Some(v)).cloned();
        by("name", key).or_else(|| by("domid", key)).or_else(|| {
            let u = Uuid::parse(key).ok()?.to_string();
            by("uuid", &u)
        })
    }

    fn name_taken(&self, vm: &Sexpr, uuid: Uuid) -> Option<String> {
        let name = vm.get("name").unwrap_or("");
        self.records()
            .iter()
            .find(|r| {
                r.get("name") == Some(name)
                    && r.get("uuid").and_then(|u| Uuid::parse(u).ok()) != Some(uuid)
            })
            .map(|_| format!("Domain '{name}' already exists with another uuid"))
    }

    fn parse_config(arg: Option<&str>) -> Result<(Sexpr, Uuid), String> {
        let text = arg.ok_or("no config given")?;
        let vm = sxp::parse(text.as_bytes()).map_err(|e| e.to_string())?;
        let mut vm = match vm {
            Sexpr::List(items) if vm.head() == Some("vm") => Sexpr::List(items),
            // xend's XendConfig took its own records back as configs.
            Sexpr::List(items) if vm.head() == Some("domain") => {
                let mut kept = vec![Sexpr::atom("vm")];
                kept.extend(
                    items
                        .into_iter()
                        .skip(1)
                        .filter(|c| !c.head().is_some_and(|h| RECORD_ONLY_KEYS.contains(&h))),
                );
                Sexpr::List(kept)
            }
            _ => return Err("the config is not a (vm ...)".into()),
        };
        match vm.get("on_xend_start") {
            None => set_field(&mut vm, "on_xend_start", "ignore".into()),
            Some("ignore" | "start") => {}
            Some(other) => return Err(format!("on_xend_start '{other}' is not start or ignore")),
        }
        let uuid = match vm.get_nonempty("uuid") {
            Some(u) => Uuid::parse(u)?,
            None => {
                let u = Uuid::generate();
                set_field(&mut vm, "uuid", u.to_string());
                u
            }
        };
        spec_of(&vm)?;
        Ok((vm, uuid))
    }

    /// Starts a guest from a config; xend leaves it paused until the
    /// toolstack unpauses it.
    fn boot(&self, vm: &Sexpr, paused: bool) -> Result<u32, String> {
        let domid = self.host.create(spec_of(vm)?)?;
        if paused {
            self.host.set_paused(domid, true)?;
        }
        Ok(domid)
    }

    fn dir_op(&self, op: &str, args: &[(String, String)]) -> Reply {
        match op {
            "create" | "new" => {
                let (vm, uuid) = match Self::parse_config(get(args, "config")) {
                    Ok(v) => v,
                    Err(e) => return err500(e),
                };
                if let Some(e) = self.name_taken(&vm, uuid) {
                    return err500(e);
                }
                let running = self.host.guests().into_iter().find(|g| g.spec.uuid == uuid);
                if op == "new" {
                    let managed = Config { vm, managed: true };
                    lock(&self.configs).insert(uuid, managed);
                    return (200, String::new());
                }
                if running.is_some() {
                    return err500("Domain is already running");
                }
                let managed = lock(&self.configs).get(&uuid).is_some_and(|c| c.managed);
                lock(&self.configs).insert(
                    uuid,
                    Config {
                        vm: vm.clone(),
                        managed,
                    },
                );
                match self.boot(&vm, true) {
                    Ok(_) => match self.find(&uuid.to_string()) {
                        Some(r) => (201, r.to_text()),
                        None => err500("the new domain vanished"),
                    },
                    Err(e) => err500(e),
                }
            }
            "restore" => match self.restore(get(args, "file").unwrap_or("")) {
                Ok(r) => (201, r.to_text()),
                Err(e) => err500(e),
            },
            other => (501, format!("Operation not implemented: {other}")),
        }
    }

    fn restore(&self, file: &str) -> Result<Sexpr, String> {
        let f = std::fs::File::open(file).map_err(|e| format!("{file}: {e}"))?;
        let mut data = Vec::new();
        f.take(MAX_SAVE)
            .read_to_end(&mut data)
            .map_err(|e| format!("{file}: {e}"))?;
        let rest = data
            .strip_prefix(SAVE_MAGIC)
            .ok_or_else(|| format!("{file}: not a xend save image"))?;
        let len = rest
            .get(..4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| format!("{file}: truncated"))?;
        let config = rest
            .get(4..4 + len)
            .ok_or_else(|| format!("{file}: truncated"))?;
        let vm = sxp::parse(config).map_err(|e| format!("{file}: {e}"))?;
        let uuid = Uuid::parse(vm.get("uuid").unwrap_or("")).map_err(|e| format!("{file}: {e}"))?;
        if self.host.guests().iter().any(|g| g.spec.uuid == uuid) {
            return Err("Domain is already running".into());
        }
        let managed = lock(&self.configs).get(&uuid).is_some_and(|c| c.managed);
        lock(&self.configs).insert(
            uuid,
            Config {
                vm: vm.clone(),
                managed,
            },
        );
        self.boot(&vm, false)?;
        self.find(&uuid.to_string())
            .ok_or_else(|| "the restored domain vanished".into())
    }

    fn domain_op(&self, rec: &Sexpr, op: &str, args: &[(String, String)]) -> Reply {
        let domid = rec.get_int("domid").and_then(|d| u32::try_from(d).ok());
        let uuid = rec.get("uuid").and_then(|u| Uuid::parse(u).ok());
        let (Some(uuid), name) = (uuid, rec.get("name").unwrap_or("")) else {
            return err500("record without uuid");
        };
        if domid == Some(0) && op != "wait_for_devices" {
            return err500("Cannot change the state of Domain-0");
        }
        let running = |f: &dyn Fn(u32) -> Result<(), String>| -> Reply {
            match domid {
                Some(d) => match f(d) {
                    Ok(()) => (200, String::new()),
                    Err(e) => err500(e),
                },
                None => err500(format!("Domain '{name}' is not running")),
            }
        };
        let num = |k: &str| {
            get(args, k)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|v| *v > 0)
        };
        let edit = |f: &dyn Fn(&mut Sexpr)| {
            if let Some(c) = lock(&self.configs).get_mut(&uuid) {
                f(&mut c.vm);
            }
        };
        let accepted = |r: Reply| if r.0 == 200 { (202, r.1) } else { r };
        match op {
            "pause" => running(&|d| self.host.set_paused(d, true)),
            "unpause" => running(&|d| self.host.set_paused(d, false)),
            "wait_for_devices" => (200, String::new()),
            "shutdown" => {
                let reason = get(args, "reason").unwrap_or("poweroff");
                if !matches!(reason, "poweroff" | "reboot" | "halt" | "suspend") {
                    return err500(format!("bad shutdown reason '{reason}'"));
                }
                accepted(running(&|d| self.host.request_shutdown(d, reason)))
            }
            "destroy" => accepted(running(&|d| {
                self.host
                    .destroy(d)
                    .map(|_| ())
                    .ok_or_else(|| "already gone".into())
            })),
            "save" => {
                let file = get(args, "file").unwrap_or("").to_string();
                accepted(running(&|d| self.save(d, uuid, &file)))
            }
            "dump" => {
                let file = get(args, "file").unwrap_or("").to_string();
                let crash = get(args, "crash") == Some("1");
                accepted(running(&|d| self.dump(d, uuid, &file, crash)))
            }
            "device_create" => match self.device_create(uuid, domid, get(args, "config")) {
                Ok(()) => (200, String::new()),
                Err(e) => err500(e),
            },
            "device_destroy" => {
                let class = get(args, "type").unwrap_or("");
                let dev = get(args, "dev").unwrap_or("");
                match self.device_destroy(uuid, domid, class, dev) {
                    Ok(()) => (200, String::new()),
                    Err(e) => err500(e),
                }
            }
            "start" => {
                if domid.is_some() {
                    return err500("Domain is already running");
                }
                let vm = lock(&self.configs).get(&uuid).map(|c| c.vm.clone());
                match vm.map(|vm| self.boot(&vm, false)) {
                    Some(Ok(_)) => (202, String::new()),
                    Some(Err(e)) => err500(e),
                    None => err500("no configuration"),
                }
            }
            "delete" => {
                if domid.is_some() {
                    return err500("Domain is not halted.");
                }
                lock(&self.configs).remove(&uuid);
                (202, String::new())
            }
            "mem_target_set" => match num("target") {
                Some(t) => {
                    edit(&|vm| set_field(vm, "memory", t.to_string()));
                    match domid {
                        Some(d) => running(&|_| self.host.set_memory(d, Some(t), None)),
                        None => (200, String::new()),
                    }
                }
                None => err500("target must be a positive number of MiB"),
            },
            "maxmem_set" => match num("memory") {
                Some(m) => {
                    edit(&|vm| set_field(vm, "maxmem", m.to_string()));
                    match domid {
                        Some(d) => running(&|_| self.host.set_memory(d, None, Some(m))),
                        None => (200, String::new()),
                    }
                }
                None => err500("memory must be a positive number of MiB"),
            },
            "set_vcpus" => match num("vcpus").and_then(|v| u32::try_from(v).ok()) {
                Some(n) => match domid {
                    Some(d) => {
                        let r = running(&|_| self.host.set_vcpus(d, n));
                        if r.0 == 200 {
                            let mask = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
                            edit(&|vm| set_field(vm, "vcpu_avail", mask.to_string()));
                        }
                        r
                    }
                    None => {
                        edit(&|vm| set_field(vm, "vcpus", n.to_string()));
                        (200, String::new())
                    }
                },
                None => err500("vcpus must be a positive number"),
            },
            other => (501, format!("Operation not implemented: {other}")),
        }
    }

    /// `op=device_create`: the device joins the configuration and, while
    /// the domain runs, the guest (its backend and frontend keys).
    fn device_create(
        &self,
        uuid: Uuid,
        domid: Option<u32>,
        config: Option<&str>,
    ) -> Result<(), String> {
        let text = config.ok_or("no config given")?;
        let sexpr = sxp::parse(text.as_bytes()).map_err(|e| e.to_string())?;
        let dev = device_of(&sexpr)?;
        let mut configs = lock(&self.configs);
        let c = configs.get_mut(&uuid).ok_or("no configuration")?;
        let clash = config_devices(&c.vm).any(|d| match (d, &dev) {
            (Device::Vbd { target: a, .. }, Device::Vbd { target: b, .. }) => a == *b,
            (Device::Vif { mac: a, .. }, Device::Vif { mac: b, .. }) => a.eq_ignore_ascii_case(b),
            _ => false,
        });
        if clash {
            return Err(format!("Device {} is already connected", text.trim()));
        }
        if let Some(d) = domid {
            self.host.attach(d, dev.clone())?;
        }
        if let Sexpr::List(items) = &mut c.vm {
            items.push(Sexpr::node("device", vec![device_sexpr(&dev)]));
        }
        Ok(())
    }

    /// `op=device_destroy` with `rm_cfg`: `dev` names a disk by its device
    /// number or its name, an interface by its number (its place among
    /// the domain's interfaces); the device leaves the guest and the
    /// configuration.
    fn device_destroy(
        &self,
        uuid: Uuid,
        domid: Option<u32>,
        class: &str,
        dev: &str,
    ) -> Result<(), String> {
        let class = match class {
            "vbd" | "tap" | "tap2" => "vbd",
            "vif" => "vif",
            other => return Err(format!("device class '{other}' is not supported here")),
        };
        let mut configs = lock(&self.configs);
        let c = configs.get_mut(&uuid).ok_or("no configuration")?;
        let number = dev.parse::<u32>().ok();
        let found = config_devices(&c.vm)
            .filter(|d| d.class() == class)
            .enumerate()
            .find(|(i, d)| match d {
                Device::Vbd { target, .. } => {
                    target == dev || (number.is_some() && vbd_devid(target) == number)
                }
                Device::Vif { .. } => number == u32::try_from(*i).ok(),
            })
            .map(|(i, d)| (i, d.clone()));
        let Some((place, device)) = found else {
            return Err(format!("Device {dev} not connected"));
        };
        if let Some(d) = domid {
            let devid = match &device {
                Device::Vbd { target, .. } => vbd_devid(target),
                Device::Vif { .. } => self.host.guest(d).and_then(|g| {
                    g.devices
                        .iter()
                        .filter(|(_, x)| x.class() == "vif")
                        .nth(place)
                        .map(|(n, _)| *n)
                }),
            }
            .ok_or_else(|| format!("Device {dev} not connected"))?;
            self.host.detach(d, class, devid)?;
        }
        if let Sexpr::List(items) = &mut c.vm {
            let mut seen = 0;
            items.retain(|item| {
                let is = item.head() == Some("device")
                    && item
                        .items()
                        .get(1)
                        .and_then(|x| device_of(x).ok())
                        .is_some_and(|x| x.class() == class);
                if !is {
                    return true;
                }
                seen += 1;
                seen - 1 != place
            });
        }
        Ok(())
    }

    /// A core dump: the guest's configuration and a marker in place of
    /// its memory; with `crash` the guest is destroyed afterwards.
    fn dump(&self, domid: u32, uuid: Uuid, file: &str, crash: bool) -> Result<(), String> {
        if !file.starts_with('/') {
            return Err(format!("dump file '{file}' is not absolute"));
        }
        let config = lock(&self.configs)
            .get(&uuid)
            .map(|c| c.vm.to_text())
            .unwrap_or_default();
        let data = format!("(simulated core dump of domain {domid})\n{config}\n");
        std::fs::write(file, data).map_err(|e| format!("{file}: {e}"))?;
        if crash {
            self.host.destroy(domid);
        }
        Ok(())
    }

    fn save(&self, domid: u32, uuid: Uuid, file: &str) -> Result<(), String> {
        if !file.starts_with('/') {
            return Err(format!("save file '{file}' is not absolute"));
        }
        let vm = lock(&self.configs)
            .get(&uuid)
            .map(|c| c.vm.clone())
            .ok_or("no configuration")?;
        let mut vm = vm;
        if let Some(g) = self.host.guest(domid) {
            set_field(&mut vm, "memory", g.spec.memory_mib.to_string());
            set_field(&mut vm, "maxmem", g.spec.maxmem_mib.to_string());
        }
        let config = vm.to_text();
        let mut data = SAVE_MAGIC.to_vec();
        data.extend_from_slice(&(config.len() as u32).to_be_bytes());
        data.extend_from_slice(config.as_bytes());
        data.extend_from_slice(b"(simulated memory image)\n");
        std::fs::write(file, data).map_err(|e| format!("{file}: {e}"))?;
        self.host.destroy(domid);
        Ok(())
    }
}

/// The disks and interfaces of a configuration, in its order.
fn config_devices(vm: &Sexpr) -> impl Iterator<Item = Device> + '_ {
    vm.children("device")
        .filter_map(|d| d.items().get(1))
        .filter(|d| matches!(d.head(), Some("vbd" | "tap" | "tap2" | "vif")))
        .filter_map(|d| device_of(d).ok())
}

/// A domain record: the config under `domain`, with the live values.
fn record(vm: &Sexpr, guest: Option<&crate::host::Guest>) -> Sexpr {
    let mut items = vec![Sexpr::atom("domain")];
    let int = |k: &str| vm.get_int(k).unwrap_or(0);
    match guest {
        Some(g) => {
            items.push(p("domid", g.domid.to_string()));
            items.push(p("name", g.spec.name.clone()));
            items.push(p("uuid", g.spec.uuid.to_string()));
            items.push(p("memory", g.spec.memory_mib.to_string()));
            items.push(p("maxmem", g.spec.maxmem_mib.to_string()));
            items.push(p("vcpus", g.spec.max_vcpus.to_string()));
            let n = g.spec.vcpus;
            let mask = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
            items.push(p("vcpu_avail", mask.to_string()));
            items.push(p("online_vcpus", n.to_string()));
            let (status, state) = if g.paused {
                ("1", "--p---")
            } else {
                ("2", "-b----")
            };
            items.push(p("status", status));
            items.push(p("state", state));
            items.push(p("cpu_time", "1.5"));
        }
        None => {
            items.push(p("name", vm.get("name").unwrap_or("").to_string()));
            items.push(p("uuid", vm.get("uuid").unwrap_or("").to_string()));
            items.push(p("memory", int("memory").to_string()));
            items.push(p("maxmem", int("maxmem").max(int("memory")).to_string()));
            items.push(p("vcpus", int("vcpus").max(1).to_string()));
            if let Some(a) = vm.get("vcpu_avail") {
                items.push(p("vcpu_avail", a.to_string()));
            }
            items.push(p("status", "0"));
            items.push(p("cpu_time", "0.0"));
        }
    }
    for c in vm.items().iter().skip(1) {
        if !c.head().is_some_and(|h| LIVE_KEYS.contains(&h)) {
            items.push(c.clone());
        }
    }
    Sexpr::List(items)
}
