//! Runs the real `domfs-sim` binary (the simulated Xen host) for a test and
//! Debian's xenstore-utils against it, as users do.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A running `domfs-sim DIR`; killed and its directory removed on drop.
pub struct Sim {
    child: Child,
    pub dir: PathBuf,
    pub log: PathBuf,
    args: Vec<String>,
}

impl Sim {
    pub fn start(args: &[&str]) -> Sim {
        let dir = std::env::temp_dir().join(format!(
            "domfs-sim-test-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("sim dir");
        let log = dir.with_extension("log");
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let child = Sim::spawn(&args, &dir, &log);
        let sim = Sim {
            child,
            dir,
            log,
            args,
        };
        sim.wait_ready();
        sim
    }

    fn spawn(args: &[String], dir: &Path, log: &Path) -> Child {
        Command::new(env!("CARGO_BIN_EXE_domfs-sim"))
            .args(args)
            .arg(dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("sim log"))
            .spawn()
            .expect("start domfs-sim")
    }

    /// Stops the simulated host, as a daemon crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again in the same directory (a daemon restart).
    pub fn restart(&mut self) {
        self.kill();
        self.child = Sim::spawn(&self.args, &self.dir, &self.log);
        self.wait_ready();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_ready(&self) {
        let sim = self;
        let deadline = Instant::now() + Duration::from_secs(10);
        // Ready once the last guest's socket exists and dom0's answers.
        while !sim.log_text().contains("xenstored (") {
            assert!(
                Instant::now() < deadline,
                "domfs-sim did not start: {}",
                sim.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("xenstored/socket")
    }

    /// The socket on which a connection acts as guest `domid`.
    pub fn guest_socket(&self, domid: u32) -> PathBuf {
        self.dir.join(format!("xenstored/domain-{domid}"))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs a xenstore-utils tool against `endpoint` under a deadline.
    pub fn tool(endpoint: &Path, tool: &str, args: &[&str]) -> Output {
        Command::new("timeout")
            .arg("10")
            .arg(tool)
            .args(args)
            .env("XENSTORED_PATH", endpoint)
            .env("LC_ALL", "C")
            .output()
            .expect("run xenstore tool")
    }

    /// A tool that must succeed on dom0's socket; its standard output.
    pub fn xs(&self, tool: &str, args: &[&str]) -> String {
        let out = Sim::tool(&self.socket(), tool, args);
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// Waits until `check` holds, for up to `secs` seconds.
    pub fn wait_for(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(&self.log);
    }
}
