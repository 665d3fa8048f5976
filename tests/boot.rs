//! Mounting at boot, as an administrator does: `mount -t fuse.domfs` and an
//! fstab line through Debian's mount.fuse3, readiness, recovery from a
//! killed instance, a refused double mount, `-o retry`, the systemd units
//! (`systemd-analyze verify`), the man page (`man --warnings`), and the
//! installer.
//!
//! mount(8) runs its helpers with an empty environment, so mount.fuse3's
//! /bin/sh finds `domfs` only on its default PATH (/usr/local/sbin first).
//! Rather than install into the system, each such test installs into a
//! temporary PREFIX and runs in a private mount namespace (`unshare`) where
//! that PREFIX's sbin is bind-mounted over /usr/local/sbin; the namespace,
//! its mounts and its processes end with the test, leaving nothing behind.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const DOMFS: &str = env!("CARGO_BIN_EXE_domfs");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const STALE: &str = "Transport endpoint is not connected";
/// Every option mount, fstab and systemd may hand domfs that it must ignore.
const IGNORED: &str = "defaults,auto,noauto,user,users,nouser,nofail,_netdev,\
                       x-systemd.automount,X-mount.mkdir=0755,comment=systemd.want";

/// Detaches whatever is still mounted at a directory when a test ends,
/// failed or not, so that a daemon mounted in this namespace never outlives
/// its test (a daemon exits when its mount goes).
struct Unmount<'a>(&'a Path);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        while is_mountpoint(self.0) {
            if !Command::new("umount")
                .arg("-l")
                .arg(self.0)
                .status()
                .is_ok_and(|s| s.success())
            {
                break;
            }
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// scripts/install into `prefix` with the test's binary.
fn install(prefix: &Path) -> Output {
    Command::new(format!("{ROOT}/scripts/install"))
        .env("PREFIX", prefix)
        .env("DOMFS_BIN", DOMFS)
        .output()
        .unwrap()
}

/// A private mount namespace in which /usr/local/sbin holds the test's
/// domfs. Dropping it kills every process in it, which ends its mounts.
struct Ns {
    holder: Child,
    ns: PathBuf,
    _prefix: TempDir,
}

impl Ns {
    /// None (with the reason printed) where the tools are missing outside CI.
    fn new() -> Option<Ns> {
        Ns::with_setup("", Path::new("/"))
    }

    /// A namespace in which `setup`, a shell fragment ending in `&&`, runs
    /// first with `$2` = `arg`.
    fn with_setup(setup: &str, arg: &Path) -> Option<Ns> {
        for tool in ["unshare", "nsenter", "mount"] {
            if !have_tool(tool) {
                return None;
            }
        }
        // mount(8) looks for its helpers in /sbin whatever PATH says.
        if !Path::new("/sbin/mount.fuse3").exists() && !have_tool("mount.fuse3") {
            return None;
        }
        let prefix = TempDir::new("prefix");
        let out = install(&prefix.path().join("usr/local"));
        assert!(out.status.success(), "install: {}", text(&out.stderr));
        let sbin = prefix.path().join("usr/local/sbin");
        let mut holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(format!(
                "mount --bind \"$1\" /usr/local/sbin && {setup} echo ready && exec sleep 600"
            ))
            .arg("sh")
            .arg(&sbin)
            .arg(arg)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "ready\n", "could not set up the mount namespace");
        let ns = PathBuf::from(format!("/proc/{}/ns/mnt", holder.id()));
        Some(Ns {
            holder,
            ns,
            _prefix: prefix,
        })
    }

