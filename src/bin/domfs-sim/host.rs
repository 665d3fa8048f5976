//! The simulated Xen host: dom0 and its guests, and what happens to them.
//! It writes the xenstore tree as Xen 4.17's toolstack (libxl) does for dom0
//! and PV guests, plays each guest's kernel (acknowledging `control/shutdown`,
//! announcing features), and destroys or restarts a guest as `on_poweroff`
//! and `on_reboot` would.
//!
//! This is the one host model of the simulator: every protocol front (the
//! xenstore server now, the xend API later) reads and changes the host
//! through it. It must not speak any protocol itself.

use crate::store::{Caller, Sink, Store, INTRODUCE, RELEASE};
use crate::xenstored::{self, lock};
use domfs::driver::dom0stats::vbd_devid;
use domfs::driver::xenstore::wire::{Access, Perm};
use domfs::model::Uuid;
use std::collections::BTreeMap;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What a guest is built from: a host file line or a `--guest` flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestSpec {
    pub name: String,
    pub uuid: Uuid,
    pub memory_mib: u64,
    pub maxmem_mib: u64,
    pub vcpus: u32,
    pub max_vcpus: u32,
    /// `linux` (PV) or `hvm`.
    pub ostype: String,
    pub kernel: String,
    pub ramdisk: String,
    pub cmdline: String,
    /// The devices it boots with, in its configuration's order.
    pub devices: Vec<Device>,
}

/// A guest's virtual device as the toolstack configures it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Device {
    /// A disk: the name the guest sees (`xvda`), what backs it in dom0
    /// (`file:/srv/a.img`), and the mode (`w`, `r`).
    Vbd {
        target: String,
        uname: String,
        mode: String,
    },
    /// A network interface on a bridge.
    Vif { mac: String, bridge: String },
}

impl Device {
    /// The xenstore device class: `vbd` or `vif`.
    pub fn class(&self) -> &'static str {
        match self {
            Device::Vbd { .. } => "vbd",
            Device::Vif { .. } => "vif",
        }
    }
}

impl GuestSpec {
    /// `NAME[,memory=MiB][,maxmem=MiB][,vcpus=N][,maxvcpus=N][,uuid=U]
    /// [,type=pv|hvm][,kernel=PATH][,ramdisk=PATH][,cmdline=TEXT]`.
    pub fn parse(text: &str) -> Result<GuestSpec, String> {
        let mut parts = text.trim().split(',');
        let name = parts.next().unwrap_or("").trim().to_string();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+' | ':'))
        {
            // xend's own rule (XendDomainInfo's check_name) less '/', which
            // no file name can hold.
            return Err(format!(
                "guest {text:?}: a name of letters, digits, '-', '_', '.', '+' or ':' comes first"
            ));
        }
        let mut g = GuestSpec {
            uuid: Uuid::generate(),
            memory_mib: 256,
            maxmem_mib: 0,
            vcpus: 1,
            max_vcpus: 0,
            ostype: "linux".into(),
            kernel: "/boot/vmlinuz-6.1.0-13-amd64".into(),
            ramdisk: "/boot/initrd.img-6.1.0-13-amd64".into(),
            cmdline: "root=/dev/xvda1 ro console=hvc0".into(),
            devices: Vec::new(),
            name,
        };
        for kv in parts {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("guest {text:?}: {kv:?} is not key=value"))?;
            let num = |v: &str| {
                v.trim()
                    .parse::<u64>()
                    .map_err(|_| format!("guest {text:?}: {k}={v} is not a number"))
            };
            match k.trim() {
                "memory" => g.memory_mib = num(v)?,
                "maxmem" => g.maxmem_mib = num(v)?,
                "vcpus" => g.vcpus = num(v)? as u32,
                "maxvcpus" => g.max_vcpus = num(v)? as u32,
                "uuid" => g.uuid = Uuid::parse(v).map_err(|e| format!("guest {text:?}: {e}"))?,
                "type" => {
                    g.ostype = match v.trim() {
                        "pv" => "linux".into(),
                        "hvm" => "hvm".into(),
                        o => return Err(format!("guest {text:?}: type {o:?} is not pv or hvm")),
                    }
                }
                "kernel" => g.kernel = v.into(),
                "ramdisk" => g.ramdisk = v.into(),
                "cmdline" => g.cmdline = v.into(),
                o => return Err(format!("guest {text:?}: unknown key {o:?}")),
            }
        }
        if g.memory_mib == 0 || g.vcpus == 0 || g.vcpus > 128 {
            return Err(format!(
                "guest {text:?}: memory and vcpus (1..128) must be positive"
            ));
        }
        g.maxmem_mib = g.maxmem_mib.max(g.memory_mib);
        g.max_vcpus = g.max_vcpus.max(g.vcpus);
        Ok(g)
    }
}

