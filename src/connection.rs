//! Opening a connection: a URI becomes a dispatcher over the drivers that
//! serve it, in priority order.

use crate::dispatch::Dispatcher;
use crate::driver::test::TestDriver;
use crate::driver::xend::XendDriver;
use crate::driver::Driver;
use crate::error::{Error, ErrorKind, Result};
use crate::uri::Uri;

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
        // The Xen drivers in libvirt's xen_unified order (hypervisor,
        // xend, xenstore); each is present when its option is given.
        Uri::Xen => {
            let mut drivers: Vec<Box<dyn Driver>> = Vec::new();
            if let Some(url) = &opts.xend {
                drivers.push(Box::new(XendDriver::from_url(url)?));
            }
            if drivers.is_empty() {
                return Err(Error::new(
                    ErrorKind::NotSupported,
                    "xen:/// needs a Xen back end: give -o xend=unix:/PATH or \
                     -o xend=http://HOST:PORT (the hypervisor and xenstore drivers are \
                     not in this build yet)",
                ));
            }
            drivers
        }
    };
    Ok(Dispatcher::new(drivers, read_only))
}
