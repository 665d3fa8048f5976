//! The command line, as `mount` and its helpers use it:
//! `domfs [-f] [-o OPT[,OPT...]] URI MOUNTPOINT` (Debian's `mount.fuse3`
//! runs `domfs SOURCE MOUNTPOINT -o OPTS`).
//!
//! Every `-o` option lives in one table, `OPTIONS`: what goes to the kernel
//! and fuser, what goes to the connection, what domfs does itself. Options
//! that belong to mount(8), fstab or systemd are ignored silently; any other
//! unknown option is a warning, never a failure, as sshfs does. Parsing only:
//! nothing here touches the system.

use crate::connection::ConnectOptions;
use clap::{value_parser, Arg, ArgAction, Command};
use fuser::{MountOption, SessionACL};
use std::ffi::OsString;
use std::path::PathBuf;

/// A parsed command line.
#[derive(Debug)]
pub struct Args {
    pub uri: String,
    pub mountpoint: PathBuf,
    pub foreground: bool,
    pub opts: Options,
}

/// What the `-o` options asked for.
#[derive(Debug, PartialEq)]
pub struct Options {
    pub connect: ConnectOptions,
    pub acl: SessionACL,
    /// Passed to the kernel as given, in order (the last of a pair wins).
    pub kernel: Vec<MountOption>,
    pub auto_unmount: bool,
    /// The source shown in /proc/mounts; the URI by default.
    pub fsname: Option<String>,
    /// The kernel sees `fuse.SUBTYPE`.
    pub subtype: String,
    /// Mount even when no back end answers yet, and keep connecting.
    pub retry: bool,
    /// One line per option that was not understood.
    pub warnings: Vec<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            connect: ConnectOptions::default(),
            acl: SessionACL::Owner,
            kernel: Vec::new(),
            auto_unmount: false,
            fsname: None,
            subtype: "domfs".into(),
            retry: false,
            warnings: Vec::new(),
        }
    }
}

