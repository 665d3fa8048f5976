//! A direct look at the hypervisor driver, without xenstore or a mount: the
//! xen-lab runs it in dom0 and compares what it prints with `xl`.
//!
//!   xen-hv list            one line per domain: id uuid state KiB max-KiB vcpus cpu-ns
//!   xen-hv node            node info, as node/info shows it
//!   xen-hv version         type, version and capabilities
//!   xen-hv pause|unpause|destroy ID
//!   xen-hv poll FILE MS    reads FILE, polls it for POLLPRI up to MS ms, then
//!                          prints `woke VALUE` or `timeout VALUE` (re-read from 0)

use domfs::driver::hypervisor::HypervisorDriver;
use domfs::driver::Driver;
use domfs::model::{DomainId, DomainName, DomainRef};
use std::process::ExitCode;

fn run(args: &[String]) -> domfs::Result<()> {
    let hv = HypervisorDriver::open(None)?
        .ok_or_else(|| domfs::Error::backend("no privcmd device: not a Xen host"))?;
    match args.first().map(String::as_str) {
        Some("list") => {
            for d in hv.domains()? {
                let i = &d.info;
                println!(
                    "{} {} {} {} {} {} {}",
                    d.id, d.uuid, i.state, i.memory_kib, i.max_memory_kib, i.vcpus, i.cpu_time_ns
                );
            }
        }
        Some("node") => print!("{}", hv.node_info()?.to_text()),
        Some("version") => {
            let h = hv.hypervisor()?;
            println!("type {}\nversion {}", h.kind, h.version);
            println!("extra {}", hv.extra_version());
            println!("capabilities {}", hv.capabilities()?.join(" "));
        }
        Some(op @ ("pause" | "unpause" | "destroy")) => {
            let id: DomainId = args
                .get(1)
                .ok_or_else(|| domfs::Error::invalid("which domain id?"))?
                .parse()
                .map_err(domfs::Error::invalid)?;
            let d = hv.domain_by_id(id)?;
            let r = DomainRef {
                name: DomainName(format!("domain {id}")),
                uuid: d.uuid,
                id: Some(id),
            };
            match op {
                "pause" => hv.suspend(&r)?,
                "unpause" => hv.resume(&r)?,
                _ => hv.destroy(&r)?,
            }
        }
        Some("poll") => {
            let (Some(file), Some(ms)) = (args.get(1), args.get(2).and_then(|m| m.parse().ok()))
            else {
                return Err(domfs::Error::invalid("usage: xen-hv poll FILE MS"));
            };
            println!(
                "{}",
                poll_once(file, ms).map_err(|e| domfs::Error::backend(e.to_string()))?
            );
        }
        _ => {
            return Err(domfs::Error::invalid(
                "usage: xen-hv list|node|version|pause ID|unpause ID|destroy ID|poll FILE MS",
            ))
        }
    }
    Ok(())
}

/// What a sysfs-style poller does: read, poll for POLLPRI, seek to 0, read.
fn poll_once(file: &str, ms: u16) -> std::io::Result<String> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::io::{Read, Seek};
    use std::os::fd::AsFd;
    let mut f = std::fs::File::open(file)?;
    let mut first = String::new();
    f.read_to_string(&mut first)?;
    let mut fds = [PollFd::new(
        f.as_fd(),
        PollFlags::POLLPRI | PollFlags::POLLIN,
    )];
    let n = poll(&mut fds, PollTimeout::from(ms)).map_err(std::io::Error::from)?;
    let woke = n > 0
        && fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLPRI));
    f.rewind()?;
    let mut now = String::new();
    f.read_to_string(&mut now)?;
    Ok(format!(
        "{} {}",
        if woke { "woke" } else { "timeout" },
        now.trim()
    ))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xen-hv: {e}");
            ExitCode::FAILURE
        }
    }
}
