//! Hostile values in the xenstore keys domfs reads, through a real mount of
//! `xen:///` over domfs-sim's xenstored (xenstore alone, so every value a
//! file shows comes from those keys).
//!
//! A guest may write some keys of its own `/local/domain/<id>` (the
//! toolstack makes them writable for it: `control/shutdown`, `data/`,
//! `device/suspend/event-channel`, ...). It writes there, as its own ring
//! connection would, values built to hurt a reader: up to xenstore's 4096
//! bytes, non-UTF-8, NUL and newlines inside, paths with `/` and `..`,
//! numbers out of range or negative. The keys it may not write (its name,
//! memory, vCPUs, image) are refused to it by xenstored; dom0 writes the
//! same values there, as a toolstack bug or another dom0 process could.
//!
//! After each write, every file of the domain must end within its timeout
//! with an error or with a well-formed value: one line in a one-value file,
//! no control character in it, the eight keys of `info` once each and in
//! order (a value with a newline must not forge a line), XML that parses;
//! the listing and the `events` lines stay one entry, one line each; the
//! other guest reads as before; the daemon lives; and once the key holds
//! its old value again the domain reads as before, without a remount.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
mod xen_common;

use common::*;
use domfs::driver::xenstore::client::Client;
use domfs::driver::xenstore::wire::{ErrName, PAYLOAD_MAX};
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;
use xen_common::Sim;

/// The longest value xenstored takes from a guest (oxenstored's
/// `quota-maxsize`, which domfs-sim copies).
const GUEST_VALUE_MAX: usize = 2048;
const UUID1: &str = "11111111-2222-3333-4444-555555555501";

/// The one-value files of a domain read after each hostile write, which
/// are also the keys of `info`, in its order.
const VALUES: [&str; 8] = [
    "state",
    "id",
    "uuid",
    "os_type",
    "vcpus",
    "memory",
    "max_memory",
    "cpu_time",
];

/// Values meant to hurt a reader; `room` is the most bytes the key's write
/// may carry (xenstore's payload holds the path, a NUL and the value).
fn hostile(room: usize) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = [
        &b"524288\nstate running"[..],
        b"linux\nstate running\nid 0\n",
        b"\nlinux",
        b"linux\r",
        b"linux\x1b[2J",
        b"512\0 9999",
        b"\0",
        b"\xff\xfe\x80linux",
        b"/local/domain/0/name",
        b"../../0/memory/target",
        b"/vm/../../local/domain/0",
        b"18446744073709551616",
        b"99999999999999999999999",
        b"-1",
        b"-524288",
        b"0x80000",
        b"1e6",
        b" 524288 ",
        b"",
        b" \t\n",
        b"%s%s%n",
        b"</type><kernel>/etc/shadow</kernel>",
        b"&amp;&#0;&lt;",
        b"poweroff\nreboot",
        b"x\"} 1\ndomfs_forged{a=\"b",
    ]
    .iter()
    .map(|b| b.to_vec())
    .collect();
    v.push(vec![b'7'; room]);
    v.push(b"linux\n".repeat(room / 6));
    let mut junk: Vec<u8> = (0..room).map(|i| (i * 7 % 256) as u8).collect();
    junk[0] = b'x';
    v.push(junk);
    v
}

struct Rig {
    sim: Sim,
    m: Mount,
    dom0: Client,
    guest: Client,
    /// g1's and g2's domain ids.
    id: u32,
    g2: (String, String),
}

impl Rig {
    fn new() -> Rig {
        let sim = Sim::start(&[
            "--shutdown-delay",
            "100",
            "--guest",
            &format!("g1,memory=512,vcpus=2,uuid={UUID1}"),
            "--guest",
            "g2,memory=256",
        ]);
        let opts = format!("xenstore={}", sim.socket().display());
        let m = Mount::with_options("xen:///", &["-o", &opts]);
        let id: u32 = m.value("g1/id").parse().unwrap();
        let dom0 = Client::connect(&sim.socket(), Duration::from_secs(5)).unwrap();
        let guest = Client::connect(&sim.guest_socket(id), Duration::from_secs(5)).unwrap();
        let g2 = (m.value("g2/memory"), m.value("g2/state"));
        Rig {
            sim,
            m,
            dom0,
            guest,
            id,
            g2,
        }
    }