/// What one option does: a flag, or `key=VALUE` with a value.
enum Effect {
    Flag(fn(&mut Options)),
    /// With the placeholder the help shows for the value.
    Value(&'static str, fn(&mut Options, &str)),
}

struct Opt {
    /// The option's name; a `Value` option is written `name=VALUE`.
    name: &'static str,
    effect: Effect,
    help: &'static str,
}

const fn flag(name: &'static str, f: fn(&mut Options), help: &'static str) -> Opt {
    Opt {
        name,
        effect: Effect::Flag(f),
        help,
    }
}

const fn value(
    name: &'static str,
    meta: &'static str,
    f: fn(&mut Options, &str),
    help: &'static str,
) -> Opt {
    Opt {
        name,
        effect: Effect::Value(meta, f),
        help,
    }
}

/// Every `-o` option domfs understands. The help text and the man page
/// follow this table.
const OPTIONS: &[Opt] = &[
    flag(
        "ro",
        |o| o.connect.read_only = true,
        "read-only: every write fails with EROFS",
    ),
    flag(
        "rw",
        |o| o.connect.read_only = false,
        "read-write (the default)",
    ),
    flag(
        "allow_other",
        |o| o.acl = SessionACL::All,
        "let other users in (permission bits still apply)",
    ),
    flag(
        "allow_root",
        |o| o.acl = SessionACL::RootAndOwner,
        "let root in besides the mounting user",
    ),
    flag(
        "default_permissions",
        |_| {},
        "the kernel checks permission bits (always on)",
    ),
    flag(
        "auto_unmount",
        |o| o.auto_unmount = true,
        "unmount when domfs dies (needs allow_other or allow_root)",
    ),
    flag("dev", |o| o.kernel.push(MountOption::Dev), "kernel flag"),
    flag(
        "nodev",
        |o| o.kernel.push(MountOption::NoDev),
        "kernel flag",
    ),
    flag("suid", |o| o.kernel.push(MountOption::Suid), "kernel flag"),
    flag(
        "nosuid",
        |o| o.kernel.push(MountOption::NoSuid),
        "kernel flag",
    ),
    flag("exec", |o| o.kernel.push(MountOption::Exec), "kernel flag"),
    flag(
        "noexec",
        |o| o.kernel.push(MountOption::NoExec),
        "kernel flag",
    ),
    flag(
        "atime",
        |o| o.kernel.push(MountOption::Atime),
        "kernel flag",
    ),
    flag(
        "noatime",
        |o| o.kernel.push(MountOption::NoAtime),
        "kernel flag",
    ),
    flag("sync", |o| o.kernel.push(MountOption::Sync), "kernel flag"),
    flag(
        "async",
        |o| o.kernel.push(MountOption::Async),
        "kernel flag",
    ),
    flag(
        "dirsync",
        |o| o.kernel.push(MountOption::DirSync),
        "kernel flag",
    ),
    value(
        "fsname",
        "NAME",
        |o, v| o.fsname = Some(v.to_string()),
        "the source shown in /proc/mounts (default: the URI)",
    ),
    value(
        "subtype",
        "NAME",
        |o, v| o.subtype = v.to_string(),
        "the type shown as fuse.SUBTYPE (default: domfs)",
    ),
    value(
        "xenstore",
        "PATH",
        |o, v| o.connect.xenstore = Some(v.to_string()),
        "xen:///: xenstored's socket or the xenbus device",
    ),
    value(
        "xend",
        "ADDRESS",
        |o, v| o.connect.xend = Some(v.to_string()),
        "xen:///: unix:/PATH or http://HOST:PORT",
    ),
    value(
        "privcmd",
        "PATH",
        |o, v| o.connect.privcmd = Some(v.to_string()),
        "xen:///: the privcmd device, or none",
    ),
    value(
        "libxl",
        "none",
        |o, v| o.connect.libxl = Some(v.to_string()),
        "xen:///: none goes without libxenlight even in dom0",
    ),
    value(
        "state_dir",
        "PATH",
        |o, v| o.connect.state_dir = Some(v.to_string()),
        "xen:///: where the libxl driver keeps definitions (default /var/lib/domfs/xen)",
    ),
    value(
        "backend_devices",
        "DIR",
        |o, v| o.connect.backend_devices = Some(v.to_string()),
        "xen:///: where blkback's disk counters are (default /sys/bus/xen-backend/devices)",
    ),
    value(
        "net_dev",
        "FILE",
        |o, v| o.connect.net_dev = Some(v.to_string()),
        "xen:///: where netback's interface counters are (default /proc/net/dev)",
    ),
    value(
        "poll_ms",
        "N",
        |o, v| match v.parse::<u64>() {
            Ok(n) => o.connect.poll_ms = Some(n),
            Err(_) => o
                .warnings
                .push(format!("poll_ms={v} is not a number of milliseconds; ignored")),
        },
        "xen:///: how often the hypervisor is asked for changes no watch reports (default 500; 0: never)",
    ),
    flag(
        "retry",
        |o| o.retry = true,
        "mount even if no back end answers yet; files fail with ENOTCONN until one does",
    ),
];

/// Options of mount(8), fstab and systemd that are not for the filesystem.
const IGNORED: &[&str] = &[
    "defaults", "auto", "noauto", "user", "users", "nouser", "nofail", "_netdev",
];
const IGNORED_PREFIXES: &[&str] = &["x-", "X-", "comment="];

/// Applies one `-o` item. Err for a known option in the wrong shape (a
/// value where none belongs, or none where one must be).
fn apply(opts: &mut Options, item: &str) -> Result<(), String> {
    if IGNORED.contains(&item) || IGNORED_PREFIXES.iter().any(|p| item.starts_with(p)) {
        return Ok(());
    }
    let (name, val) = match item.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (item, None),
    };
    let Some(opt) = OPTIONS.iter().find(|o| o.name == name) else {
        opts.warnings
            .push(format!("unknown mount option '{item}' ignored"));
        return Ok(());
    };
    match (&opt.effect, val) {
        (Effect::Flag(f), None) => f(opts),
        (Effect::Value(_, f), Some(v)) if !v.is_empty() => f(opts, v),
        (Effect::Flag(_), Some(_)) => {
            return Err(format!("mount option '{name}' takes no value"));
        }
        (Effect::Value(meta, _), _) => {
            return Err(format!(
                "mount option '{name}' needs a value: {name}={meta}"
            ));
        }
    }
    Ok(())
}

