//! The `domfs` command: mount a connection's domains at a directory, as a
//! mount helper (`mount -t fuse.domfs`, fstab) or a systemd service (`-f`).
//!
//! Order matters: arguments and the mount point are checked first, then the
//! process forks (before any thread exists), then the child connects,
//! mounts, and says "ready" only once the mount answers.

mod daemon;
mod logging;
mod mountpoint;
mod retry;

use daemon::Ready;
use domfs::cli;
use domfs::dispatch::Dispatcher;
use domfs::fs::{DomFs, Invalidation, Settings};
use domfs::uri::Uri;
use fuser::{Config, INodeNo, MountOption, Notifier, Session};
use nix::sys::signal::{SigSet, Signal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// How long the new mount may take to answer its first request.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `-o retry` waits for /dev/fuse at boot (see
/// `mountpoint::wait_for_device`).
const FUSE_DEVICE_PATIENCE: Duration = Duration::from_secs(30);

/// FUSE workers at most: as many back-end calls may block at once while
/// other requests are still served.
const WORKERS: usize = 16;

/// Forgets names in the kernel's cache, from a thread of its own.
fn invalidate(notifier: Notifier, rx: mpsc::Receiver<Invalidation>) {
    for inv in rx {
        match notifier.inval_entry(INodeNo(inv.parent), &inv.name) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => {
                log::debug!("invalidating {:?}: {e}", inv.name);
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENODEV | libc::ENOTCONN | libc::EBADF)
                ) {
                    return;
                }
            }
        }
    }
}

/// Opens the connection; with `-o retry`, a back end that does not answer
/// yet is a warning and a driver that keeps trying.
fn connect(uri: &Uri, args: &cli::Args, ready: &Ready) -> Result<Arc<Dispatcher>, String> {
    let opts = &args.opts.connect;
    let opened = if args.opts.retry {
        domfs::connection::ready(uri, opts, std::time::Duration::ZERO)
            .and_then(|()| domfs::connection::open(uri, opts))
    } else {
        domfs::connection::open(uri, opts)
    };
    match opened {
        Ok(d) => Ok(Arc::new(d)),
        // Waiting cannot give a URI this build has no drivers for.
        Err(e) if args.opts.retry && !e.is_not_supported() => {
            log::warn!(
                "{uri}: {e}; mounting anyway (-o retry): files fail with ENOTCONN until \
                 it connects"
            );
            ready.status(&format!("waiting for {uri}: {e}"));
            let status_uri = uri.to_string();
            let foreground = matches!(ready, Ready::Foreground);
            retry::start(uri.clone(), opts.clone(), e, move || {
                if foreground {
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&format!(
                        "serving {status_uri}"
                    ))]);
                }
            })
        }
        Err(e) => Err(format!("{uri}: {e}")),
    }
}

/// Waits until the mount answers a stat of its root, so that whoever runs
/// next (the shell after `mount`, a unit ordered after ours) finds it served.
fn probe(mountpoint: &Path) -> Result<(), String> {
    let (tx, rx) = mpsc::channel();
    let path = mountpoint.to_path_buf();
    std::thread::Builder::new()
        .name("probe".into())
        .spawn(move || {
            let _ = tx.send(std::fs::metadata(&path).map(|m| m.is_dir()));
        })
        .map_err(|e| format!("starting a thread: {e}"))?;
    match rx.recv_timeout(PROBE_TIMEOUT) {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) => Err("the new mount's root is not a directory".into()),
        Ok(Err(e)) => Err(format!("the new mount does not answer: {e}")),
        Err(_) => Err(format!(
            "the new mount did not answer within {} s",
            PROBE_TIMEOUT.as_secs()
        )),
    }
}