/// A running guest.
#[derive(Debug, Clone)]
pub struct Guest {
    pub domid: u32,
    pub spec: GuestSpec,
    stop: Arc<AtomicBool>,
    /// Paused by the toolstack (the hypervisor's paused flag).
    pub paused: bool,
    /// Its devices as plugged now, each with its xenstore device number.
    pub devices: Vec<(u32, Device)>,
}

pub struct Host {
    pub store: Arc<Mutex<Store>>,
    dir: PathBuf,
    guests: Mutex<BTreeMap<u32, Guest>>,
    next_domid: Mutex<u32>,
    shutdown_delay: Duration,
    /// Where the host's own watches (on guests' `control/shutdown`) report.
    events: std::sync::mpsc::Sender<(String, String)>,
}

/// The toolstack's own identity in the store: dom0, a connection of its own.
const TOOLSTACK: Caller = Caller { conn: 0, domid: 0 };

fn guest_caller(domid: u32) -> Caller {
    Caller {
        conn: u64::MAX - u64::from(domid),
        domid,
    }
}

fn p(s: &[(Access, u32)]) -> Vec<Perm> {
    s.iter().map(|(a, d)| Perm::new(*a, *d)).collect()
}

impl Host {
    /// Builds dom0's tree and serves the dom0 socket under `dir/xenstored`.
    pub fn start(
        store: Arc<Mutex<Store>>,
        dir: PathBuf,
        shutdown_delay: Duration,
        dom0_mib: u64,
    ) -> std::io::Result<Arc<Host>> {
        let (tx, rx) = channel();
        let host = Arc::new(Host {
            store,
            dir,
            guests: Mutex::new(BTreeMap::new()),
            next_domid: Mutex::new(1),
            shutdown_delay,
            events: tx,
        });
        host.write_dom0(dom0_mib);
        let sock = host.dir.join("xenstored/socket");
        let l = listen(&sock, 0o600)?;
        xenstored::serve(l, host.store.clone(), 0, Arc::new(AtomicBool::new(false)));
        let h = host.clone();
        std::thread::spawn(move || {
            for (path, token) in rx {
                h.on_event(&path, &token);
            }
        });
        Ok(host)
    }

    fn write_dom0(&self, mib: u64) {
        let mut s = lock(&self.store);
        let n0 = p(&[(Access::None, 0)]);
        for dir in [
            "/tool",
            "/tool/xenstored",
            "/local",
            "/local/domain",
            "/vm",
            "/libxl",
        ] {
            let _ = s.mkdir(TOOLSTACK, 0, dir);
            let _ = s.set_perms(TOOLSTACK, 0, dir, &n0);
        }
        for (k, v) in [
            ("/local/domain/0/domid", "0"),
            ("/local/domain/0/name", "Domain-0"),
            ("/local/pool/0/name", "Pool-0"),
        ] {
            let _ = s.write(TOOLSTACK, 0, k, v.as_bytes());
        }
        // libxl writes dom0's memory keys the first time it reads or sets
        // dom0's target; 0 MiB stands for a fresh boot, without them.
        if mib > 0 {
            let kib = (mib * 1024).to_string();
            for k in ["target", "static-max"] {
                let _ = s.write(
                    TOOLSTACK,
                    0,
                    &format!("/local/domain/0/memory/{k}"),
                    kib.as_bytes(),
                );
            }
        }
    }