/// The `-o` part of `--help`, from the table.
fn options_help() -> String {
    let mut text = String::from("Options (-o, comma-separated; repeatable):\n");
    let kernel: Vec<&str> = OPTIONS
        .iter()
        .filter(|o| o.help == "kernel flag")
        .map(|o| o.name)
        .collect();
    for o in OPTIONS.iter().filter(|o| o.help != "kernel flag") {
        let name = match o.effect {
            Effect::Flag(_) => o.name.to_string(),
            Effect::Value(meta, _) => format!("{}={meta}", o.name),
        };
        text.push_str(&format!("  {name:<20} {}\n", o.help));
    }
    text.push_str(&format!(
        "  {}\n                       passed to the kernel as usual\n",
        kernel.join(",")
    ));
    text.push_str(&format!(
        "Ignored (for mount and fstab): {}, {}*\n",
        IGNORED.join(", "),
        IGNORED_PREFIXES.join("*, ")
    ));
    text.push_str(
        "\nLogging: RUST_LOG=info (default warn); stderr with -f, syslog without.\n\
         See domfs(8).",
    );
    text
}

fn command() -> Command {
    Command::new("domfs")
        .version(env!("CARGO_PKG_VERSION"))
        .about(
            "Shows the domains (virtual machines) of the host that URI names as a \
             directory of small text files at MOUNTPOINT. Returns once the filesystem \
             is mounted and serving, and serves it in the background; SIGINT or \
             SIGTERM unmounts.",
        )
        .arg(
            Arg::new("foreground")
                .short('f')
                .action(ArgAction::SetTrue)
                .help("Stay in the foreground (for systemd and debugging)"),
        )
        .arg(
            Arg::new("options")
                .short('o')
                .value_name("OPT[,OPT...]")
                .action(ArgAction::Append)
                .help("Mount options, listed below"),
        )
        .arg(
            Arg::new("uri")
                .value_name("URI")
                .required(true)
                .help("The host: test:///default, test:///ABSOLUTE/PATH.xml or xen:///"),
        )
        .arg(
            Arg::new("mountpoint")
                .value_name("MOUNTPOINT")
                .help("An existing directory")
                .required(true)
                .value_parser(value_parser!(PathBuf)),
        )
        .after_help(options_help())
}

