//! The trust model of SECURITY.md, through real mounts: who gets in without
//! and with `allow_other`, what other users may read and never write, that
//! `-o ro` refuses every write, that save paths follow no other user's link
//! in a shared directory, and that no name or value reaches a back end as
//! anything but itself (against domfs-sim's xenstore and xend).
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
mod xen_common;

use common::*;
use std::path::Path;

const NOBODY: u32 = 65534;

/// A domain with a VNC password, which only root and the owner may read.
const VNC: &str = "<domain type='test'>\n  <name>vnc1</name>\n  <memory>65536</memory>\n  \
                   <os>\n    <type>hvm</type>\n  </os>\n  <devices>\n    \
                   <graphics type='vnc' port='5901' passwd='s3cret-pw'/>\n  </devices>\n</domain>\n";

/// Every regular file in the mount whose mode lets someone write it, found
/// by the owner (the list the other-user checks walk).
fn writable_files(m: &Mount) -> Vec<String> {
    let out = m.sh_ok("find . -type f -perm /222 | sort");
    let files: Vec<String> = out.lines().map(str::to_string).collect();
    for must in [
        "./define",
        "./create",
        "./restore",
        "./test/control",
        "./test/xml",
    ] {
        assert!(files.iter().any(|f| f == must), "{must} not in {files:?}");
    }
    files
}

fn domains(m: &Mount) -> Vec<String> {
    m.sh_ok("for d in */; do if [ -f \"$d/state\" ]; then echo \"${d%/}\"; fi; done")
        .lines()
        .map(str::to_string)
        .collect()
}

/// What must not change when writes are refused: each domain's state and XML.
fn snapshot(m: &Mount) -> String {
    domains(m)
        .iter()
        .map(|d| {
            format!(
                "{d}\n{}{}",
                m.cat(&format!("{d}/state")),
                m.cat(&format!("{d}/xml"))
            )
        })
        .collect()
}

/// Runs `script` once per item (as `$f`), and prints `BAD item: message` for
/// each whose error is not `errno`'s message. Empty output: all refused so.
fn each_fails_with(items: &[String], action: &str, errno: i32) -> String {
    let want = strerror(errno);
    format!(
        "for f in {}; do out=$( ( {action} ) 2>&1 ) && echo \"BAD $f: succeeded\" && continue; \
         case \"$out\" in *{}*) ;; *) echo \"BAD $f: $out\";; esac; done",
        items.iter().map(|s| quote(s)).collect::<Vec<_>>().join(" "),
        quote(&want)
    )
}

