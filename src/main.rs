//! The `domfs` command: mount a connection's domains at a directory.

use domfs::connection::ConnectOptions;
use domfs::dispatch::Dispatcher;
use domfs::fs::{DomFs, Invalidation, Settings};
use domfs::uri::Uri;
use fuser::{Config, INodeNo, MountOption, Notifier, Session, SessionACL};
use nix::sys::signal::{SigSet, Signal};
use std::process::ExitCode;
use std::sync::mpsc;

const USAGE: &str = "\
usage: domfs [-f] [-o OPT[,OPT...]] URI MOUNTPOINT
       domfs --help | --version

Shows the domains (virtual machines) of the host that URI names as a
directory of small text files at MOUNTPOINT. Runs in the foreground;
SIGINT or SIGTERM unmounts and exits.

URI:  test:///default          the embedded test host (no hypervisor needed)
      test:///PATH/host.xml    a libvirt test-driver host file
      xen:///                  the local Xen host (not in this build yet)

Options (-o, comma-separated):
  ro               read-only: every write fails with EROFS
  rw               read-write (the default)
  allow_other      let other users in (permission bits still apply)
  allow_root       let root in besides the mounting user
  nosuid,nodev,noexec,noatime,suid,dev,exec,atime,sync,async,dirsync
                   passed to the kernel as usual
  xenstore=PATH    xen:///: xenstored's socket or the xenbus device
  xend=URL         xen:///: unix:/PATH or http://HOST:PORT
  privcmd=PATH     xen:///: the privcmd device, or none
  -f               stay in the foreground (always, for now)

Logging: RUST_LOG=info (default warn) prints one line per failed operation.";