/// Parses the command line. A clap error (including --help and --version)
/// is returned for the caller to print and exit with; a bad mount option is
/// an error string.
pub fn parse<I, T>(args: I) -> Result<Result<Args, String>, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let m = command().try_get_matches_from(args)?;
    let mut opts = Options::default();
    if let Some(lists) = m.get_many::<String>("options") {
        for list in lists {
            for item in list.split(',').filter(|i| !i.is_empty()) {
                if let Err(e) = apply(&mut opts, item) {
                    return Ok(Err(e));
                }
            }
        }
    }
    if opts.auto_unmount && opts.acl == SessionACL::Owner {
        return Ok(Err(
            "auto_unmount needs allow_other or allow_root (fusermount3 must be let in)".into(),
        ));
    }
    let (Some(uri), Some(mountpoint)) = (
        m.get_one::<String>("uri"),
        m.get_one::<PathBuf>("mountpoint"),
    ) else {
        return Ok(Err("expected URI and MOUNTPOINT".into()));
    };
    Ok(Ok(Args {
        uri: uri.clone(),
        mountpoint: mountpoint.clone(),
        foreground: m.get_flag("foreground"),
        opts,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse_ok(args: &[&str]) -> Args {
        let mut all = vec!["domfs"];
        all.extend_from_slice(args);
        parse(all).unwrap().unwrap()
    }

    fn parse_err(args: &[&str]) -> String {
        let mut all = vec!["domfs"];
        all.extend_from_slice(args);
        match parse(all) {
            Ok(Ok(_)) => panic!("{args:?} parsed"),
            Ok(Err(e)) => e,
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn mount_helper_order_is_understood() {
        // mount.fuse3 puts -o after the positional arguments.
        let a = parse_ok(&["xen:///", "/domains", "-o", "rw,allow_other,dev,suid"]);
        assert_eq!(
            (a.uri.as_str(), a.mountpoint.to_str()),
            ("xen:///", Some("/domains"))
        );
        assert!(!a.foreground);
        assert_eq!(a.opts.acl, SessionACL::All);
        assert_eq!(a.opts.kernel, vec![MountOption::Dev, MountOption::Suid]);
        assert!(a.opts.warnings.is_empty());
    }

    #[test]
    fn options_are_understood() {
        let a = parse_ok(&[
            "-f",
            "-o",
            "ro,allow_root,noatime",
            "-ofsname=x,subtype=y",
            "u",
            "m",
        ]);
        assert!(a.foreground);
        assert!(a.opts.connect.read_only);
        assert_eq!(a.opts.acl, SessionACL::RootAndOwner);
        assert_eq!(a.opts.kernel, vec![MountOption::NoAtime]);
        assert_eq!(a.opts.fsname.as_deref(), Some("x"));
        assert_eq!(a.opts.subtype, "y");
        let a = parse_ok(&["-o", "ro", "-o", "rw", "u", "m"]);
        assert!(!a.opts.connect.read_only, "the last of ro/rw wins");
        let a = parse_ok(&[
            "-o",
            "xenstore=/run/xenstored/socket,xend=http://h:8000,privcmd=none,retry,\
             libxl=none,state_dir=/srv/defs,backend_devices=/t/sys,net_dev=/t/net_dev",
            "xen:///",
            "/m",
        ]);
        assert_eq!(
            a.opts.connect.xenstore.as_deref(),
            Some("/run/xenstored/socket")
        );
        assert_eq!(a.opts.connect.xend.as_deref(), Some("http://h:8000"));
        assert_eq!(a.opts.connect.privcmd.as_deref(), Some("none"));
        assert_eq!(a.opts.connect.libxl.as_deref(), Some("none"));
        assert_eq!(a.opts.connect.state_dir.as_deref(), Some("/srv/defs"));
        assert_eq!(a.opts.connect.backend_devices.as_deref(), Some("/t/sys"));
        assert_eq!(a.opts.connect.net_dev.as_deref(), Some("/t/net_dev"));
        assert!(a.opts.retry);
    }

    #[test]
    fn fstab_and_systemd_options_are_ignored_silently() {
        let a = parse_ok(&[
            "-o",
            "defaults,auto,noauto,user,users,nouser,nofail,_netdev,x-systemd.automount,\
             X-mount.mkdir=0755,comment=systemd.foo",
            "u",
            "m",
        ]);
        assert_eq!(a.opts, Options::default());
    }

    #[test]
    fn unknown_options_warn_without_failing() {
        let a = parse_ok(&["-o", "bogus,allow_other,big_writes=1", "u", "m"]);
        assert_eq!(
            a.opts.warnings,
            vec![
                "unknown mount option 'bogus' ignored",
                "unknown mount option 'big_writes=1' ignored"
            ]
        );
        assert_eq!(a.opts.acl, SessionACL::All);
    }

    #[test]
    fn mistakes_are_explained() {
        assert!(parse_err(&["-o", "ro=1", "u", "m"]).contains("'ro' takes no value"));
        assert!(parse_err(&["-o", "xend", "u", "m"]).contains("xend=ADDRESS"));
        assert!(parse_err(&["-o", "xend=", "u", "m"]).contains("xend=ADDRESS"));
        assert!(parse_err(&["-o", "auto_unmount", "u", "m"]).contains("allow_other"));
        assert!(parse_err(&["u"]).contains("MOUNTPOINT"));
        assert!(parse_err(&["-x", "u", "m"]).contains("-x"));
        assert!(parse_err(&["u", "m", "-o"]).contains("-o"));
    }

    #[test]
    fn help_lists_every_option_of_the_table() {
        let help = command().render_long_help().to_string();
        for o in OPTIONS {
            assert!(help.contains(o.name), "{} missing from --help", o.name);
        }
    }
}
