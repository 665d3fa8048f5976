//! Opening a connection: a URI becomes a dispatcher over the drivers that
//! serve it, in priority order.

use crate::dispatch::Dispatcher;
use crate::driver::test::TestDriver;
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
        Uri::Xen => {
            return Err(Error::new(
                ErrorKind::NotSupported,
                "xen:/// needs the hypervisor, xenstore and xend drivers, which this build \
                 does not have yet; use test:///default or a test:///PATH.xml host file",
            ))
        }
    };
    Ok(Dispatcher::new(drivers, read_only))
}