    /// `sh -c SCRIPT` inside the namespace, under a deadline, so that a
    /// command that does not return (a mount that never says "ready", a
    /// daemon that keeps our pipes open) fails the test instead of hanging it.
    fn sh(&self, script: &str) -> Output {
        Command::new("timeout")
            .arg("60")
            .arg("nsenter")
            .arg(format!("--mount={}", self.ns.display()))
            .args(["--", "sh", "-c", script])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn sh_ok(&self, script: &str) -> Output {
        let out = self.sh(script);
        assert!(
            out.status.success(),
            "{script}: exit {}; stdout: {}; stderr: {}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        out
    }

    /// The processes in this namespace (other than the holder).
    fn processes(&self) -> Vec<(u32, String)> {
        let me = std::fs::read_link(&self.ns).unwrap();
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if pid == self.holder.id() {
                continue;
            }
            if std::fs::read_link(entry.path().join("ns/mnt"))
                .ok()
                .as_ref()
                == Some(&me)
            {
                let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                found.push((pid, comm.trim().to_string()));
            }
        }
        found
    }

    fn domfs_pids(&self) -> Vec<u32> {
        self.processes()
            .into_iter()
            .filter(|(_, c)| c == "domfs")
            .map(|(p, _)| p)
            .collect()
    }

    /// Waits until no domfs runs in the namespace.
    fn wait_no_domfs(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.domfs_pids().is_empty() {
            assert!(
                Instant::now() < deadline,
                "domfs still running after unmount"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The mounts at `dir` in the namespace, topmost last: "TYPE SOURCE".
    fn mounts_at(&self, dir: &Path) -> Vec<String> {
        let out = self.sh_ok("cat /proc/self/mountinfo");
        let want = dir.to_str().unwrap().replace(' ', "\\040");
        text(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (left, right) = l.split_once(" - ")?;
                (left.split(' ').nth(4)? == want)
                    .then(|| right.split(' ').take(2).collect::<Vec<_>>().join(" "))
            })
            .collect()
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        for (pid, _) in self.processes() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

#[test]
fn mount_t_fuse_domfs_returns_once_serving_and_umount_ends_it() {
    let dir = TempDir::new("mnt");
    let Some(ns) = Ns::new() else { return };
    let d = quote(dir.path().to_str().unwrap());
    // `cat` right after `mount` returns: the mount must already answer.
    let out = ns.sh_ok(&format!(
        "mount -t fuse.domfs test:///default {d} -o allow_other,noatime && cat {d}/test/state"
    ));
    assert_eq!(text(&out.stdout), "running\n");
    assert_eq!(text(&out.stderr), "", "mount printed something");
    assert_eq!(ns.mounts_at(dir.path()), vec!["fuse.domfs test:///default"]);
    assert_eq!(ns.domfs_pids().len(), 1, "one daemon serves the mount");
    let out = ns.sh_ok(&format!("ls {d}"));
    assert!(text(&out.stdout).contains("node\n"));
    ns.sh_ok(&format!("umount {d}"));
    assert!(ns.mounts_at(dir.path()).is_empty());
    ns.wait_no_domfs();
}

#[test]
fn an_fstab_line_with_every_ignored_option_mounts() {
    let dir = TempDir::new("mnt");
    let etc = TempDir::new("etc");
    let Some(ns) = Ns::new() else { return };
    let fstab = etc.path().join("fstab");
    std::fs::write(
        &fstab,
        format!(
            "# a test fstab\ntest:///default {} fuse.domfs {IGNORED},allow_other 0 0\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let d = quote(dir.path().to_str().unwrap());
    let out = ns.sh_ok(&format!(
        "mount -T {} {d} && cat {d}/test/state",
        quote(fstab.to_str().unwrap())
    ));
    assert_eq!(text(&out.stdout), "running\n");
    assert_eq!(text(&out.stderr), "", "no warning for fstab's options");
    ns.sh_ok(&format!("umount {d}"));
    assert!(ns.mounts_at(dir.path()).is_empty());
    ns.wait_no_domfs();
}

/// mount and mount.fuse3 strip some of these before domfs sees them, so
/// domfs gets them all directly too, and must not even warn.
#[test]
fn ignored_options_given_directly_draw_no_warning_but_unknown_ones_do() {
    let dir = TempDir::new("mnt");
    let _unmount = Unmount(dir.path());
    let out = Command::new("timeout")
        .args(["60", DOMFS, "test:///default"])
        .arg(dir.path())
        .args(["-o", IGNORED, "-o", "bogus_option"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr, "domfs: warning: unknown mount option 'bogus_option' ignored\n",
        "stderr: {stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("test/state")).unwrap(),
        "running\n"
    );
    let um = Command::new("umount").arg(dir.path()).status().unwrap();
    assert!(um.success());
    assert!(!is_mountpoint(dir.path()));
}

#[test]
fn a_killed_instance_does_not_block_the_next_mount() {
    let dir = TempDir::new("mnt");
    let Some(ns) = Ns::new() else { return };
    let d = quote(dir.path().to_str().unwrap());
    ns.sh_ok(&format!("mount -t fuse.domfs test:///default {d}"));
    let pids = ns.domfs_pids();
    assert_eq!(pids.len(), 1);
    Command::new("kill")
        .args(["-KILL", &pids[0].to_string()])
        .status()
        .unwrap();
    ns.wait_no_domfs();
    let out = ns.sh(&format!("ls {d}"));
    assert!(text(&out.stderr).contains(STALE), "{}", text(&out.stderr));

    let out = ns.sh_ok(&format!(
        "mount -t fuse.domfs test:///default {d} && cat {d}/test/state"
    ));
    assert_eq!(text(&out.stdout), "running\n");
    let said = text(&out.stderr);
    assert!(
        said.contains("dead domfs mount") && said.contains("detached"),
        "{said}"
    );
    // The dead mount was detached, not buried under the new one.
    assert_eq!(ns.mounts_at(dir.path()), vec!["fuse.domfs test:///default"]);
    ns.sh_ok(&format!("umount {d}"));
    assert!(ns.mounts_at(dir.path()).is_empty());
    ns.wait_no_domfs();
}

/// A restart whose old instance leaves after the new one mounted (here
/// held stopped until then, as a busy or slow one would be): the old one
/// must not take the new mount with it. fuser 0.18 unmounts the path again
/// as it drops an ended session (its test of the device is inverted), and
/// the path is the new mount's by then.
#[test]
fn an_old_instance_leaving_keeps_the_new_mount() {
    let dir = TempDir::new("mnt");
    let start = || {
        Command::new(DOMFS)
            .args(["-f", "test:///default"])
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let signal = |pid: u32, sig: &str| {
        assert!(Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
            .success());
    };
    let state = dir.path().join("test/state");
    let mut old = start();
    wait_for("the first mount", || is_mountpoint(dir.path()));
    assert_eq!(std::fs::read_to_string(&state).unwrap(), "running\n");
    signal(old.id(), "-STOP");
    let um = Command::new("umount").arg("-l").arg(dir.path()).status();
    assert!(um.unwrap().success());
    assert!(!is_mountpoint(dir.path()));
    let mut new = start();
    wait_for("the second mount", || is_mountpoint(dir.path()));
    signal(old.id(), "-CONT");
    wait_for("the old instance to leave", || {
        old.try_wait().unwrap().is_some()
    });
    assert_eq!(
        std::fs::read_to_string(&state).unwrap(),
        "running\n",
        "the new mount went with the old instance"
    );
    let um = Command::new("umount").arg(dir.path()).status();
    assert!(um.unwrap().success());
    wait_for("the new instance to leave", || {
        new.try_wait().unwrap().is_some()
    });
}

#[test]
fn a_second_mount_on_a_live_domfs_is_refused() {
    let dir = TempDir::new("mnt");
    let Some(ns) = Ns::new() else { return };
    let d = quote(dir.path().to_str().unwrap());
    ns.sh_ok(&format!("mount -t fuse.domfs test:///default {d}"));
    let out = ns.sh(&format!("mount -t fuse.domfs test:///default {d}"));
    assert!(!out.status.success(), "the second mount succeeded");
    let said = text(&out.stderr);
    assert!(
        said.contains("is already a domfs mount of test:///default")
            && said.contains(&format!("umount {}", dir.path().display())),
        "{said}"
    );
    // Refused by the command itself too, not only through mount.
    let out = Command::new("nsenter")
        .arg(format!("--mount={}", ns.ns.display()))
        .args(["--", DOMFS, "-f", "test:///default"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("already a domfs mount"));
    assert_eq!(ns.mounts_at(dir.path()).len(), 1, "nothing was stacked");
    let out = ns.sh_ok(&format!("cat {d}/test/state"));
    assert_eq!(text(&out.stdout), "running\n");
    ns.sh_ok(&format!("umount {d}"));
    ns.wait_no_domfs();
}

#[test]
fn an_unreachable_back_end_fails_the_mount_with_the_reason() {
    let dir = TempDir::new("mnt");
    let host = dir.path().with_extension("absent.xml");
    let out = Command::new("timeout")
        .arg("60")
        .arg(DOMFS)
        .arg(format!("test://{}", host.display()))
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let said = text(&out.stderr);
    assert!(said.contains(host.to_str().unwrap()), "{said}");
    assert!(!is_mountpoint(dir.path()));
}

/// The host file of `test:///PATH` as a back end that comes up late.
fn write_host(path: &Path) {
    std::fs::write(
        path,
        "<node><domain type='test'><name>late</name><memory>1024</memory>\
         <os><type>hvm</type></os></domain></node>",
    )
    .unwrap();
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn retry_mounts_before_the_back_end_answers_and_connects_later() {
    let dir = TempDir::new("mnt");
    let _unmount = Unmount(dir.path());
    let host = dir.path().with_extension("late.xml");
    let log = dir.path().with_extension("log");
    let mut child = Command::new(DOMFS)
        .args(["-f", "-o", "retry"])
        .arg(format!("test://{}", host.display()))
        .arg(dir.path())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_for("mounted", || is_mountpoint(dir.path()));
    let err = std::fs::read_dir(dir.path()).err().unwrap();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTCONN));
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(
        said.contains("mounting anyway (-o retry)") && said.contains(host.to_str().unwrap()),
        "the log does not say why: {said}"
    );
    write_host(&host);
    wait_for("connected", || {
        std::fs::read_to_string(dir.path().join("late/state")).is_ok()
    });
    assert_eq!(
        std::fs::read_to_string(dir.path().join("late/state")).unwrap(),
        "running\n"
    );
    assert!(std::fs::read_to_string(&log).unwrap().contains("connected"));
    // Every file reaches the connection once it is open, these too.
    let inactive = std::fs::read_to_string(dir.path().join("late/inactive_xml")).unwrap();
    assert!(inactive.contains("<name>late</name>"), "{inactive}");
    let control = std::fs::read_to_string(dir.path().join("late/control")).unwrap();
    assert!(control.starts_with("shutdown\n"), "{control}");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert!(!is_mountpoint(dir.path()));
    let _ = std::fs::remove_file(&host);
    let _ = std::fs::remove_file(&log);
}

#[test]
fn retry_in_the_background_returns_at_once_and_serves_later() {
    let dir = TempDir::new("mnt");
    let _unmount = Unmount(dir.path());
    let host = dir.path().with_extension("late.xml");
    let out = Command::new("timeout")
        .arg("60")
        .arg(DOMFS)
        .arg(format!("test://{}", host.display()))
        .arg(dir.path())
        .args(["-o", "retry"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = std::fs::read_to_string(dir.path().join("node/info")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTCONN));
    write_host(&host);
    wait_for("connected", || dir.path().join("late").exists());
    assert!(Command::new("umount")
        .arg(dir.path())
        .status()
        .unwrap()
        .success());
    let _ = std::fs::remove_file(&host);
}

/// `-f` under systemd's Type=notify: READY=1 arrives on NOTIFY_SOCKET (here
/// a socket of the test's own, standing in for systemd's), and only once
/// the mount answers.
#[test]
fn foreground_tells_systemd_when_it_serves() {
    let dir = TempDir::new("mnt");
    let _unmount = Unmount(dir.path());
    let sock_path = dir.path().with_extension("notify");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut child = Command::new(DOMFS)
        .args(["-f", "test:///default"])
        .arg(dir.path())
        .env("NOTIFY_SOCKET", &sock_path)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).unwrap();
    let msg = text(&buf[..n]);
    assert!(msg.lines().any(|l| l == "READY=1"), "{msg}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("test/state")).unwrap(),
        "running\n"
    );
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let n = sock.recv(&mut buf).unwrap();
    assert!(text(&buf[..n]).contains("STOPPING=1"));
    assert!(child.wait().unwrap().success());
    let _ = std::fs::remove_file(&sock_path);
}

/// `systemd-analyze verify` on the installed template (an instance of it)
/// and on the example mount unit, with the installed man page on MANPATH
/// so that Documentation=man:domfs(8) is checked too. It exits 0 even for
/// lines it ignores, so any output is a failure; a broken copy shows that
/// the check can fail.
#[test]
fn the_units_pass_systemd_analyze_verify() {
    if !have_tool("systemd-analyze") {
        return;
    }
    let prefix = TempDir::new("prefix");
    let out = install(prefix.path());
    assert!(out.status.success(), "install: {}", text(&out.stderr));
    let units = prefix.path().join("lib/systemd/system");
    let mounts = TempDir::new("units");
    std::fs::copy(
        format!("{ROOT}/scripts/domains.mount"),
        mounts.path().join("domains.mount"),
    )
    .unwrap();
    let verify = |unit: PathBuf| {
        Command::new("systemd-analyze")
            .arg("verify")
            .arg(&unit)
            .env("MANPATH", prefix.path().join("share/man"))
            .env("SYSTEMD_LOG_COLOR", "0")
            .output()
            .unwrap()
    };
    for unit in [
        units.join("domfs@domains.service"),
        units.join("domfs@mnt-vms.service"),
        mounts.path().join("domains.mount"),
    ] {
        let out = verify(unit.clone());
        assert!(
            out.status.success() && out.stderr.is_empty() && out.stdout.is_empty(),
            "{}: exit {}: {}{}",
            unit.display(),
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    let service = std::fs::read_to_string(units.join("domfs@.service")).unwrap();
    assert!(service.contains(&format!(
        "ExecStart={}/sbin/domfs -f",
        prefix.path().display()
    )));
    std::fs::write(
        mounts.path().join("broken@.service"),
        service.replace("Type=notify", "Type=notifyy"),
    )
    .unwrap();
    let out = verify(mounts.path().join("broken@x.service"));
    assert!(!out.stderr.is_empty(), "a broken unit passed");
}

/// The -o options --help lists (from the one option table).
fn help_options() -> Vec<String> {
    let out = Command::new(DOMFS).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = text(&out.stdout);
    let section = help
        .split("Options (-o")
        .nth(1)
        .and_then(|s| s.split("Ignored").next())
        .unwrap()
        .to_string();
    let mut names = Vec::new();
    for line in section.lines().skip(1) {
        let Some(rest) = line.strip_prefix("  ") else {
            continue;
        };
        if rest.starts_with(' ') {
            continue;
        }
        let first = rest.split_whitespace().next().unwrap_or("");
        for n in first.split(',') {
            names.push(n.split('=').next().unwrap().to_string());
        }
    }
    assert!(names.len() > 15, "{names:?}");
    names
}

#[test]
fn the_man_page_renders_without_warnings_and_names_every_option() {
    if !have_tool("man") || !have_tool("nroff") {
        return;
    }
    let man = |page: &Path| {
        Command::new("man")
            .args(["--warnings", "-l"])
            .arg(page)
            .env("MANWIDTH", "80")
            .env("LC_ALL", "C.UTF-8")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // The check can fail: a copy with an undefined macro draws a warning.
    let source = std::fs::read_to_string(format!("{ROOT}/doc/domfs.8")).unwrap();
    let broken = TempDir::new("man");
    std::fs::write(broken.path().join("domfs.8"), format!("{source}.XYZZY\n")).unwrap();
    assert!(!man(&broken.path().join("domfs.8")).stderr.is_empty());

    let out = man(Path::new(&format!("{ROOT}/doc/domfs.8")));
    assert!(out.status.success());
    assert_eq!(text(&out.stderr), "", "man printed warnings");
    let page = text(&out.stdout);
    for section in [
        "SYNOPSIS",
        "OPTIONS",
        "THE TREE",
        "CONTROL COMMANDS",
        "ERRORS",
        "MOUNTING AT BOOT",
    ] {
        assert!(page.contains(section), "no {section}");
    }
    for opt in help_options() {
        assert!(page.contains(&opt), "domfs(8) does not describe -o {opt}");
    }
    for errno in [
        "EINVAL",
        "EBUSY",
        "ENODEV",
        "EROFS",
        "ENOTCONN",
        "ETIMEDOUT",
        "EIO",
    ] {
        assert!(page.contains(errno), "no {errno}");
    }
}

#[test]
fn uninstall_removes_exactly_what_install_wrote() {
    let prefix = TempDir::new("prefix");
    // Things that were there before must stay.
    std::fs::create_dir_all(prefix.path().join("share/man/man1")).unwrap();
    std::fs::write(
        prefix.path().join("share/man/man1/other.1"),
        ".TH OTHER 1\n",
    )
    .unwrap();
    let before = tree(prefix.path());
    let out = install(prefix.path());
    assert!(out.status.success(), "install: {}", text(&out.stderr));
    for f in [
        "sbin/domfs",
        "lib/systemd/system/domfs@.service",
        "share/man/man8/domfs.8",
        "share/doc/domfs/examples/domains.mount",
        "share/domfs/install-manifest",
    ] {
        assert!(prefix.path().join(f).is_file(), "{f} not installed");
    }
    let installed = prefix.path().join("sbin/domfs");
    let v = Command::new(&installed).arg("--version").output().unwrap();
    assert!(text(&v.stdout).starts_with("domfs "));
    // Installing again replaces the first install.
    assert!(install(prefix.path()).status.success());
    let out = Command::new(format!("{ROOT}/scripts/uninstall"))
        .env("PREFIX", prefix.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "uninstall: {}", text(&out.stderr));
    assert_eq!(tree(prefix.path()), before);
}

/// Every path under `dir`, sorted.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p.clone());
            }
            all.push(p);
        }
    }
    all.sort();
    all
}

/// `auto_unmount`: fusermount3 watches domfs and unmounts when it dies, so
/// even a SIGKILL leaves no dead mount.
#[test]
fn auto_unmount_leaves_no_dead_mount_after_sigkill() {
    let dir = TempDir::new("mnt");
    let _unmount = Unmount(dir.path());
    let out = Command::new("timeout")
        .args([
            "60",
            DOMFS,
            "-o",
            "auto_unmount,allow_other",
            "test:///default",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("test/state")).unwrap(),
        "running\n"
    );
    // The daemon is the domfs process serving this directory.
    let mut daemon = None;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.first() == Some(&DOMFS.as_bytes())
            && args.contains(&dir.path().to_str().unwrap().as_bytes())
        {
            daemon = Some(entry.file_name().to_string_lossy().into_owned());
        }
    }
    let daemon = daemon.expect("the domfs daemon");
    Command::new("kill")
        .args(["-KILL", &daemon])
        .status()
        .unwrap();
    wait_for("auto_unmount", || !is_mountpoint(dir.path()));
}

#[test]
fn auto_unmount_alone_is_explained() {
    let dir = TempDir::new("mnt");
    let out = Command::new(DOMFS)
        .args(["-o", "auto_unmount", "test:///default"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("auto_unmount needs allow_other or allow_root"));
    assert!(!is_mountpoint(dir.path()));
}

/// In the background the log goes to syslog: here a /dev/log of the test's
/// own (a datagram socket standing in for journald or rsyslog), inside a
/// namespace whose /dev is a tmpfs holding /dev/null, /dev/fuse and that
/// socket.
#[test]
fn in_the_background_the_log_goes_to_syslog() {
    let dir = TempDir::new("mnt");
    let work = TempDir::new("dev");
    let sock = UnixDatagram::bind(work.path().join("log")).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let setup = "mkdir \"$2/olddev\" && mount --bind /dev \"$2/olddev\" && \
                 mount -t tmpfs tmpfs /dev && \
                 for n in null fuse zero; do touch /dev/$n && \
                 mount --bind \"$2/olddev/$n\" /dev/$n || exit 1; done && \
                 ln -s \"$2/log\" /dev/log &&";
    let Some(ns) = Ns::with_setup(setup, work.path()) else {
        return;
    };
    let host = dir.path().with_extension("absent.xml");
    let d = quote(dir.path().to_str().unwrap());
    let out = ns.sh_ok(&format!(
        "mount -t fuse.domfs test://{} {d} -o retry",
        host.display()
    ));
    assert_eq!(text(&out.stderr), "", "the warning went to stderr");
    let mut buf = [0u8; 8192];
    let n = sock.recv(&mut buf).unwrap();
    let line = text(&buf[..n]);
    let pid = ns.domfs_pids()[0];
    // LOG_DAEMON (3 << 3) | LOG_WARNING (4) = 28
    assert!(
        line.starts_with(&format!("<28>domfs[{pid}]: test://{}", host.display())),
        "{line}"
    );
    assert!(line.contains("mounting anyway (-o retry)"), "{line}");
    ns.sh_ok(&format!("umount {d}"));
    ns.wait_no_domfs();
}

/// A crash leaves its signal, address and stack on stderr (the journal
/// under systemd): the lab's libxl reboot check once lost domfs without a
/// word. A SIGSEGV sent from outside is reported the same way, and, as
/// before the report existed, does not end the daemon.
#[test]
fn a_crash_leaves_its_signal_and_stack_in_the_log() {
    let mut m = Mount::new("test:///default");
    let pid = m.child.as_ref().expect("running").id();
    let sent = Command::new("kill")
        .args(["-SEGV", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    wait_for("the crash report", || m.log_text().contains("stack:"));
    std::thread::sleep(std::time::Duration::from_millis(200));
    let log = m.log_text();
    let report: Vec<&str> = log
        .lines()
        .skip_while(|l| !l.starts_with("domfs: crashed with SIGSEGV at address 0x"))
        .collect();
    assert!(!report.is_empty(), "no report in:\n{log}");
    let frames = report[1..].iter().take_while(|l| l.contains("[0x")).count();
    assert!(frames >= 3, "a stack of {frames} frames:\n{log}");
    assert!(
        report.iter().any(|l| l.contains("domfs(")),
        "no frame of domfs itself:\n{log}"
    );
    m.assert_alive();
    assert!(m.stop().success());
}
