//! `-o retry`: mount before any back end answers, so that a host whose
//! hypervisor services start late still boots with its mount in place.
//!
//! Until `connection::open` succeeds, every call fails with ENOTCONN and a
//! message saying why, which the log and `last_error` show; a thread keeps
//! opening the connection with backoff, and from then on every call goes to
//! the real dispatcher, without a remount. It knows drivers only through
//! the Dispatcher and the Driver trait.

use domfs::connection::{self, ConnectOptions};
use domfs::dispatch::Dispatcher;
use domfs::driver::Driver;
use domfs::error::{Error, ErrorKind, Result};
use domfs::model::{DomainDef, DomainId, DomainInfo, DomainRef, Hypervisor, NodeInfo, Uuid};
use domfs::uri::Uri;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// First wait between attempts; it doubles up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

struct Shared {
    uri: Uri,
    connected: OnceLock<Dispatcher>,
    /// The mount's change feed: the real connection's events are passed on
    /// to it once it opens.
    outer: OnceLock<domfs::events::Bus>,
    /// Why the last attempt failed.
    reason: Mutex<String>,
}

/// A driver that is the real connection once it opens, and ENOTCONN with
/// the reason until then.
pub struct Retrying {
    shared: Arc<Shared>,
}

impl Retrying {
    /// Starts connecting in the background after a first attempt failed with
    /// `first`; `on_connect` runs once, when the connection opens.
    pub fn start(
        uri: Uri,
        opts: ConnectOptions,
        first: Error,
        on_connect: impl FnOnce() + Send + 'static,
    ) -> std::result::Result<Retrying, String> {
        let shared = Arc::new(Shared {
            uri,
            connected: OnceLock::new(),
            outer: OnceLock::new(),
            reason: Mutex::new(first.to_string()),
        });
        let bg = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("connect".into())
            .spawn(move || connect_loop(&bg, &opts, first, on_connect))
            .map_err(|e| format!("starting a thread: {e}"))?;
        Ok(Retrying { shared })
    }

    fn with<T>(&self, call: impl FnOnce(&Dispatcher) -> Result<T>) -> Result<T> {
        match self.shared.connected.get() {
            Some(d) => call(d),
            None => {
                let reason = self
                    .shared
                    .reason
                    .lock()
                    .map(|r| r.clone())
                    .unwrap_or_default();
                Err(Error::new(
                    ErrorKind::NotConnected,
                    format!(
                        "not connected to {} yet ({reason}); domfs keeps trying (-o retry)",
                        self.shared.uri
                    ),
                ))
            }
        }
    }
}

fn connect_loop(shared: &Shared, opts: &ConnectOptions, first: Error, on_connect: impl FnOnce()) {
    let mut wait = FIRST_BACKOFF;
    let mut last = first;
    loop {
        std::thread::sleep(wait);
        wait = (wait * 2).min(MAX_BACKOFF);
        match connection::open(&shared.uri, opts) {
            Ok(d) => {
                // Set once: only this thread sets it.
                let inner = d.events().subscribe();
                let _ = shared.connected.set(d);
                if let Some(outer) = shared.outer.get().cloned() {
                    let _ = std::thread::Builder::new()
                        .name("retry-events".into())
                        .spawn(move || {
                            for (_, e) in inner.rx {
                                outer.publish(e);
                            }
                        });
                }
                log::warn!("{}: connected; the mount now answers", shared.uri);
                on_connect();
                return;
            }
            Err(e) => {
                if e != last {
                    log::warn!("{}: still not connected: {e}", shared.uri);
                } else {
                    log::debug!("{}: still not connected: {e}", shared.uri);
                }
                if let Ok(mut r) = shared.reason.lock() {
                    *r = e.to_string();
                }
                last = e;
            }
        }
    }
}

impl Driver for Retrying {
    fn publish_to(&self, bus: domfs::events::Bus) {
        let _ = self.shared.outer.set(bus);
    }