    /// g1's files as they read now: each Ok(text) or Err(error text).
    fn files(&self) -> Vec<(String, Result<String, String>)> {
        let mut names: Vec<&str> = VALUES.to_vec();
        names.extend(["info", "xml", "control"]);
        names
            .into_iter()
            .map(|f| {
                let out = self.m.sh(&format!("timeout 10 cat by-uuid/{UUID1}/{f}"));
                let r = if out.status.success() {
                    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
                } else {
                    Err(String::from_utf8_lossy(&out.stderr).into_owned())
                };
                assert_ne!(out.status.code(), Some(124), "{f} hung");
                (f.to_string(), r)
            })
            .collect()
    }

    /// Everything the module doc says must hold after a hostile write.
    fn check(&self, what: &str) -> usize {
        let mut shown = 0;
        for (f, r) in self.files() {
            let text = match r {
                Ok(t) => t,
                Err(e) => {
                    assert!(!e.contains("Terminated"), "{what}: {f}: {e}");
                    continue;
                }
            };
            shown += 1;
            assert!(text.ends_with('\n'), "{what}: {f}: {text:?}");
            let body = &text[..text.len() - 1];
            match f.as_str() {
                "info" => {
                    let keys: Vec<&str> = body
                        .lines()
                        .map(|l| l.split(' ').next().unwrap_or(""))
                        .collect();
                    assert_eq!(keys, VALUES, "{what}: info forged or lost a line: {text:?}");
                    assert!(
                        !body.chars().any(|c| c.is_control() && c != '\n'),
                        "{what}: info: {text:?}"
                    );
                }
                "xml" => {
                    assert!(
                        domfs::model::DomainDef::parse(&text).is_ok(),
                        "{what}: xml does not parse: {text:?}"
                    );
                    assert!(
                        !text.chars().any(|c| c.is_control() && c != '\n'),
                        "{what}: xml holds a control character: {text:?}"
                    );
                }
                "control" => assert!(
                    body.lines()
                        .all(|l| !l.is_empty()
                            && l.chars().all(|c| c.is_ascii_alphabetic() || c == ' ')),
                    "{what}: control: {text:?}"
                ),
                _ => assert!(
                    !body.chars().any(char::is_control),
                    "{what}: {f} is not one clean line: {text:?}"
                ),
            }
        }
        // The listing: one clean name per domain, g2 unharmed.
        for entry in std::fs::read_dir(self.m.path()).unwrap() {
            let name = entry.unwrap().file_name();
            let name = name.to_string_lossy();
            assert!(!name.chars().any(char::is_control), "{what}: {name:?}");
        }
        // Prometheus's text: a name's quote or newline stays in its label,
        // and g2's lines stay whatever g1's keys hold.
        let metrics = self.m.cat("metrics");
        assert!(metrics.contains("{domain=\"g2\""), "{what}: {metrics}");
        assert!(
            metrics
                .lines()
                .all(|l| l.starts_with("# ") || l.starts_with("domfs_domain_")),
            "{what}: a forged metrics line:\n{metrics}"
        );
        assert_eq!(
            (self.m.value("g2/memory"), self.m.value("g2/state")),
            self.g2,
            "{what}: g2 changed"
        );
        self.m.assert_alive_at("g2/state");
        assert!(!self.m.log_text().contains("panicked"), "{what}");
        shown
    }

    /// g1 reads as `before` again once its keys are restored.
    fn recovers(&self, before: &[(String, Result<String, String>)], what: &str) {
        let want: Vec<(String, Option<String>)> = before
            .iter()
            .map(|(f, r)| (f.clone(), r.clone().ok()))
            .collect();
        for _ in 0..100 {
            let now: Vec<(String, Option<String>)> =
                self.files().into_iter().map(|(f, r)| (f, r.ok())).collect();
            if now == want {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{what}: g1 did not recover:\n{:?}\nwant\n{want:?}\n{}",
            self.files(),
            self.m.sh_ok("ls; readlink by-uuid/*")
        );
    }
}

/// The events lines read so far: each must be one whole line of six or
/// seven fields (time, event, name, id, UUID[, reason]).
fn check_events(text: &str) -> usize {
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        assert!(
            (5..=6).contains(&f.len())
                && f[0].ends_with('Z')
                && f[3].parse::<i64>().is_ok()
                && f[4].len() == 36,
            "a torn or forged events line: {line:?}\n{text}"
        );
    }
    text.lines().count()
}