    pub fn guests(&self) -> Vec<Guest> {
        lock(&self.guests).values().cloned().collect()
    }

    /// Creates and boots a guest as `xl create` does: the tree in one
    /// transaction, then INTRODUCE (`@introduceDomain`), then the guest's
    /// own socket and its kernel's first writes.
    pub fn create(&self, spec: GuestSpec) -> Result<u32, String> {
        if lock(&self.guests)
            .values()
            .any(|g| g.spec.name == spec.name || g.spec.uuid == spec.uuid)
        {
            return Err(format!(
                "a guest named {} or with uuid {} exists",
                spec.name, spec.uuid
            ));
        }
        let domid = {
            let mut n = lock(&self.next_domid);
            let d = *n;
            *n += 1;
            d
        };
        self.write_guest(domid, &spec)
            .map_err(|e| format!("writing guest {}: {e}", spec.name))?;
        let mut devices = Vec::new();
        for d in &spec.devices {
            let devid = next_devid(&devices, d)
                .and_then(|n| self.plug(domid, n, d).map(|()| n))
                .map_err(|e| format!("guest {}: {e}", spec.name));
            match devid {
                Ok(n) => devices.push((n, d.clone())),
                Err(e) => {
                    self.forget_keys(domid, spec.uuid);
                    return Err(e);
                }
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let sock = self.dir.join(format!("xenstored/domain-{domid}"));
        let l = listen(&sock, 0o600).map_err(|e| format!("{}: {e}", sock.display()))?;
        xenstored::serve(l, self.store.clone(), domid, stop.clone());
        {
            let mut s = lock(&self.store);
            s.fire_special(INTRODUCE);
            let base = format!("/local/domain/{domid}");
            let _ = s.watch(
                TOOLSTACK,
                &format!("{base}/control/shutdown"),
                &format!("shutdown:{domid}"),
                Sink::Host(self.events.clone()),
            );
            // The guest kernel announces what it reacts to.
            let g = guest_caller(domid);
            let _ = s.write(g, 0, "control/feature-poweroff", b"1");
            let _ = s.write(g, 0, "control/feature-reboot", b"1");
            let _ = s.write(g, 0, "control/feature-suspend", b"1");
        }
        log::info!("guest {} started as domain {domid}", spec.name);
        lock(&self.guests).insert(
            domid,
            Guest {
                domid,
                spec,
                stop,
                paused: false,
                devices,
            },
        );
        Ok(domid)
    }

    /// Writes a device's backend and frontend keys as libxl does when it
    /// adds one (`libxl__device_generic_add`), already connected (state 4).
    fn plug(&self, domid: u32, devid: u32, d: &Device) -> Result<(), String> {
        let class = d.class();
        let back = format!("/local/domain/0/backend/{class}/{domid}/{devid}");
        let front = format!("/local/domain/{domid}/device/{class}/{devid}");
        let mut back_keys: Vec<(&str, String)> = vec![
            ("frontend", front.clone()),
            ("frontend-id", domid.to_string()),
            ("online", "1".into()),
            ("state", "4".into()),
        ];
        let mut front_keys: Vec<(&str, String)> = vec![
            ("backend", back.clone()),
            ("backend-id", "0".into()),
            ("state", "4".into()),
        ];
        match d {
            Device::Vbd {
                target,
                uname,
                mode,
            } => {
                let (kind, params) = uname.split_once(':').unwrap_or(("phy", uname));
                back_keys.extend([
                    ("dev", target.clone()),
                    ("params", params.to_string()),
                    ("type", kind.to_string()),
                    ("mode", mode.clone()),
                    ("device-type", "disk".into()),
                ]);
                front_keys.extend([
                    ("virtual-device", devid.to_string()),
                    ("device-type", "disk".into()),
                ]);
            }
            Device::Vif { mac, bridge } => {
                back_keys.extend([
                    ("mac", mac.clone()),
                    ("bridge", bridge.clone()),
                    ("handle", devid.to_string()),
                    ("type", "vif".into()),
                ]);
                front_keys.extend([("mac", mac.clone()), ("handle", devid.to_string())]);
            }
        }
        let mut s = lock(&self.store);
        let t = s.transaction_start(TOOLSTACK).map_err(|e| e.to_string())?;
        let back_perms = p(&[(Access::None, 0), (Access::Read, domid)]);
        let front_perms = p(&[(Access::None, domid), (Access::Read, 0)]);
        let mut r = s
            .write(TOOLSTACK, t, &back, b"")
            .and_then(|()| s.set_perms(TOOLSTACK, t, &back, &back_perms))
            .and_then(|()| s.write(TOOLSTACK, t, &front, b""))
            .and_then(|()| s.set_perms(TOOLSTACK, t, &front, &front_perms));
        for (k, v) in &back_keys {
            r = r.and_then(|()| s.write(TOOLSTACK, t, &format!("{back}/{k}"), v.as_bytes()));
        }
        for (k, v) in &front_keys {
            r = r.and_then(|()| s.write(TOOLSTACK, t, &format!("{front}/{k}"), v.as_bytes()));
        }
        if let Err(e) = r {
            let _ = s.transaction_end(TOOLSTACK, t, false);
            return Err(e.to_string());
        }
        s.transaction_end(TOOLSTACK, t, true)
            .map_err(|e| e.to_string())
    }

    /// Hot-plugs a device into a running guest; returns its device number.
    pub fn attach(&self, domid: u32, d: Device) -> Result<u32, String> {
        let mut guests = lock(&self.guests);
        let g = guests
            .get_mut(&domid)
            .ok_or_else(|| format!("no domain {domid}"))?;
        let devid = next_devid(&g.devices, &d)?;
        self.plug(domid, devid, &d)?;
        // A reboot keeps it, as a device in the configuration.
        g.spec.devices.push(d.clone());
        g.devices.push((devid, d));
        Ok(devid)
    }

    /// Unplugs device `devid` of `class` from a running guest: its keys go.
    pub fn detach(&self, domid: u32, class: &str, devid: u32) -> Result<(), String> {
        let mut guests = lock(&self.guests);
        let g = guests
            .get_mut(&domid)
            .ok_or_else(|| format!("no domain {domid}"))?;
        let at = g
            .devices
            .iter()
            .position(|(n, d)| *n == devid && d.class() == class)
            .ok_or_else(|| format!("Device {devid} ({class}) not connected"))?;
        let (_, gone) = g.devices.remove(at);
        if let Some(i) = g.spec.devices.iter().position(|d| *d == gone) {
            g.spec.devices.remove(i);
        }
        let mut s = lock(&self.store);
        for path in [
            format!("/local/domain/0/backend/{class}/{domid}/{devid}"),
            format!("/local/domain/{domid}/device/{class}/{devid}"),
        ] {
            s.rm(TOOLSTACK, 0, &path).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn write_guest(&self, n: u32, g: &GuestSpec) -> Result<(), String> {
        let mut s = lock(&self.store);
        let t = s.transaction_start(TOOLSTACK).map_err(|e| e.to_string())?;
        let dom = format!("/local/domain/{n}");
        let vm = format!("/vm/{}", g.uuid);
        let ro = p(&[(Access::None, 0), (Access::Read, n)]);
        let rw = p(&[(Access::None, n)]);
        // Seen on a real 4.17 host: the guest owns it and dom0 may read it.
        let console_id = p(&[(Access::None, n), (Access::Read, 0)]);
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let mut nodes: Vec<(String, String, Option<&Vec<Perm>>)> = vec![
            (dom.clone(), String::new(), Some(&ro)),
            (format!("{dom}/vm"), vm.clone(), None),
            (format!("{dom}/name"), g.name.clone(), None),
            (format!("{dom}/domid"), n.to_string(), None),
            (format!("{dom}/memory"), String::new(), Some(&ro)),
            (
                format!("{dom}/memory/static-max"),
                (g.maxmem_mib * 1024).to_string(),
                None,
            ),
            (
                format!("{dom}/memory/target"),
                (g.memory_mib * 1024).to_string(),
                None,
            ),
            (format!("{dom}/memory/videoram"), "0".into(), None),
            (format!("{dom}/cpu"), String::new(), Some(&ro)),
            (format!("{dom}/store/port"), "1".into(), None),
            (
                format!("{dom}/store/ring-ref"),
                (0xfeffc - n).to_string(),
                None,
            ),
            (format!("{dom}/control"), String::new(), Some(&ro)),
            (format!("{dom}/device"), String::new(), Some(&ro)),
            (
                format!("{dom}/device/suspend/event-channel"),
                String::new(),
                Some(&rw),
            ),
            (
                format!("{dom}/console/backend"),
                format!("/local/domain/0/backend/console/{n}/0"),
                None,
            ),
            (
                format!("{dom}/console/backend-id"),
                "0".into(),
                Some(&console_id),
            ),
            (format!("{dom}/console/limit"), "1048576".into(), None),
            (format!("{dom}/console/type"), "xenconsoled".into(), None),
            (format!("{dom}/console/output"), "pty".into(), None),
            (format!("{dom}/console/tty"), format!("/dev/pts/{n}"), None),
            (vm.clone(), String::new(), Some(&ro)),
            (format!("{vm}/uuid"), g.uuid.to_string(), None),
            (format!("{vm}/name"), g.name.clone(), None),
            (
                format!("{vm}/start_time"),
                format!("{}.{:02}", start.as_secs(), start.subsec_millis() / 10),
                None,
            ),
            (format!("{vm}/image/ostype"), g.ostype.clone(), None),
            (format!("/libxl/{n}"), String::new(), Some(&ro)),
            (
                format!("/libxl/{n}/type"),
                if g.ostype == "hvm" { "hvm" } else { "pv" }.into(),
                None,
            ),
        ];
        if g.ostype != "hvm" {
            for (k, v) in [
                ("kernel", &g.kernel),
                ("ramdisk", &g.ramdisk),
                ("cmdline", &g.cmdline),
            ] {
                nodes.push((format!("{vm}/image/{k}"), v.clone(), None));
            }
        }
        for i in 0..g.max_vcpus {
            let state = if i < g.vcpus { "online" } else { "offline" };
            nodes.push((format!("{dom}/cpu/{i}/availability"), state.into(), None));
        }
        for k in [
            "shutdown",
            "feature-poweroff",
            "feature-reboot",
            "feature-suspend",
            "sysrq",
        ] {
            nodes.push((format!("{dom}/control/{k}"), String::new(), Some(&rw)));
        }
        for k in [
            "platform-feature-multiprocessor-suspend",
            "platform-feature-xs_reset_watches",
        ] {
            nodes.push((format!("{dom}/control/{k}"), "1".into(), None));
        }
        for k in ["data", "drivers", "feature", "attr", "error"] {
            nodes.push((format!("{dom}/{k}"), String::new(), Some(&rw)));
        }
        let libxl_n0 = p(&[(Access::None, 0)]);
        let mut r = Ok(());
        for (path, value, perms) in &nodes {
            r = r.and_then(|()| s.write(TOOLSTACK, t, path, value.as_bytes()));
            if let Some(perms) = perms {
                let perms = if path.starts_with("/libxl/") {
                    &libxl_n0
                } else {
                    perms
                };
                r = r.and_then(|()| s.set_perms(TOOLSTACK, t, path, perms));
            }
        }
        if let Err(e) = r {
            let _ = s.transaction_end(TOOLSTACK, t, false);
            return Err(e.to_string());
        }
        s.transaction_end(TOOLSTACK, t, true)
            .map_err(|e| e.to_string())
    }

    /// A guest's `control/shutdown` changed: the guest kernel reads it in a
    /// transaction and, for a command it knows, writes an empty string back
    /// and acts after a short while.
    fn on_event(self: &Arc<Host>, path: &str, token: &str) {
        let Some(domid) = token
            .strip_prefix("shutdown:")
            .and_then(|d| d.parse::<u32>().ok())
        else {
            return;
        };
        let g = guest_caller(domid);
        let cmd = {
            let mut s = lock(&self.store);
            let Ok(t) = s.transaction_start(g) else {
                return;
            };
            let value = s.read(g, t, path).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&value).into_owned();
            let known = matches!(cmd.as_str(), "poweroff" | "halt" | "reboot");
            if known {
                let _ = s.write(g, t, path, b"");
            }
            if s.transaction_end(g, t, known).is_err() || !known {
                return;
            }
            cmd
        };
        log::info!("domain {domid}: guest received {cmd}");
        let host = self.clone();
        let delay = self.shutdown_delay;
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            let spec = host.destroy(domid);
            if let (Some(spec), "reboot") = (spec, cmd.as_str()) {
                if let Err(e) = host.create(spec) {
                    log::warn!("restart after reboot failed: {e}");
                }
            }
        });
    }

    /// Destroys a guest as libxl does after it stopped: `@releaseDomain` for
    /// the shutdown, its keys removed, `@releaseDomain` again for the
    /// destruction. Returns what it was built from.
    pub fn destroy(&self, domid: u32) -> Option<GuestSpec> {
        let guest = lock(&self.guests).remove(&domid)?;
        guest.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::fs::remove_file(self.dir.join(format!("xenstored/domain-{domid}")));
        let mut s = lock(&self.store);
        s.fire_special(RELEASE);
        let _ = s.unwatch(
            TOOLSTACK,
            &format!("/local/domain/{domid}/control/shutdown"),
            &format!("shutdown:{domid}"),
        );
        drop(s);
        self.forget_keys(domid, guest.spec.uuid);
        let mut s = lock(&self.store);
        s.fire_special(RELEASE);
        log::info!("guest {} (domain {domid}) stopped", guest.spec.name);
        Some(guest.spec)
    }
}

impl Host {
    /// Removes a domain's keys as libxl does after it is gone, its
    /// devices' backends in dom0 among them.
    fn forget_keys(&self, domid: u32, uuid: Uuid) {
        let mut s = lock(&self.store);
        for path in [
            format!("/vm/{uuid}"),
            format!("/local/domain/{domid}"),
            format!("/libxl/{domid}"),
            format!("/local/domain/0/backend/vbd/{domid}"),
            format!("/local/domain/0/backend/vif/{domid}"),
        ] {
            let _ = s.rm(TOOLSTACK, 0, &path);
        }
    }
}

/// The device number a new device gets: a disk's is fixed by its name
/// (Xen's virtual device numbering), an interface takes the lowest free.
fn next_devid(plugged: &[(u32, Device)], d: &Device) -> Result<u32, String> {
    let taken = |n: u32| {
        plugged
            .iter()
            .any(|(m, p)| *m == n && p.class() == d.class())
    };
    match d {
        Device::Vbd { target, .. } => {
            let n = vbd_devid(target)
                .ok_or_else(|| format!("'{target}' is not a disk name Xen numbers"))?;
            if taken(n) {
                return Err(format!("Device {target} is already connected"));
            }
            Ok(n)
        }
        Device::Vif { .. } => (0..=u32::from(u16::MAX))
            .find(|n| !taken(*n))
            .ok_or_else(|| "no free interface number".to_string()),
    }
}

/// What a toolstack front (the xend API) asks of running guests. Each
/// change lands where Xen's toolstack puts it: the hypervisor's paused flag
/// here, memory and vCPUs in the guest's xenstore keys.
impl Host {
    pub fn guest(&self, domid: u32) -> Option<Guest> {
        lock(&self.guests).get(&domid).cloned()
    }

