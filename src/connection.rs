//! Opening a connection: a URI becomes a dispatcher over the drivers that
//! serve it, in priority order.

use crate::dispatch::Dispatcher;
use crate::driver::hypervisor::{self, HypervisorDriver};
use crate::driver::test::TestDriver;
use crate::driver::xend::XendDriver;
use crate::driver::xenstore::{self, XenstoreDriver};
use crate::driver::Driver;
use crate::error::{Error, ErrorKind, Result};
use crate::uri::Uri;
use std::path::Path;

/// What a mount asks of its connection besides the URI: the `-o` options
/// that choose and tune back ends. Every key the command line accepts for a
/// back end lands here, so drivers never parse command lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectOptions {
    pub read_only: bool,
    /// `-o xenstore=PATH`: xenstored's unix socket or the xenbus device.
    pub xenstore: Option<String>,
    /// `-o xend=unix:/PATH` or `-o xend=http://HOST:PORT`.
    pub xend: Option<String>,
    /// `-o privcmd=PATH|none`: the privcmd device, or `none` to go without.
    pub privcmd: Option<String>,
    /// `-o poll_ms=N`: how often the hypervisor driver compares domain
    /// lists for changes no watch reports; 0 never.
    pub poll_ms: Option<u64>,
}

pub fn open(uri: &Uri, opts: &ConnectOptions) -> Result<Dispatcher> {
    let read_only = opts.read_only;
    let drivers: Vec<Box<dyn Driver>> = match uri {
        Uri::TestDefault => vec![Box::new(TestDriver::default_host()?)],
        Uri::TestFile(path) => vec![Box::new(TestDriver::from_file(path).map_err(|e| {
            Error::new(
                e.kind,
                format!(
                    "{}; test:///PATH needs an absolute path to a libvirt test-driver host \
                     file (<node> with <cpu>, <memory> and <domain> elements)",
                    e.message
                ),
            )
        })?)],
        Uri::Xen => open_xen(opts)?,
    };
    Ok(Dispatcher::new(drivers, read_only))
}

/// xenstored's socket; Xen 4.15 and later have no read-only one.
pub const XENSTORE_SOCKET: &str = "/var/run/xenstored/socket";
/// The kernel's xenbus devices, tried after the socket as libxenstore does.
pub const XENBUS_DEVICES: [&str; 2] = ["/dev/xen/xenbus", "/proc/xen/xenbus"];
/// How often the hypervisor is asked for changes no watch reports.
pub const DEFAULT_POLL_MS: u64 = 500;
pub const PRIVCMD_DEVICE: &str = "/dev/xen/privcmd";

/// Checks `-o xend=`: `unix:/ABSOLUTE/PATH` or `http://HOST:PORT`.
pub fn check_xend(url: &str) -> Result<()> {
    let ok = if let Some(path) = url.strip_prefix("unix:") {
        path.starts_with('/')
    } else if let Some(rest) = url.strip_prefix("http://") {
        let hostport = rest.trim_end_matches('/');
        matches!(hostport.rsplit_once(':'), Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok())
    } else {
        false
    };
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "xend={url}: use unix:/ABSOLUTE/PATH or http://HOST:PORT"
        )))
    }
}

/// Checks `-o privcmd=`: an absolute device path or `none`.
pub fn check_privcmd(value: &str) -> Result<()> {
    if value == "none" || value.starts_with('/') {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "privcmd={value}: use an absolute device path or none"
        )))
    }
}

