//! `domfs-sim DIR`: a simulated Xen 4.17 host for trying and testing domfs
//! without Xen. It serves xenstored's protocol on `DIR/xenstored/socket`
//! (dom0, privileged) and, for each running guest N, on
//! `DIR/xenstored/domain-N` (a connection that acts as guest N, the way its
//! ring connection would: unprivileged, with quotas). Real clients reach
//! either through `XENSTORED_PATH`.
//!
//! The filesystem binary never links this: the host model lives here only.

mod host;
mod store;
mod xend;
mod xenstored;

use host::{GuestSpec, Host};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::{Flavour, Store};

const USAGE: &str = "usage: domfs-sim [--daemon oxenstored|xenstored] [--shutdown-delay MS] \
[--dom0-memory MiB] [--xend-port PORT] [--host FILE] [--guest SPEC]... DIR

Serves a simulated Xen 4.17 host's xenstore on DIR/xenstored/socket (dom0) and
DIR/xenstored/domain-N (as guest N), and xend's HTTP API on DIR/xend-socket and
on 127.0.0.1:PORT (--xend-port, default any free port, written to DIR/xend-port). Guests come from --guest flags and from a
host FILE (one SPEC a line, '#' comments); with neither, guest1 and guest2 run.
SPEC: NAME[,memory=MiB][,maxmem=MiB][,vcpus=N][,maxvcpus=N][,uuid=UUID]
      [,type=pv|hvm][,kernel=PATH][,ramdisk=PATH][,cmdline=TEXT]
--dom0-memory 0 leaves dom0's memory keys out, as on a fresh boot before
libxl first touched them (default 1024).
--daemon chooses whose behaviour to copy where the two differ (default
oxenstored, Debian 12's). A guest that reads poweroff, halt or reboot in
control/shutdown stops (and restarts for reboot) after --shutdown-delay
(default 500 ms).";

struct Args {
    dir: PathBuf,
    flavour: Flavour,
    delay: Duration,
    dom0_mib: u64,
    xend_port: u16,
    guests: Vec<GuestSpec>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut dir = None;
    let mut flavour = Flavour::Ocaml;
    let mut delay = Duration::from_millis(500);
    let mut dom0_mib = 1024;
    let mut xend_port = 0;
    let mut guests = Vec::new();
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--daemon" => {
                flavour = match value("--daemon")?.as_str() {
                    "oxenstored" => Flavour::Ocaml,
                    "xenstored" => Flavour::C,
                    o => return Err(format!("--daemon {o}: use oxenstored or xenstored")),
                }
            }
            "--shutdown-delay" => {
                let v = value("--shutdown-delay")?;
                delay = Duration::from_millis(
                    v.parse()
                        .map_err(|_| format!("--shutdown-delay {v}: not a number of ms"))?,
                );
            }
            "--dom0-memory" => {
                let v = value("--dom0-memory")?;
                dom0_mib = v
                    .parse()
                    .map_err(|_| format!("--dom0-memory {v}: not a number of MiB"))?;
            }
            "--xend-port" => {
                let v = value("--xend-port")?;
                xend_port = v
                    .parse()
                    .map_err(|_| format!("--xend-port {v}: not a port number"))?;
            }
            "--guest" => guests.push(GuestSpec::parse(&value("--guest")?)?),
            "--host" => {
                let f = value("--host")?;
                let text = std::fs::read_to_string(&f).map_err(|e| format!("{f}: {e}"))?;
                for line in text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                {
                    guests.push(GuestSpec::parse(line).map_err(|e| format!("{f}: {e}"))?);
                }
            }
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s if dir.is_none() => dir = Some(PathBuf::from(s)),
            s => return Err(format!("unexpected argument {s}")),
        }
    }
    let dir = dir.ok_or("no DIR given")?;
    if guests.is_empty() {
        guests.push(GuestSpec::parse("guest1,memory=512,vcpus=2")?);
        guests.push(GuestSpec::parse("guest2,memory=256,vcpus=1,maxvcpus=2")?);
    }
    Ok(Args {
        dir,
        flavour,
        delay,
        dom0_mib,
        xend_port,
        guests,
    })
}

/// Requests served, for tests that count what one read of the mount costs:
/// `GET /domfs-sim/requests` on the xend socket answers them (and is not
/// counted itself).
pub static XENSTORE_REQUESTS: AtomicU64 = AtomicU64::new(0);
pub static XEND_REQUESTS: AtomicU64 = AtomicU64::new(0);

/// xend's API on DIR/xend-socket and on TCP loopback (port in DIR/xend-port).
fn start_xend(host: &std::sync::Arc<Host>, args: &Args) -> std::io::Result<()> {
    let sock = args.dir.join("xend-socket");
    let unix = host::listen(&sock, 0o600)?;
    let tcp = std::net::TcpListener::bind(("127.0.0.1", args.xend_port))?;
    let port = tcp.local_addr()?.port();
    std::fs::write(args.dir.join("xend-port"), format!("{port}\n"))?;
    xend::Xend::new(host.clone()).serve(unix, tcp);
    log::info!("xend on {} and 127.0.0.1:{port}", sock.display());
    Ok(())
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("domfs-sim: {e}");
            }
            eprintln!("{USAGE}");
            std::process::exit(if e.is_empty() { 0 } else { 2 });
        }
    };
    if let Err(e) = std::fs::create_dir_all(args.dir.join("xenstored")) {
        eprintln!("domfs-sim: {}: {e}", args.dir.display());
        std::process::exit(1);
    }
    let store = Arc::new(Mutex::new(Store::new(args.flavour)));
    let host = match Host::start(store, args.dir.clone(), args.delay, args.dom0_mib) {
        Ok(h) => h,
        Err(e) => {
            eprintln!(
                "domfs-sim: cannot serve {}/xenstored/socket: {e}",
                args.dir.display()
            );
            std::process::exit(1);
        }
    };
    if let Err(e) = start_xend(&host, &args) {
        eprintln!("domfs-sim: cannot serve xend: {e}");
        std::process::exit(1);
    }
    for g in args.guests {
        if let Err(e) = host.create(g) {
            eprintln!("domfs-sim: {e}");
            std::process::exit(1);
        }
    }
    for g in host.guests() {
        log::info!("domain {}: {} ({})", g.domid, g.spec.name, g.spec.uuid);
    }
    log::info!(
        "xenstored ({:?}) on {}/xenstored/socket",
        host.store
            .lock()
            .map(|s| s.flavour)
            .unwrap_or(Flavour::Ocaml),
        args.dir.display()
    );
    loop {
        std::thread::park();
    }
}