    pub fn set_paused(&self, domid: u32, paused: bool) -> Result<(), String> {
        let mut guests = lock(&self.guests);
        let g = guests
            .get_mut(&domid)
            .ok_or_else(|| format!("no domain {domid}"))?;
        g.paused = paused;
        Ok(())
    }

    /// `control/shutdown` written as the toolstack does; the guest acts on it.
    pub fn request_shutdown(&self, domid: u32, reason: &str) -> Result<(), String> {
        self.guest(domid)
            .ok_or_else(|| format!("no domain {domid}"))?;
        let path = format!("/local/domain/{domid}/control/shutdown");
        lock(&self.store)
            .write(TOOLSTACK, 0, &path, reason.as_bytes())
            .map_err(|e| e.to_string())
    }

    /// Balloon target (`memory/target`) and, when given, `memory/static-max`.
    pub fn set_memory(
        &self,
        domid: u32,
        target_mib: Option<u64>,
        max_mib: Option<u64>,
    ) -> Result<(), String> {
        let mut guests = lock(&self.guests);
        let g = guests
            .get_mut(&domid)
            .ok_or_else(|| format!("no domain {domid}"))?;
        let mut s = lock(&self.store);
        let base = format!("/local/domain/{domid}/memory");
        if let Some(m) = max_mib {
            s.write(
                TOOLSTACK,
                0,
                &format!("{base}/static-max"),
                (m * 1024).to_string().as_bytes(),
            )
            .map_err(|e| e.to_string())?;
            g.spec.maxmem_mib = m;
        }
        if let Some(t) = target_mib {
            s.write(
                TOOLSTACK,
                0,
                &format!("{base}/target"),
                (t * 1024).to_string().as_bytes(),
            )
            .map_err(|e| e.to_string())?;
            g.spec.memory_mib = t;
        }
        Ok(())
    }

