//! Opening a connection: a URI becomes a dispatcher over the drivers that
//! serve it, in priority order, with the routing table of its kind. The
//! general front end knows no driver by name; each kind of connection
//! brings its own policy (`driver::xen` for Xen).

use crate::dispatch::{Dispatcher, Routes};
use crate::driver::test::TestDriver;
use crate::driver::xen::{self, XenOptions};
use crate::driver::Driver;
use crate::error::{Error, Result};
use crate::uri::Uri;

pub use crate::driver::xen::{check_libxl, check_privcmd, check_xend};

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
    /// `-o libxl=none`: go without libxenlight even in dom0.
    pub libxl: Option<String>,
    /// `-o state_dir=PATH`: where the libxl driver keeps definitions.
    pub state_dir: Option<String>,
    /// `-o backend_devices=DIR`: blkback's device directories in sysfs.
    pub backend_devices: Option<String>,
    /// `-o net_dev=FILE`: the kernel's interface counters.
    pub net_dev: Option<String>,
}

pub fn open(uri: &Uri, opts: &ConnectOptions) -> Result<Dispatcher> {
    Ok(Dispatcher::new(
        drivers(uri, opts)?,
        routes(uri),
        opts.read_only,
    ))
}

/// Under `-o retry`: whether to open the connection now, `waited` after the
/// first attempt, or go on waiting (ENOTCONN with the reason) because a back
/// end the host will have is not there yet (see `xen::ready`).
pub fn ready(uri: &Uri, opts: &ConnectOptions, waited: std::time::Duration) -> Result<()> {
    match uri {
        Uri::TestDefault | Uri::TestFile(_) => Ok(()),
        Uri::Xen => xen::ready(&xen_options(opts), waited),
    }
}

/// The routing table of the URI's kind of connection.
pub fn routes(uri: &Uri) -> Routes {
    match uri {
        Uri::TestDefault | Uri::TestFile(_) => &[],
        Uri::Xen => xen::ROUTES,
    }
}

/// Opens the drivers that serve `uri`, in priority order.
pub fn drivers(uri: &Uri, opts: &ConnectOptions) -> Result<Vec<Box<dyn Driver>>> {
    Ok(match uri {
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
        Uri::Xen => xen::open(&xen_options(opts))?,
    })
}

fn xen_options(opts: &ConnectOptions) -> XenOptions<'_> {
    XenOptions {
        xenstore: opts.xenstore.as_deref(),
        xend: opts.xend.as_deref(),
        privcmd: opts.privcmd.as_deref(),
        poll_ms: opts.poll_ms,
        libxl: opts.libxl.as_deref(),
        state_dir: opts.state_dir.as_deref(),
        backend_devices: opts.backend_devices.as_deref(),
        net_dev: opts.net_dev.as_deref(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

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
        let bad = ConnectOptions {
            libxl: Some("yes".into()),
            ..opts.clone()
        };
        assert_eq!(
            open(&Uri::Xen, &bad).err().unwrap().kind,
            ErrorKind::InvalidArgument
        );
        for bad in [
            ConnectOptions {
                backend_devices: Some("sys/bus".into()),
                ..opts.clone()
            },
            ConnectOptions {
                net_dev: Some("net_dev".into()),
                ..opts.clone()
            },
        ] {
            let e = open(&Uri::Xen, &bad).err().unwrap();
            assert_eq!(e.kind, ErrorKind::InvalidArgument, "{}", e.message);
            assert!(e.message.contains("absolute"), "{}", e.message);
        }
        let off = ConnectOptions {
            libxl: Some("none".into()),
            ..opts
        };
        let e = open(&Uri::Xen, &off).err().unwrap();
        assert!(e.message.contains("libxl=none"), "{}", e.message);
    }
}