struct Args {
    uri: String,
    mountpoint: String,
    read_only: bool,
    acl: SessionACL,
    kernel_options: Vec<MountOption>,
    xenstore: Option<String>,
    xend: Option<String>,
    privcmd: Option<String>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut positional = Vec::new();
    let mut read_only = false;
    let mut acl = SessionACL::Owner;
    let mut kernel_options = Vec::new();
    let (mut xenstore, mut xend, mut privcmd) = (None, None, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            "-V" | "--version" => {
                println!("domfs {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            "-f" => {}
            "-o" => {
                let list = args.next().ok_or("-o needs a list of options")?;
                for opt in list.split(',').filter(|o| !o.is_empty()) {
                    match opt {
                        "ro" => read_only = true,
                        "rw" => read_only = false,
                        "allow_other" => acl = SessionACL::All,
                        "allow_root" => acl = SessionACL::RootAndOwner,
                        "default_permissions" => {}
                        "nosuid" => kernel_options.push(MountOption::NoSuid),
                        "suid" => kernel_options.push(MountOption::Suid),
                        "nodev" => kernel_options.push(MountOption::NoDev),
                        "dev" => kernel_options.push(MountOption::Dev),
                        "noexec" => kernel_options.push(MountOption::NoExec),
                        "exec" => kernel_options.push(MountOption::Exec),
                        "noatime" => kernel_options.push(MountOption::NoAtime),
                        "atime" => kernel_options.push(MountOption::Atime),
                        "sync" => kernel_options.push(MountOption::Sync),
                        "async" => kernel_options.push(MountOption::Async),
                        "dirsync" => kernel_options.push(MountOption::DirSync),
                        o if o.starts_with("xenstore=") => xenstore = Some(o[9..].to_string()),
                        o if o.starts_with("xend=") => xend = Some(o[5..].to_string()),
                        o if o.starts_with("privcmd=") => privcmd = Some(o[8..].to_string()),
                        other => return Err(format!("unknown mount option '{other}'")),
                    }
                }
            }
            s if s.starts_with('-') && s.len() > 1 => {
                return Err(format!("unknown flag '{s}'"));
            }
            _ => positional.push(a),
        }
    }
    let [uri, mountpoint]: [String; 2] = positional.try_into().map_err(|p: Vec<String>| {
        format!("expected URI and MOUNTPOINT, got {} argument(s)", p.len())
    })?;
    Ok(Some(Args {
        uri,
        mountpoint,
        read_only,
        acl,
        kernel_options,
        xenstore,
        xend,
        privcmd,
    }))
}

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

fn run(args: Args) -> Result<(), String> {
    let uri = Uri::parse(&args.uri)?;
    let opts = ConnectOptions {
        read_only: args.read_only,
        xenstore: args.xenstore.clone(),
        xend: args.xend.clone(),
        privcmd: args.privcmd.clone(),
    };
    let dispatch: Dispatcher =
        domfs::connection::open(&uri, &opts).map_err(|e| format!("{uri}: {e}"))?;
    let mountpoint = std::fs::canonicalize(&args.mountpoint)
        .map_err(|e| format!("mount point {}: {e}", args.mountpoint))?;
    let fs = DomFs::new(
        dispatch,
        Settings {
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            mountpoint,
        },
    );
    let (tx, rx) = mpsc::channel();
    fs.set_invalidations(tx);

    let mut options = vec![
        MountOption::FSName(uri.to_string()),
        MountOption::Subtype("domfs".into()),
        MountOption::DefaultPermissions,
        if args.read_only {
            MountOption::RO
        } else {
            MountOption::RW
        },
    ];
    options.extend(args.kernel_options);
    let mut config = Config::default();
    config.mount_options = options;
    config.acl = args.acl;
    config.n_threads = Some(4);

    // Signals are taken by this thread alone (sigwait), so they are blocked
    // before any other thread exists and every thread inherits the mask.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGHUP);
    signals.add(Signal::SIGUSR1);
    signals
        .thread_block()
        .map_err(|e| format!("blocking signals: {e}"))?;

    let mut session = Session::new(fs, &args.mountpoint, &config)
        .map_err(|e| format!("cannot mount {} at {}: {e}", uri, args.mountpoint))?;
    let notifier = session.notifier();
    let mut unmounter = session.unmount_callable();
    std::thread::Builder::new()
        .name("invalidate".into())
        .spawn(move || invalidate(notifier, rx))
        .map_err(|e| format!("starting a thread: {e}"))?;
    let serve = std::thread::Builder::new()
        .name("fuse".into())
        .spawn(move || {
            let result = session.run();
            // Wake the main thread when the mount ends from outside
            // (fusermount -u, umount).
            let _ = nix::sys::signal::kill(nix::unistd::getpid(), Signal::SIGUSR1);
            result
        })
        .map_err(|e| format!("starting a thread: {e}"))?;
    log::info!("mounted {uri} at {}", args.mountpoint);

    let signal = signals
        .wait()
        .map_err(|e| format!("waiting for signals: {e}"))?;
    if signal != Signal::SIGUSR1 {
        log::info!("{signal}: unmounting {}", args.mountpoint);
        unmounter
            .unmount()
            .map_err(|e| format!("unmounting {}: {e}", args.mountpoint))?;
    }
    match serve.join() {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("session ended with an error: {e}")),
        Err(_) => Err("the filesystem thread panicked".into()),
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn,fuser=error"))
        .init();
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("domfs: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("domfs: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Args>, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn options_are_understood() {
        let a = parse(&[
            "-f",
            "-o",
            "ro,allow_other,noatime",
            "test:///default",
            "/mnt",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            (a.uri.as_str(), a.mountpoint.as_str()),
            ("test:///default", "/mnt")
        );
        assert!(a.read_only);
        assert_eq!(a.acl, SessionACL::All);
        assert_eq!(a.kernel_options, vec![MountOption::NoAtime]);
        let a = parse(&["-o", "ro", "-o", "rw", "u", "m"]).unwrap().unwrap();
        assert!(!a.read_only, "the last of ro/rw wins");
    }

    #[test]
    fn mistakes_are_explained() {
        assert!(parse(&["-o", "bogus", "u", "m"])
            .err()
            .unwrap()
            .contains("unknown mount option 'bogus'"));
        assert!(parse(&["u"]).err().unwrap().contains("got 1 argument"));
        assert!(parse(&["-x", "u", "m"])
            .err()
            .unwrap()
            .contains("unknown flag '-x'"));
        assert!(parse(&["-o"]).err().unwrap().contains("-o needs"));
    }
}