    /// Brings vCPUs online or offline (`cpu/N/availability`).
    pub fn set_vcpus(&self, domid: u32, online: u32) -> Result<(), String> {
        let mut guests = lock(&self.guests);
        let g = guests
            .get_mut(&domid)
            .ok_or_else(|| format!("no domain {domid}"))?;
        if online == 0 || online > g.spec.max_vcpus {
            return Err(format!(
                "cannot set vcpus to {online}: the maximum is {}",
                g.spec.max_vcpus
            ));
        }
        let mut s = lock(&self.store);
        for i in 0..g.spec.max_vcpus {
            let state: &[u8] = if i < online { b"online" } else { b"offline" };
            s.write(
                TOOLSTACK,
                0,
                &format!("/local/domain/{domid}/cpu/{i}/availability"),
                state,
            )
            .map_err(|e| e.to_string())?;
        }
        g.spec.vcpus = online;
        Ok(())
    }

    /// Dom0's memory target in KiB.
    pub fn dom0_memory_kib(&self) -> u64 {
        let v = lock(&self.store)
            .read(TOOLSTACK, 0, "/local/domain/0/memory/target")
            .unwrap_or_default();
        String::from_utf8_lossy(&v).trim().parse().unwrap_or(0)
    }
}

/// A fresh listening socket at `path` (a stale one from an earlier run is
/// replaced) with the given mode: the one way every listener here starts.
pub fn listen(path: &std::path::Path, mode: u32) -> std::io::Result<UnixListener> {
    let _ = std::fs::remove_file(path);
    let l = UnixListener::bind(path)?;
    set_mode(path, mode);
    Ok(l)
}

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}