#[test]
fn a_guests_hostile_values_in_its_own_keys_are_shown_whole_or_refused() {
    let rig = Rig::new();
    let mut events = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(rig.m.path().join("events"))
        .unwrap();
    let before = rig.files();
    assert!(before.iter().all(|(_, r)| r.is_ok()), "{before:?}");
    let base = format!("/local/domain/{}", rig.id);
    let mut tried = 0;
    // What the guest may write: its own keys the toolstack opened to it.
    // domfs reads only the first (a pending request is a state, and its
    // writing an event); the others are written whole, then checked once.
    for (key, read) in [
        ("control/shutdown", true),
        ("control/feature-poweroff", false),
        ("control/sysrq", false),
        ("device/suspend/event-channel", false),
        ("data/hostile", false),
        ("error/hostile", false),
        ("console/backend-id", false),
    ] {
        let path = format!("{base}/{key}");
        let old = rig.guest.read(0, &path).ok();
        // A guest's value is held to xenstored's quota (oxenstored's 2048).
        for value in hostile(GUEST_VALUE_MAX) {
            rig.guest.write(0, &path, &value).unwrap();
            tried += 1;
            if read {
                let what = format!("guest wrote {key} = {:?}", lossy(&value));
                rig.check(&what);
                // None of these is a request a guest acts on (poweroff,
                // halt, reboot, suspend): no state says one is pending.
                assert_eq!(rig.m.value("g1/state"), "nostate", "{what}");
            }
        }
        rig.check(&format!("guest wrote {key}"));
        match old {
            Some(v) => rig.guest.write(0, &path, &v).unwrap(),
            None => rig.guest.rm(0, &path).unwrap(),
        }
        rig.recovers(&before, key);
    }
    // What it may not: xenstored refuses, and the values stay.
    let uuid_base = format!("/vm/{UUID1}");
    let toolstack_keys = [
        format!("{base}/name"),
        format!("{base}/vm"),
        format!("{base}/memory/target"),
        format!("{base}/memory/static-max"),
        format!("{base}/cpu/0/availability"),
        format!("{uuid_base}/image/ostype"),
        format!("{uuid_base}/image/kernel"),
        format!("{uuid_base}/image/cmdline"),
    ];
    for path in &toolstack_keys {
        let e = rig.guest.write(0, path, b"-1\nstate running").unwrap_err();
        assert!(e.is(ErrName::Eacces), "{path}: {e}");
    }
    // The same values there from dom0 (a toolstack bug, another dom0
    // process): shown whole or refused all the same.
    for path in &toolstack_keys {
        let old = rig.dom0.read(0, path).unwrap();
        for value in hostile(PAYLOAD_MAX - path.len() - 1) {
            rig.dom0.write(0, path, &value).unwrap();
            tried += 1;
            rig.check(&format!("dom0 wrote {path} = {:?}", lossy(&value)));
        }
        rig.dom0.write(0, path, &old).unwrap();
        rig.recovers(&before, path);
    }
    std::thread::sleep(Duration::from_millis(300));
    let text = String::from_utf8(drain(&mut events)).unwrap();
    let lines = check_events(&text);
    assert!(
        !text.contains(" shutdown-requested "),
        "junk in control/shutdown made an event:\n{text}"
    );
    assert_eq!(rig.m.value("g1/state"), before[0].1.clone().unwrap().trim());
    drop(rig.sim);
    println!(
        "{tried} hostile values written, every file whole or refused; {lines} event lines whole"
    );
}

fn lossy(v: &[u8]) -> String {
    let s = String::from_utf8_lossy(v);
    if v.len() > 40 {
        format!(
            "{}... ({} bytes)",
            s.chars().take(40).collect::<String>(),
            v.len()
        )
    } else {
        s.into_owned()
    }
}