/// Opens every Xen back end this build has and can reach, in libvirt's
/// registration order (hypervisor, xend, xenstore; `dispatch::ROUTES` then
/// orders them per operation). A back end that is absent is skipped with an
/// info log; with none at all the mount fails naming each endpoint tried.
fn open_xen(opts: &ConnectOptions) -> Result<Vec<Box<dyn Driver>>> {
    let mut drivers: Vec<Box<dyn Driver>> = Vec::new();
    let mut tried: Vec<String> = Vec::new();

    if let Some(v) = opts.privcmd.as_deref() {
        check_privcmd(v)?;
    }
    let mut hv = None;
    match HypervisorDriver::open(opts.privcmd.as_deref()) {
        Ok(Some(d)) => {
            log::info!("xen:///: hypervisor through privcmd");
            let every = std::time::Duration::from_millis(opts.poll_ms.unwrap_or(DEFAULT_POLL_MS));
            hv = Some(d.poll_every(every));
        }
        Ok(None) if opts.privcmd.is_some() => {
            tried.push("hypervisor: turned off (privcmd=none)".into())
        }
        Ok(None) => tried.push(format!(
            "hypervisor: no privcmd device ({})",
            hypervisor::DEFAULT_PATHS.join(", ")
        )),
        // A missing or refused device (named or default), or an unknown
        // Xen release: go on without it, loudly, since state and info then
        // come from slower back ends; the mount fails only with no back end.
        Err(e) => {
            log::warn!("xen:///: hypervisor driver off: {e}");
            tried.push(format!("hypervisor: {}", e.message));
        }
    }

    if let Some(url) = opts.xend.as_deref() {
        check_xend(url)?;
        // A xend that does not answer now is not counted as reachable.
        match XendDriver::from_url(url).and_then(|d| d.hypervisor().map(|_| d)) {
            Ok(d) => {
                log::info!("xen:///: xend at {url}");
                drivers.push(Box::new(d));
            }
            Err(e) => tried.push(format!("xend ({url}): {e}")),
        }
    }

    let endpoints: Vec<String> = match &opts.xenstore {
        Some(p) => vec![p.clone()],
        None => std::iter::once(XENSTORE_SOCKET)
            .chain(XENBUS_DEVICES)
            .map(String::from)
            .collect(),
    };
    for ep in &endpoints {
        match XenstoreDriver::open(Path::new(ep), xenstore::client::DEFAULT_TIMEOUT) {
            Ok(d) => {
                log::info!("xen:///: xenstore through {ep}");
                drivers.push(Box::new(d));
                hv = hv.map(|h| h.after_destroy(forget_in_xenstore(ep.into())));
                break;
            }
            Err(e) => tried.push(format!("xenstore ({ep}): {}", e.message)),
        }
    }
    if let Some(h) = hv {
        drivers.insert(0, Box::new(h));
    }

    for t in &tried {
        log::info!("xen:///: skipped {t}");
    }
    if drivers.is_empty() {
        return Err(Error::new(
            ErrorKind::NotConnected,
            format!("no Xen back end is reachable; tried {}", tried.join("; ")),
        ));
    }
    Ok(drivers)
}

/// The toolstack's half of a destroy, after Xen's: libxl removes the
/// domain's xenstore entries (`/local/domain/N`, its `/vm` entry,
/// `/libxl/N`, its backends in dom0), and nothing else does, so without this
/// a destroyed domain would stay listed.
fn forget_in_xenstore(endpoint: std::path::PathBuf) -> hypervisor::AfterDestroy {
    use xenstore::client::{Client, ClientError, DEFAULT_TIMEOUT};
    use xenstore::wire::ErrName;
    let fail = |what: &str, e: ClientError| {
        Error::backend(format!("removing its xenstore entries: {what}: {e}"))
    };
    Box::new(move |id, uuid| {
        let c = Client::connect(&endpoint, DEFAULT_TIMEOUT).map_err(|e| fail("connect", e))?;
        let home = format!("/local/domain/{id}");
        let mut paths = Vec::new();
        match c.read_string(0, &format!("{home}/vm")) {
            Ok(vm) if vm.starts_with("/vm/") && !vm.contains("..") => paths.push(vm),
            _ => paths.push(format!("/vm/{uuid}")),
        }
        match c.directory(0, "/local/domain/0/backend") {
            Ok(kinds) => paths.extend(
                kinds
                    .iter()
                    .map(|k| format!("/local/domain/0/backend/{k}/{id}")),
            ),
            Err(e) if e.is(ErrName::Enoent) => {}
            Err(e) => return Err(fail("backends", e)),
        }
        paths.push(format!("/libxl/{id}"));
        paths.push(home);
        for p in &paths {
            match c.rm(0, p) {
                Ok(()) => {}
                Err(e) if e.is(ErrName::Enoent) => {}
                Err(e) => return Err(fail(p, e)),
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_options_are_checked() {
        check_xend("unix:/var/run/xend/xend-socket").unwrap();
        check_xend("http://localhost:8000").unwrap();
        check_xend("http://10.0.0.1:8000/").unwrap();
        for bad in [
            "localhost:8000",
            "unix:relative",
            "http://host",
            "http://:80",
            "ftp://x:1",
        ] {
            assert_eq!(
                check_xend(bad).unwrap_err().kind,
                ErrorKind::InvalidArgument,
                "{bad}"
            );
        }
        check_privcmd("none").unwrap();
        check_privcmd("/dev/xen/privcmd").unwrap();
        assert!(check_privcmd("privcmd").is_err());
    }

    #[test]
    fn nothing_reachable_names_every_endpoint() {
        let opts = ConnectOptions {
            xenstore: Some("/nonexistent/xenstored/socket".into()),
            xend: Some("http://localhost:8000".into()),
            privcmd: Some("none".into()),
            ..ConnectOptions::default()
        };
        let e = open(&Uri::Xen, &opts).err().unwrap();
        assert_eq!(e.kind, ErrorKind::NotConnected);
        for part in [
            "/nonexistent/xenstored/socket",
            "xend (http://localhost:8000)",
            "privcmd=none",
        ] {
            assert!(
                e.message.contains(part),
                "{part} missing from: {}",
                e.message
            );
        }
        let bad = ConnectOptions {
            xend: Some("nonsense".into()),
            ..ConnectOptions::default()
        };
        assert_eq!(
            open(&Uri::Xen, &bad).err().unwrap().kind,
            ErrorKind::InvalidArgument
        );
    }
}
