//! Opening a connection: a URI becomes a dispatcher over the drivers that
//! serve it, in priority order.

use crate::dispatch::Dispatcher;
use crate::driver::test::TestDriver;
use crate::driver::Driver;
use crate::error::{Error, ErrorKind, Result};
use crate::uri::Uri;

pub fn open(uri: &Uri, read_only: bool) -> Result<Dispatcher> {
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
