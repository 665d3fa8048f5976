//! `-o retry`: mount before any back end answers, so that a host whose
//! hypervisor services start late still boots with its mount in place.
//!
//! The dispatcher starts out waiting (every call ENOTCONN with the reason,
//! which the log and `last_error` show); a thread keeps opening the
//! connection's drivers with backoff and attaches them once they open, from
//! when on every call reaches them, without a remount. Being not connected
//! is the dispatcher's own state, so no operation can miss the way through.

use domfs::connection::{self, ConnectOptions};
use domfs::dispatch::Dispatcher;
use domfs::error::Error;
use domfs::uri::Uri;
use std::sync::Arc;
use std::time::Duration;

/// First wait between attempts; it doubles up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Short: a boot waits on it (the Xen service starts late), and a failed
/// attempt costs a few system calls.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

fn waiting_reason(uri: &Uri, e: &Error) -> String {
    format!("not connected to {uri} yet ({e}); domfs keeps trying (-o retry)")
}

/// A dispatcher that is not connected yet, after a first attempt failed
/// with `first`, and the thread that connects it; `on_connect` runs once,
/// when the connection opens.
pub fn start(
    uri: Uri,
    opts: ConnectOptions,
    first: Error,
    on_connect: impl FnOnce() + Send + 'static,
) -> Result<Arc<Dispatcher>, String> {
    let d = Arc::new(Dispatcher::waiting(
        waiting_reason(&uri, &first),
        connection::routes(&uri),
        opts.read_only,
    ));
    let bg = Arc::clone(&d);
    std::thread::Builder::new()
        .name("connect".into())
        .spawn(move || connect_loop(&bg, &uri, &opts, first, on_connect))
        .map_err(|e| format!("starting a thread: {e}"))?;
    Ok(d)
}

fn connect_loop(
    d: &Dispatcher,
    uri: &Uri,
    opts: &ConnectOptions,
    first: Error,
    on_connect: impl FnOnce(),
) {
    let mut wait = FIRST_BACKOFF;
    let mut last = first;
    let began = std::time::Instant::now();
    loop {
        std::thread::sleep(wait);
        wait = (wait * 2).min(MAX_BACKOFF);
        match connection::ready(uri, opts, began.elapsed())
            .and_then(|()| connection::drivers(uri, opts))
        {
            Ok(drivers) => {
                d.attach(drivers);
                log::warn!("{uri}: connected; the mount now answers");
                on_connect();
                return;
            }
            Err(e) => {
                if e != last {
                    log::warn!("{uri}: still not connected: {e}");
                } else {
                    log::debug!("{uri}: still not connected: {e}");
                }
                d.still_waiting(waiting_reason(uri, &e));
                last = e;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use domfs::error::ErrorKind;
    use domfs::model::Operation;
    use std::time::Instant;

    /// A test:///PATH whose file appears later: ENOTCONN with the reason
    /// until then, the real host after, through the same dispatcher.
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
        let d = start(uri, ConnectOptions::default(), first, move || {
            let _ = tx.send(());
        })
        .unwrap();
        let e = d.list_active().unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotConnected);
        assert!(e.message.contains("host.xml"), "{}", e.message);
        assert!(e.message.contains("-o retry"), "{}", e.message);
        assert!(!d.supports(Operation::Start), "nothing is supported yet");
        std::fs::write(
            &file,
            "<node><domain type='test'><name>late</name><memory>1024</memory>\
             <os><type>hvm</type></os></domain></node>",
        )
        .unwrap();
        let t = Instant::now();
        rx.recv_timeout(Duration::from_secs(20)).unwrap();
        assert!(t.elapsed() < Duration::from_secs(20));
        let names: Vec<String> = d
            .list_domains()
            .unwrap()
            .into_iter()
            .map(|d| d.name.to_string())
            .collect();
        assert!(names.contains(&"late".to_string()), "{names:?}");
        let late = d.lookup_by_name("late").unwrap();
        // Every operation reaches the driver once connected, this one too.
        assert!(d.domain_xml_inactive(&late).is_ok());
        assert!(d.supports(Operation::Start));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
