//! Mounts the real `domfs` binary in a temporary directory and drives it with
//! real shell tools as child processes, as users do.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "domfs-test-{}-{}-{tag}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).expect("create temp dir");
        // Other users must be able to reach a mount under it, whatever the
        // umask (the permission tests run tools as nobody).
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
            .expect("chmod temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn is_mountpoint(p: &Path) -> bool {
    Command::new("mountpoint")
        .arg("-q")
        .arg(p)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A running `domfs URI MOUNTPOINT`; unmounted with SIGTERM on drop.
pub struct Mount {
    pub child: Option<Child>,
    pub dir: TempDir,
    pub log: PathBuf,
}

impl Mount {
    pub fn new(uri: &str) -> Mount {
        Mount::with_options(uri, &[])
    }

    pub fn with_options(uri: &str, args: &[&str]) -> Mount {
        let dir = TempDir::new("mnt");
        let log = std::env::temp_dir().join(format!(
            "domfs-test-{}-{}.log",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let logfile = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_domfs"))
            .arg("-f")
            .args(args)
            .arg(uri)
            .arg(dir.path())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(logfile)
            .spawn()
            .expect("start domfs");
        let mut m = Mount {
            child: Some(child),
            dir,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !is_mountpoint(m.path()) {
            if let Some(c) = m.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("domfs exited with {st} before mounting:\n{}", m.log_text());
                }
            }
            assert!(Instant::now() < deadline, "domfs did not mount in 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        m
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs `sh -c SCRIPT` in the mount directory.
    pub fn sh(&self, script: &str) -> Output {
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(self.path())
            .output()
            .expect("run sh")
    }

    /// `sh -c SCRIPT` that must succeed; its standard output.
    pub fn sh_ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// `sh -c SCRIPT` that must fail with `errno`.
    pub fn sh_fails(&self, script: &str, errno: i32) {
        let out = self.sh(script);
        assert!(!out.status.success(), "{script} succeeded");
        assert_errno(&String::from_utf8_lossy(&out.stderr), errno);
    }

    /// `cat PATH` that must succeed.
    pub fn cat(&self, rel: &str) -> String {
        let out = Command::new("cat")
            .arg(rel)
            .current_dir(self.path())
            .output()
            .expect("run cat");
        assert!(
            out.status.success(),
            "cat {rel} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// The one-line value of a file, without its newline.
    pub fn value(&self, rel: &str) -> String {
        let v = self.cat(rel);
        assert!(v.ends_with('\n'), "{rel}: {v:?} does not end in a newline");
        v.trim_end_matches('\n').to_string()
    }

    /// `echo TEXT > PATH` through `sh -c`; Ok or the error text. Uses
    /// coreutils' echo, which names the errno (dash's builtin says only
    /// "I/O error" whatever the errno was).
    pub fn echo(&self, text: &str, rel: &str) -> Result<(), String> {
        let out = self.sh(&format!("/bin/echo {} > {}", quote(text), quote(rel)));
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// `echo TEXT > PATH` that must fail with `errno`.
    pub fn echo_fails(&self, text: &str, rel: &str, errno: i32) {
        match self.echo(text, rel) {
            Ok(()) => panic!(
                "echo '{text}' > {rel} succeeded; expected {}",
                strerror(errno)
            ),
            Err(e) => assert_errno(&e, errno),
        }
    }

    /// `echo TEXT > PATH` that must succeed.
    pub fn echo_ok(&self, text: &str, rel: &str) {
        if let Err(e) = self.echo(text, rel) {
            panic!("echo '{text}' > {rel} failed: {e}");
        }
    }

    /// The daemon still serves: `cat test/state` answers within a second.
    pub fn assert_alive(&self) {
        self.assert_alive_at("test/state");
    }

    /// The daemon still serves: `cat REL` answers within a second.
    pub fn assert_alive_at(&self, rel: &str) {
        let out = self.sh(&format!("timeout 1 cat {}", quote(rel)));
        assert!(
            out.status.success() && !out.stdout.is_empty(),
            "the mount stopped answering: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
    }

    /// Unmounts with SIGTERM and returns domfs's exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("still running");
        nix_kill(child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = child.try_wait().expect("wait") {
                return st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("domfs did not exit within 10 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop();
        }
        if is_mountpoint(self.path()) {
            let _ = Command::new("fusermount3")
                .args(["-u", "-z"])
                .arg(self.path())
                .status();
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

fn nix_kill(pid: u32, sig: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// `virsh -c URI ARGS...` under a deadline, which must succeed; its output.
pub fn virsh(uri: &str, args: &[&str]) -> String {
    let out = Command::new("timeout")
        .args(["60", "virsh", "-c", uri])
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .expect("run virsh");
    assert!(
        out.status.success(),
        "virsh -c {uri} {args:?}: {}: {} (stdout {:?})",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The value after `label` on the line of virsh output that starts with it.
pub fn virsh_field(out: &str, label: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(label).map(|v| v.trim().to_string()))
        .unwrap_or_else(|| panic!("no '{label}' in virsh output: {out}"))
}

/// Quotes `s` for `sh`.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The text `strerror` gives for `errno`, as shells and coreutils print it.
pub fn strerror(errno: i32) -> String {
    let s = std::io::Error::from_raw_os_error(errno).to_string();
    s.split(" (os error").next().unwrap_or(&s).to_string()
}

/// Asserts that a tool's error output names `errno`.
pub fn assert_errno(stderr: &str, errno: i32) {
    let want = strerror(errno);
    assert!(
        stderr.contains(&want),
        "expected '{want}' in the error output, got: {stderr}"
    );
}

/// `sh -c SCRIPT` in `dir` as user and group `uid`, with no other groups
/// (65534 is nobody).
pub fn as_user(uid: u32, dir: &Path, script: &str) -> Output {
    Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .args(["--clear-groups", "sh", "-c", script])
        .current_dir(dir)
        .output()
        .expect("run setpriv")
}

/// `key value` lines as pairs, in order.
pub fn pairs(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap_or((l, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Whether a real peer tool is here. Absent outside CI: the caller skips
/// with a printed reason. Absent under CI=true: a failure.
pub fn have_tool(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{tool} is required under CI=true (scripts/deps installs it)");
        }
        println!("skipped: {tool} is not installed (scripts/deps installs it)");
    }
    found
}

/// The resident set of process `pid`, in KiB (`VmRSS` of its status).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in the status")
}

/// One vCPU as virsh shows it: host CPU (-1 for N/A), state and affinity.
#[derive(Debug, PartialEq)]
pub struct Vcpu {
    pub cpu: String,
    pub state: String,
    pub affinity: String,
}

/// `vcpuinfo DOM` and `vcpupin DOM` after `steps` (one virsh session), per
/// vCPU, with virsh's words put as the files put them ("N/A" CPU is -1,
/// "N/A" state offline).
pub fn virsh_vcpus(uri: &str, dom: &str, steps: &str) -> Vec<Vcpu> {
    let info = virsh(uri, &[&format!("{steps} vcpuinfo {dom}")]);
    let pins = virsh(uri, &[&format!("{steps} vcpupin {dom}")]);
    let affinity: Vec<String> = pins
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            w.next()?.parse::<u32>().ok()?;
            w.next().map(str::to_string)
        })
        .collect();
    info.split("\n\n")
        .filter(|b| b.contains("VCPU:"))
        .zip(affinity)
        .map(|(block, affinity)| {
            let cpu = virsh_field(block, "CPU:");
            let state = virsh_field(block, "State:");
            Vcpu {
                cpu: if cpu == "N/A" { "-1".into() } else { cpu },
                state: if state == "N/A" {
                    "offline".into()
                } else {
                    state
                },
                affinity,
            }
        })
        .collect()
}

/// The same from the mount's `DOM/vcpu/N/*`.
pub fn domfs_vcpus(m: &Mount, dom: &str) -> Vec<Vcpu> {
    let listed = m.sh_ok(&format!("ls {dom}/vcpu"));
    listed
        .lines()
        .map(|n| Vcpu {
            cpu: m.value(&format!("{dom}/vcpu/{n}/cpu")),
            state: m.value(&format!("{dom}/vcpu/{n}/state")),
            affinity: m.value(&format!("{dom}/vcpu/{n}/affinity")),
        })
        .collect()
}

/// What a non-blocking reader (an open `events`) has to read now.
pub fn drain(f: &mut std::fs::File) -> Vec<u8> {
    use std::io::Read;
    let mut text = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        text.extend_from_slice(&buf[..n]);
    }
    text
}