fn run(uri: Uri, mountpoint: PathBuf, args: cli::Args, ready: &mut Ready) -> Result<(), String> {
    // Signals are taken by this thread alone (sigwait), so they are blocked
    // before any other thread exists (drivers and retry start some) and
    // every thread inherits the mask.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGHUP);
    signals.add(Signal::SIGUSR1);
    signals
        .thread_block()
        .map_err(|e| format!("blocking signals: {e}"))?;

    let dispatch = connect(&uri, &args, ready)?;
    let read_only = args.opts.connect.read_only;
    let fs = DomFs::new(
        dispatch,
        Settings {
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            mountpoint: mountpoint.clone(),
        },
    );
    let (tx, rx) = mpsc::channel();
    fs.set_invalidations(tx);
    // Wakes this thread when the session ends from outside (fusermount -u,
    // umount).
    fs.on_session_end(Box::new(|| {
        let _ = nix::sys::signal::kill(nix::unistd::getpid(), Signal::SIGUSR1);
    }));
    let feed = fs.feed();
    let pool = fs.pool();

    let mut options = vec![
        MountOption::FSName(args.opts.fsname.clone().unwrap_or_else(|| uri.to_string())),
        MountOption::Subtype(args.opts.subtype.clone()),
        MountOption::DefaultPermissions,
        if read_only {
            MountOption::RO
        } else {
            MountOption::RW
        },
    ];
    // fuser's own mount(2), used as root, gives the kernel no subtype, so
    // /proc/mounts would say `fuse` where fstab and systemd say fuse.domfs;
    // fusermount3 (everyone else) passes Subtype itself.
    if nix::unistd::geteuid().is_root() {
        options.push(MountOption::CUSTOM(format!(
            "subtype={}",
            args.opts.subtype
        )));
    }
    if args.opts.auto_unmount {
        options.push(MountOption::AutoUnmount);
    }
    options.extend(args.opts.kernel.iter().cloned());
    let mut config = Config::default();
    config.mount_options = options;
    config.acl = args.opts.acl;
    // Most of them park while requests finish quickly (see fs::pool).
    config.n_threads = Some(WORKERS);

    let shown = mountpoint.display();
    if args.opts.retry {
        mountpoint::wait_for_device(Path::new(mountpoint::FUSE_DEVICE), FUSE_DEVICE_PATIENCE);
    }
    let session = Session::new(fs, &mountpoint, &config)
        .map_err(|e| format!("cannot mount {uri} at {shown}: {e}"))?;
    let device = std::os::fd::AsFd::as_fd(&session)
        .try_clone_to_owned()
        .map_err(|e| format!("duplicating the FUSE descriptor: {e}"))?;
    let connection = device
        .try_clone()
        .map_err(|e| format!("duplicating the FUSE descriptor: {e}"))?;
    pool.start(WORKERS, device)
        .map_err(|e| format!("starting a thread: {e}"))?;
    let notifier = session.notifier();
    feed.set_notifier(session.notifier());
    std::thread::Builder::new()
        .name("invalidate".into())
        .spawn(move || invalidate(notifier, rx))
        .map_err(|e| format!("starting a thread: {e}"))?;
    // fuser's own thread serves; the mount's handle stays here, so the
    // mount goes only when this thread says (see the end).
    let serving = session
        .spawn()
        .map_err(|e| format!("starting a thread: {e}"))?;
    if let Err(e) = probe(&mountpoint) {
        let _ = serving.umount_and_join();
        return Err(format!("{uri} at {shown}: {e}"));
    }
    log::info!("mounted {uri} at {shown}");
    ready.serving(&format!("serving {uri} at {shown}"));

    let signal = signals
        .wait()
        .map_err(|e| format!("waiting for signals: {e}"))?;
    if signal != Signal::SIGUSR1 {
        log::info!("{signal}: unmounting {shown}");
        ready.stopping();
        return serving
            .umount_and_join()
            .map_err(|e| format!("unmounting {shown}: {e}"));
    }
    if domfs::fs::pool::ended(&connection) {
        // Unmounted from outside. fuser 0.18 unmounts the path again when
        // the mount's handle is dropped if the device polls as an error,
        // which is when the connection has ended (an inverted test, fixed in
        // fuser's #703, not released): a new mount at the same path, a
        // restart's, would be unmounted on the way out. So the handle is
        // never dropped; the process ends here.
        std::mem::forget(serving);
        return Ok(());
    }
    // The session ended by itself, its connection alive: an error.
    serving
        .umount_and_join()
        .map_err(|e| format!("session ended with an error: {e}"))?;
    Err("the session ended with the mount still there".into())
}

fn main() -> ExitCode {
    daemon::report_crashes();
    logging::init();
    let args = match cli::parse(std::env::args_os()) {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            eprintln!("domfs: {e}\nTry 'domfs --help'.");
            return ExitCode::from(2);
        }
        Err(e) => e.exit(),
    };
    for w in &args.opts.warnings {
        eprintln!("domfs: warning: {w}");
    }
    let uri = match Uri::parse(&args.uri) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("domfs: {e}");
            return ExitCode::from(2);
        }
    };
    let mountpoint = match mountpoint::prepare(&args.mountpoint, &args.opts.subtype) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("domfs: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut ready = if args.foreground {
        Ready::Foreground
    } else {
        match daemon::detach() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("domfs: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    match run(uri, mountpoint, args, &mut ready) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            ready.failed(&e);
            ExitCode::FAILURE
        }
    }
}