/// The output of an [`each_fails_with`] script: empty when all were refused.
fn all_refused(out: std::process::Output) {
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn define_vnc(m: &Mount) {
    let dir = TempDir::new("vnc");
    let f = dir.path().join("vnc1.xml");
    std::fs::write(&f, VNC).unwrap();
    m.sh_ok(&format!("cp {} define", quote(&f.display().to_string())));
}

#[test]
fn with_allow_other_others_read_but_write_nothing() {
    if !have_tool("setpriv") {
        return;
    }
    let m = Mount::with_options("test:///default", &["-o", "allow_other"]);
    define_vnc(&m);
    let before = snapshot(&m);
    let files = writable_files(&m);
    let nobody = |script: &str| as_user(NOBODY, m.path(), script);

    // Reading: every value file (the blocking wait/ and events aside) opens
    // for nobody; a value may be an error of its own (stats of a shut-off
    // domain), never a permission error.
    let out = nobody(
        "find . -type f -perm -004 ! -path '*/wait/*' ! -name events | sort | while read f; do \
         cat \"$f\" >/dev/null 2>/tmp/domfs-sec-$$ || { grep -q 'Permission denied' /tmp/domfs-sec-$$ \
         && echo \"DENIED $f\"; }; echo \"read $f\"; done; rm -f /tmp/domfs-sec-$$",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("DENIED"), "{text}");
    assert!(text.lines().count() > 40, "too few files read: {text}");
    assert_eq!(nobody("cat test/state").stdout, b"running\n");

    // Writing: every writable file, every domain's removal, and any new name.
    all_refused(nobody(&each_fails_with(
        &files,
        "/bin/echo x > \"$f\"",
        libc::EACCES,
    )));
    let doms = domains(&m);
    assert_eq!(doms, ["test", "vnc1"]);
    all_refused(nobody(&each_fails_with(
        &doms,
        "rmdir \"$f\"",
        libc::EACCES,
    )));
    for script in [
        "mkdir web9",
        "touch test/new",
        "mv test/xml test/xml2",
        "ln -s test t",
        "cp test/xml define",
    ] {
        let out = nobody(script);
        assert!(!out.status.success(), "nobody could: {script}");
        assert_errno(&String::from_utf8_lossy(&out.stderr), libc::EACCES);
    }
    assert_eq!(snapshot(&m), before);
    m.assert_alive();
}

#[test]
fn graphics_passwords_are_only_for_root_and_the_owner() {
    if !have_tool("setpriv") {
        return;
    }
    let m = Mount::with_options("test:///default", &["-o", "allow_other"]);
    define_vnc(&m);
    assert!(m.cat("vnc1/xml").contains("passwd='s3cret-pw'"));
    assert!(m.cat("vnc1/inactive_xml").contains("passwd='s3cret-pw'"));
    for file in ["vnc1/xml", "vnc1/inactive_xml"] {
        let out = as_user(NOBODY, m.path(), &format!("cat {file}"));
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("<graphics type='vnc' port='5901'/>"),
            "{file}: {text}"
        );
        assert!(
            !text.contains("s3cret"),
            "{file} shows the password: {text}"
        );
    }
}

#[test]
fn read_only_mount_refuses_every_write_with_erofs() {
    let m = Mount::with_options("test:///default", &["-o", "ro"]);
    let before = snapshot(&m);
    let files = writable_files(&m);
    all_refused(m.sh(&each_fails_with(
        &files,
        "/bin/echo x > \"$f\"",
        libc::EROFS,
    )));
    // A write that opens without truncating is refused at open as well.
    all_refused(m.sh(&each_fails_with(
        &files,
        "/bin/echo x 1<> \"$f\"",
        libc::EROFS,
    )));
    all_refused(m.sh(&each_fails_with(&domains(&m), "rmdir \"$f\"", libc::EROFS)));
    for script in ["mkdir web9", "touch test/new", "mv test/xml test/xml2"] {
        m.sh_fails(script, libc::EROFS);
    }
    assert_eq!(snapshot(&m), before);
    assert_eq!(m.value("test/state"), "running");
}

