//! Where log lines go: stderr in the foreground (the journal, under
//! systemd), syslog once daemonised, since stderr is /dev/null then and a
//! background mount must still say why its back end fails.
//!
//! syslog is one datagram per line to /dev/log (RFC 3164 framing, which
//! journald and rsyslog read); no /dev/log means no log, as for any daemon.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::sync::OnceLock;

static SYSLOG: OnceLock<UnixDatagram> = OnceLock::new();

/// The LOG_DAEMON facility, shifted as syslog wants it.
const FACILITY_DAEMON: u8 = 3 << 3;

/// A writer for env_logger: each record is one write (env_logger writes a
/// formatted record whole), sent to syslog or to stderr.
struct Sink;

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match SYSLOG.get() {
            // A lost log line must not fail the operation that logged it.
            Some(sock) => {
                let _ = sock.send(buf.strip_suffix(b"\n").unwrap_or(buf));
                Ok(buf.len())
            }
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

fn severity(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// Starts logging to stderr; RUST_LOG chooses what (default: warnings).
/// When stderr is the journal (systemd sets JOURNAL_STREAM), lines carry a
/// `<N>` priority prefix, which journald reads, and no timestamp of their
/// own.
pub fn init() {
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn,fuser=error"))
        .target(env_logger::Target::Pipe(Box::new(Sink)))
        .format(move |buf, record| {
            if SYSLOG.get().is_some() {
                writeln!(
                    buf,
                    "<{}>domfs[{}]: {}",
                    FACILITY_DAEMON | severity(record.level()),
                    std::process::id(),
                    record.args()
                )
            } else if journal {
                writeln!(buf, "<{}>{}", severity(record.level()), record.args())
            } else {
                writeln!(
                    buf,
                    "[{} {} {}] {}",
                    buf.timestamp(),
                    record.level(),
                    record.target(),
                    record.args()
                )
            }
        })
        .init();
}

/// From now on, log lines go to syslog, when there is one.
pub fn to_syslog() {
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    if sock.connect("/dev/log").is_ok() {
        let _ = SYSLOG.set(sock);
    }
}
