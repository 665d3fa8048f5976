//! A direct look at the hypervisor driver, without xenstore or a mount: the
//! xen-lab runs it in dom0 and compares what it prints with `xl`.
//!
//!   xen-hv list            one line per domain: id uuid state KiB max-KiB vcpus cpu-ns
//!   xen-hv node            node info, as node/info shows it
//!   xen-hv version         type, version and capabilities
//!   xen-hv pause|unpause|destroy ID

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
        _ => {
            return Err(domfs::Error::invalid(
                "usage: xen-hv list|node|version|pause ID|unpause ID|destroy ID",
            ))
        }
    }
    Ok(())
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