/// Without `allow_other` no other user gets in at all: not a listing, not a
/// `stat` (of the mount point itself either), not a read, not a write.
/// The mount here is root's (the daemon runs as root, `user_id=0` and no
/// `allow_other` in the kernel's mount table), and the modes it reports
/// would let anyone read: so the refusals are the kernel's FUSE rule and
/// nothing else. The same commands by the same users on a mount with
/// `allow_other` read, which shows the refusals are the option's doing.
#[test]
fn without_allow_other_no_one_else_gets_in() {
    if !have_tool("setpriv") {
        return;
    }
    let uid = std::process::Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI runs the suite as root"
        );
        println!("skipped: other users are played with setpriv, which needs root");
        return;
    }
    let m = Mount::new("test:///default");
    let options = mount_options(m.path());
    assert!(
        options.contains("user_id=0") && !options.contains("allow_other"),
        "{options}"
    );
    // What default_permissions alone would allow others: reading.
    assert_eq!(m.sh_ok("stat -c %a . test test/state"), "555\n555\n444\n");
    let mnt = quote(&m.path().display().to_string());
    let reads = [
        format!("stat {mnt}"),
        format!("ls {mnt}"),
        format!("stat {mnt}/test"),
        format!("stat {mnt}/test/state"),
        format!("cat {mnt}/test/state"),
    ];
    let mut refused = 0;
    for uid in [NOBODY, NOBODY - 1] {
        for script in reads
            .iter()
            .cloned()
            .chain([format!("/bin/echo suspend > {mnt}/test/control")])
        {
            let out = as_user(uid, Path::new("/"), &script);
            assert!(!out.status.success(), "uid {uid} could: {script}");
            assert_errno(&String::from_utf8_lossy(&out.stderr), libc::EACCES);
            refused += 1;
        }
    }
    assert_eq!(m.value("test/state"), "running");
    let open = Mount::with_options("test:///default", &["-o", "allow_other"]);
    assert!(mount_options(open.path()).contains("allow_other"));
    let open_mnt = quote(&open.path().display().to_string());
    for uid in [NOBODY, NOBODY - 1] {
        for script in &reads {
            let script = script.replace(&mnt, &open_mnt);
            let out = as_user(uid, Path::new("/"), &script);
            assert!(
                out.status.success(),
                "uid {uid} cannot even with allow_other: {script}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    println!("{refused} accesses by other users refused without allow_other");
}

/// The options the kernel's mount table gives the mount at `path`.
fn mount_options(path: &Path) -> String {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let at = path.display().to_string();
    table
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(at.as_str()))
        .unwrap_or_else(|| panic!("{at} is not in the mount table:\n{table}"))
        .to_string()
}

/// A save path in a sticky, world-writable directory where another user
/// planted a link to a file of root's: refused with EACCES, the file
/// untouched, the domain still running, as the kernel refuses root to follow
/// that link (fs.protected_symlinks). Root's own link there is followed.
#[test]
fn save_follows_no_other_users_link_in_a_shared_directory() {
    use std::os::unix::fs::PermissionsExt;
    let m = Mount::new("test:///default");
    let shared = TempDir::new("sticky");
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let precious = TempDir::new("precious");
    let target = precious.path().join("shadow");
    std::fs::write(&target, b"root's secret\n").unwrap();
    let planted = shared.path().join("web1.img");
    let out = as_user(
        NOBODY,
        Path::new("/"),
        &format!(
            "ln -s {} {}",
            quote(&target.display().to_string()),
            quote(&planted.display().to_string())
        ),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for cmd in ["save", "dump"] {
        m.echo_fails(
            &format!("{cmd} {}", planted.display()),
            "test/control",
            libc::EACCES,
        );
        assert!(m.value("test/last_error").contains("fs.protected_symlinks"));
    }
    m.echo_fails(&planted.display().to_string(), "restore", libc::EACCES);
    assert_eq!(std::fs::read(&target).unwrap(), b"root's secret\n");
    assert!(std::fs::symlink_metadata(&planted)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(m.value("test/state"), "running");
    // Root's own link in the same directory leads where root meant.
    let mine = shared.path().join("mine.img");
    let img = precious.path().join("web1.img");
    std::os::unix::fs::symlink(&img, &mine).unwrap();
    m.echo_ok(&format!("save {}", mine.display()), "test/control");
    assert!(std::fs::read(&img).unwrap().starts_with(b"TestGuestMagic"));
    assert_eq!(m.value("test/state"), "shutoff");
}

/// domfs over domfs-sim with both xend and xenstore, as a Xen < 4.5 dom0.
fn xen_mount() -> (xen_common::Sim, Mount) {
    let sim = xen_common::Sim::start(&["--shutdown-delay", "100", "--guest", "guest1,memory=512"]);
    xen_common::Sim::wait_for(10, "xend's socket", || sim.dir.join("xend-port").exists());
    let opts = format!(
        "xend=unix:{},xenstore={}",
        sim.dir.join("xend-socket").display(),
        sim.socket().display()
    );
    let m = Mount::with_options("xen:///", &["-o", &opts]);
    (sim, m)
}

fn pv_xml(name: &str, uuid: &str) -> String {
    let name = name
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('\'', "&apos;")
        .replace('"', "&quot;");
    format!(
        "<domain type='xen'>\n  <name>{name}</name>\n  <uuid>{uuid}</uuid>\n  \
         <memory>262144</memory>\n  <currentMemory>262144</currentMemory>\n  <vcpu>1</vcpu>\n  \
         <os>\n    <type>linux</type>\n    <kernel>/boot/vmlinuz-xen</kernel>\n  </os>\n</domain>\n"
    )
}

/// Names built to break out of an SXP atom, a form body, a request path
/// or a xenstore path reach each back end as one value, whole. xend (here
/// domfs-sim, with xend's own name rule) refuses the names with parentheses
/// and quotes, and its refusal quotes each whole, with the memory the XML
/// asked for: the SXP held one atom. The names it accepts are kept exactly:
/// `+` is not read as a form's space, and starting and destroying the domain
/// by its name touches no other domain; xenstore holds each as the value of
/// `/local/domain/ID/name`. Names no domain may have are refused with EINVAL
/// before any back end sees them.
#[test]
fn hostile_names_reach_xend_and_xenstore_as_plain_values() {
    if !have_tool("xenstore-read") {
        return;
    }
    let (sim, m) = xen_mount();
    let guest1 = (m.value("guest1/id"), m.value("guest1/state"));
    let files = TempDir::new("names");
    let define = |name: &str, i: usize| {
        let uuid = format!("11111111-2222-3333-4444-5555555555{i:02}");
        let f = files.path().join(format!("{i}.xml"));
        std::fs::write(&f, pv_xml(name, &uuid)).unwrap();
        (
            m.sh(&format!("cp {} define", quote(&f.display().to_string()))),
            uuid,
        )
    };
    let mut tried = 0;
    for name in ["a) (memory 1) (name b", "q'uo\"te\\ (x)", "x') (name 'y"] {
        let (out, _) = define(name, tried);
        tried += 1;
        assert!(!out.status.success(), "{name}: defined");
        assert_errno(&String::from_utf8_lossy(&out.stderr), libc::EIO);
        let e = m.value("last_error");
        // The sim quotes the guest it refuses as Rust's {:?} does.
        let whole = format!("{:?}", format!("{name},memory=256,"));
        assert!(e.contains(whole.trim_end_matches('"')), "{name}: {e}");
    }
    for name in ["web+1:x", "0", "guest1.", "1+1"] {
        let (out, uuid) = define(name, tried);
        tried += 1;
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing = m.sh_ok("ls");
        assert!(listing.lines().any(|l| l == name), "{name}: {listing}");
        let dir = quote(name);
        assert_eq!(
            m.sh_ok(&format!("cat {dir}/max_memory")),
            "262144\n",
            "{name}"
        );
        assert_eq!(m.sh_ok(&format!("cat {dir}/uuid")), format!("{uuid}\n"));
        m.sh_ok(&format!("/bin/echo start > {dir}/control"));
        xen_common::Sim::wait_for(5, "the domain to start", || {
            m.sh_ok(&format!("cat {dir}/id")).trim() != "-1"
        });
        let id = m.sh_ok(&format!("cat {dir}/id")).trim().to_string();
        let read = |path: &str| {
            let out = xen_common::Sim::tool(&sim.socket(), "xenstore-read", &[path]);
            String::from_utf8_lossy(&out.stdout).trim_end().to_string()
        };
        assert_eq!(read(&format!("/local/domain/{id}/name")), name);
        assert_eq!(read("/local/domain/0/name"), "Domain-0");
        m.sh_ok(&format!("/bin/echo destroy > {dir}/control"));
        m.sh_ok(&format!("rmdir {dir}"));
        let now = (m.value("guest1/id"), m.value("guest1/state"));
        assert_eq!(now, guest1, "{name} touched guest1");
    }
    for name in [
        "../../local/domain/0",
        "guest1/../x",
        "a\r\nX-Injected: 1",
        "a&#0;b",
    ] {
        let xml = pv_xml(name, "11111111-2222-3333-4444-5555555555ff")
            .replace('\r', "&#13;")
            .replace("a&amp;#0;b", "a&#0;b");
        let f = files.path().join("bad.xml");
        std::fs::write(&f, xml).unwrap();
        m.sh_fails(
            &format!("cp {} define", quote(&f.display().to_string())),
            libc::EINVAL,
        );
        tried += 1;
    }
    assert_eq!(domains(&m), ["Domain-0", "guest1"]);
    assert_eq!((m.value("guest1/id"), m.value("guest1/state")), guest1);
    println!("{tried} hostile names tried");
}

/// Values written to a domain's files that try to smuggle a path, a second
/// command or a second line into a back-end request: each write fails with
/// EINVAL, and neither the domain's xenstore tree nor its definition moves.
#[test]
fn hostile_values_are_refused_before_any_back_end_sees_them() {
    if !have_tool("xenstore-ls") {
        return;
    }
    let (sim, m) = xen_mount();
    let id = m.value("guest1/id");
    let tree = || sim.xs("xenstore-ls", &["-f", &format!("/local/domain/{id}")]);
    let (store, xml) = (tree(), m.cat("guest1/xml"));
    assert!(store.contains("/memory/target"), "{store}");
    let attempts: &[(&str, &[&str])] = &[
        (
            "guest1/memory",
            &[
                "512M/../../0/memory/target",
                "262144\\n/local/domain/0/memory/target",
                "262144 ; destroy",
                "0x40000",
                "-1",
                "99999999999999999999999",
            ],
        ),
        ("guest1/vcpus", &["1/../2", "1 2", "+1"]),
        (
            "guest1/control",
            &[
                "setmem 1G/../x",
                "suspend\\ndestroy\\n",
                "save relative/path.img",
                "shutdown now",
                "destroy\\0000x",
            ],
        ),
    ];
    let mut tried = 0;
    for (file, values) in attempts {
        for v in *values {
            // printf's %b turns a value's backslash escapes (\n, \0NNN) into
            // bytes; coreutils' printf names the errno (dash's says "I/O error").
            let out = m.sh(&format!("/usr/bin/printf '%b\\n' {} > {file}", quote(v)));
            assert!(!out.status.success(), "{file} took {v:?}");
            assert_errno(&String::from_utf8_lossy(&out.stderr), libc::EINVAL);
            tried += 1;
        }
    }
    assert_eq!(tree(), store);
    assert_eq!(m.cat("guest1/xml"), xml);
    println!("{tried} hostile values refused");
}

/// XML that declares a DTD or leans on an entity is refused whole, through
/// every file that takes XML, and changes nothing.
#[test]
fn doctypes_and_entities_are_refused_everywhere_xml_goes_in() {
    let m = Mount::new("test:///default");
    let before = snapshot(&m);
    let dir = TempDir::new("dtd");
    let domain = |name: &str| {
        format!(
            "<domain type='test'><name>{name}</name><memory>65536</memory>\
             <os><type>hvm</type></os></domain>\n"
        )
    };
    let laughs = "<!DOCTYPE d [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;'>]>\n";
    let system = "<!DOCTYPE d [<!ENTITY s SYSTEM 'file:///etc/passwd'>]>\n";
    let docs = [
        format!("<!DOCTYPE domain>\n{}", domain("dtd1")),
        format!("{laughs}{}", domain("&b;")),
        format!("{system}{}", domain("&s;")),
        domain("&undeclared;"),
    ];
    let mut tried = 0;
    for (i, doc) in docs.iter().enumerate() {
        let f = dir.path().join(format!("{i}.xml"));
        std::fs::write(&f, doc).unwrap();
        let f = quote(&f.display().to_string());
        for target in ["define", "create", "test/xml"] {
            m.sh_fails(&format!("cat {f} > {target}"), libc::EINVAL);
            tried += 1;
        }
        let e = m.value("last_error") + &m.value("test/last_error");
        assert!(
            e.contains("DOCTYPE is refused") || e.contains("reference"),
            "{e}"
        );
    }
    assert_eq!(snapshot(&m), before);
    println!("{tried} DTD and entity documents refused");
}