    fn name(&self) -> &str {
        "retry"
    }
    fn list_active(&self) -> Result<Vec<DomainRef>> {
        self.with(|d| d.list_active())
    }
    fn list_defined(&self) -> Result<Vec<DomainRef>> {
        self.with(|d| d.list_defined())
    }
    fn lookup_by_name(&self, name: &str) -> Result<DomainRef> {
        self.with(|d| d.lookup_by_name(name))
    }
    fn lookup_by_id(&self, id: DomainId) -> Result<DomainRef> {
        self.with(|d| d.lookup_by_id(id))
    }
    fn lookup_by_uuid(&self, uuid: Uuid) -> Result<DomainRef> {
        self.with(|d| d.lookup_by_uuid(uuid))
    }
    fn domain_info(&self, dom: &DomainRef) -> Result<DomainInfo> {
        self.with(|d| d.domain_info(dom))
    }
    fn domain_os_type(&self, dom: &DomainRef) -> Result<String> {
        self.with(|d| d.domain_os_type(dom))
    }
    fn domain_xml(&self, dom: &DomainRef) -> Result<DomainDef> {
        self.with(|d| d.domain_xml(dom))
    }
    fn node_info(&self) -> Result<NodeInfo> {
        self.with(|d| d.node_info())
    }
    fn hypervisor(&self) -> Result<Hypervisor> {
        self.with(|d| d.hypervisor())
    }
    fn create_xml(&self, def: DomainDef) -> Result<DomainRef> {
        // The dispatcher takes create's document as text; this one is
        // already checked, so printing and parsing it again only repeats
        // what passed.
        self.with(|d| d.create_xml(&def.to_xml()))
    }
    fn define_xml(&self, def: DomainDef) -> Result<DomainRef> {
        self.with(|d| d.define(def))
    }
    fn undefine(&self, dom: &DomainRef) -> Result<()> {
        self.with(|d| d.undefine(dom))
    }
    fn start(&self, dom: &DomainRef) -> Result<()> {
        self.with(|d| d.start(dom))
    }
    fn shutdown(&self, dom: &DomainRef) -> Result<()> {
        self.with(|d| d.shutdown(dom))
    }
    fn reboot(&self, dom: &DomainRef) -> Result<()> {
        self.with(|d| d.reboot(dom))
    }
    fn destroy(&self, dom: &DomainRef) -> Result<()> {
        self.with(|d| d.destroy(dom))
    }
    fn suspend(&self, dom: &DomainRef) -> Result<()> {
        self.with(|d| d.suspend(dom))
    }
    fn resume(&self, dom: &DomainRef) -> Result<()> {
        self.with(|d| d.resume(dom))
    }
    fn save(&self, dom: &DomainRef, path: &Path) -> Result<()> {
        self.with(|d| d.save(dom, path))
    }
    fn restore(&self, path: &Path) -> Result<DomainRef> {
        self.with(|d| d.restore(path))
    }
    fn set_memory(&self, dom: &DomainRef, kib: u64) -> Result<()> {
        self.with(|d| d.set_memory(dom, kib))
    }
    fn set_max_memory(&self, dom: &DomainRef, kib: u64) -> Result<()> {
        self.with(|d| d.set_max_memory(dom, kib))
    }
    fn set_vcpus(&self, dom: &DomainRef, count: u32) -> Result<()> {
        self.with(|d| d.set_vcpus(dom, count))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Instant;

    /// A test:///PATH whose file appears later: ENOTCONN with the reason
    /// until then, the real host after, through the same driver.
    #[test]
    fn answers_enotconn_until_the_back_end_appears() {
        let dir = std::env::temp_dir().join(format!("domfs-retry-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("host.xml");
        let _ = std::fs::remove_file(&file);
        let uri = Uri::parse(&format!("test://{}", file.display())).unwrap();
        let first = connection::open(&uri, &ConnectOptions::default())
            .err()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let r = Retrying::start(uri, ConnectOptions::default(), first, move || {
            let _ = tx.send(());
        })
        .unwrap();
        let e = r.list_active().unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotConnected);
        assert!(e.message.contains("host.xml"), "{}", e.message);
        assert!(e.message.contains("-o retry"), "{}", e.message);
        std::fs::write(
            &file,
            "<node><domain type='test'><name>late</name><memory>1024</memory>\
             <os><type>hvm</type></os></domain></node>",
        )
        .unwrap();
        let t = Instant::now();
        rx.recv_timeout(Duration::from_secs(20)).unwrap();
        assert!(t.elapsed() < Duration::from_secs(20));
        let names: Vec<String> = r
            .list_defined()
            .unwrap()
            .into_iter()
            .chain(r.list_active().unwrap())
            .map(|d| d.name.to_string())
            .collect();
        assert!(names.contains(&"late".to_string()), "{names:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
