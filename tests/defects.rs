//! One black-box test per class of defect a new user found (issue 15): input
//! that crashed or stalled the daemon, commands that destroyed data, failures
//! the writer never saw, and editors and tools that could not work. Each test
//! ends by checking that the daemon still answers.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::{assert_errno, quote, Mount, TempDir};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

fn write_file(dir: &TempDir, name: &str, text: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

const SMALL: &str = "<domain type='test'>\n  <name>small</name>\n  <memory>65536</memory>\n  \
                     <os>\n    <type>hvm</type>\n  </os>\n</domain>\n";

fn python(m: &Mount, code: &str) -> std::process::Output {
    Command::new("python3")
        .arg("-c")
        .arg(code)
        .current_dir(m.path())
        .output()
        .expect("run python3")
}

#[test]
fn document_writes_are_bounded() {
    let m = Mount::new("test:///default");
    // A write far past the limit: EFBIG, nothing allocated.
    let out = python(
        &m,
        "import os\nfd=os.open('define', os.O_WRONLY)\ntry:\n  os.pwrite(fd, b'x', 1<<44)\n  print('accepted')\nexcept OSError as e:\n  print(e.errno)",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        libc::EFBIG.to_string()
    );
    // Growing a document in order past 10 MiB: EFBIG at the write that crosses.
    let out = python(
        &m,
        "import os\nfd=os.open('define', os.O_WRONLY)\nchunk=b' '*(1<<20)\ntry:\n  for i in range(11): os.write(fd, chunk)\n  print('accepted')\nexcept OSError as e:\n  print(e.errno, i)",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{} 10", libc::EFBIG)
    );
    assert!(m.value("last_error").contains("at most 10485760 bytes"));
    m.assert_alive();
}

#[test]
fn deeply_nested_documents_are_refused_without_harm() {
    let m = Mount::new("test:///default");
    let dir = TempDir::new("deep");
    let deep = SMALL.replace(
        "</os>",
        &format!(
            "</os>\n  <metadata>{}{}</metadata>",
            "<m>".repeat(20_000),
            "</m>".repeat(20_000)
        ),
    );
    let f = write_file(&dir, "deep.xml", &deep);
    m.sh_fails(&format!("cp {f} define"), libc::EINVAL);
    assert!(m.value("last_error").contains("deeper than 256 levels"));
    m.assert_alive();
    assert!(!m.path().join("small").exists());
}

#[test]
fn images_are_never_saved_or_restored_inside_the_mount() {
    let m = Mount::new("test:///default");
    let out = m.sh("timeout 10 /bin/echo \"save $PWD/by-id/1/img\" > test/control");
    assert!(!out.status.success());
    assert_errno(&String::from_utf8_lossy(&out.stderr), libc::EINVAL);
    assert!(m
        .value("test/last_error")
        .contains("inside the domfs mount"));
    // Through a symbolic link elsewhere that leads into the mount.
    let dir = TempDir::new("link");
    std::os::unix::fs::symlink(m.path(), dir.path().join("into")).unwrap();
    let via = dir.path().join("into/test/img");
    m.echo_fails(
        &format!("save {}", via.display()),
        "test/control",
        libc::EINVAL,
    );
    m.echo_fails(&via.display().to_string(), "restore", libc::EINVAL);
    assert_eq!(m.value("test/state"), "running");
    m.assert_alive();
}

#[test]
fn restore_reads_only_regular_files_and_only_so_much() {
    let m = Mount::new("test:///default");
    let dir = TempDir::new("restore");
    // A device that never ends, and a FIFO nobody writes to.
    let out = m.sh("timeout 10 /bin/echo /dev/zero > restore");
    assert!(!out.status.success());
    assert_errno(&String::from_utf8_lossy(&out.stderr), libc::EINVAL);
    assert!(m.value("last_error").contains("not a regular file"));
    let fifo = dir.path().join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for _ in 0..6 {
        let out = m.sh(&format!(
            "timeout 10 /bin/echo {} > restore",
            fifo.display()
        ));
        assert!(!out.status.success());
        assert_errno(&String::from_utf8_lossy(&out.stderr), libc::EINVAL);
    }
    // A large regular file is refused after reading no more than an image.
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'T'; 50 << 20]).unwrap();
    m.echo_fails(&big.display().to_string(), "restore", libc::EINVAL);
    assert!(m
        .value("last_error")
        .contains("larger than any saved image"));
    m.assert_alive();
}

#[test]
fn a_name_too_long_for_a_file_name_never_breaks_a_listing() {
    let m = Mount::new("test:///default");
    let dir = TempDir::new("long");
    let name = "n".repeat(5000);
    let f = write_file(&dir, "long.xml", &SMALL.replace("small", &name));
    m.sh_ok(&format!("cp {f} define"));
    let listing = m.sh_ok("ls");
    let long = listing
        .lines()
        .find(|l| l.contains("%%"))
        .unwrap_or_else(|| panic!("no shortened name in: {listing}"));
    assert!(long.len() <= 255 && long.starts_with("nnnn"), "{long}");
    assert_eq!(m.value(&format!("{long}/state")), "shutoff");
    let uuid = m.value(&format!("{long}/uuid"));
    assert!(long.ends_with(&uuid));
    assert_eq!(
        m.sh_ok(&format!("readlink by-uuid/{uuid}")).trim(),
        format!("../{long}")
    );
    assert!(m.cat(&format!("{long}/xml")).contains(&name));
    m.sh_ok(&format!("rmdir {long}"));
    assert!(!m.sh_ok("ls").contains("%%"));
    m.assert_alive();
}

#[test]
fn save_writes_through_links_and_never_over_special_files() {
    let m = Mount::new("test:///default");
    let dir = TempDir::new("save");
    // A device node stays a device node.
    let dev = dir.path().join("null");
    assert!(Command::new("mknod")
        .arg(&dev)
        .args(["c", "1", "3"])
        .status()
        .unwrap()
        .success());
    m.echo_fails(
        &format!("save {}", dev.display()),
        "test/control",
        libc::EINVAL,
    );
    assert!(std::fs::symlink_metadata(&dev)
        .unwrap()
        .file_type()
        .is_char_device());
    assert_eq!(m.value("test/state"), "running");
    // An existing image keeps its owner and mode; a link is followed.
    let img = dir.path().join("img");
    std::fs::write(&img, b"old").unwrap();
    std::fs::set_permissions(&img, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(&img, Some(65534), Some(65534)).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&img, &link).unwrap();
    m.echo_ok(&format!("save {}", link.display()), "test/control");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    let meta = std::fs::metadata(&img).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o640);
    assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
    assert!(std::fs::read(&img).unwrap().starts_with(b"TestGuestMagic"));
    assert_eq!(m.value("test/state"), "shutoff");
    m.echo_ok(&img.display().to_string(), "restore");
    assert_eq!(m.value("test/state"), "running");
    m.assert_alive();
}

#[test]
fn a_document_from_several_processes_is_applied_once_when_complete() {
    let m = Mount::new("test:///default");
    let dir = TempDir::new("parts");
    let (a, b) = SMALL.split_at(SMALL.find("<os>").unwrap());
    let fa = write_file(&dir, "a.xml", a);
    let fb = write_file(&dir, "b.xml", b);
    m.sh_ok(&format!("{{ cat {fa}; cat {fb}; }} > define"));
    assert_eq!(m.value("small/state"), "shutoff");
    let xml = m.cat("small/xml");
    assert!(!xml.contains('\0') && xml.contains("<memory unit='KiB'>65536</memory>"));
    // A part that can never complete a document fails its own write.
    m.sh_fails(
        &format!("{{ cat {fa}; /bin/echo '</domain>junk'; }} > define"),
        libc::EINVAL,
    );
    m.assert_alive();
}

#[test]
fn sizes_are_the_values_length_for_tail_tar_and_append() {
    let m = Mount::new("test:///default");
    let dir = TempDir::new("sizes");
    let f = write_file(&dir, "small.xml", SMALL);
    m.sh_ok(&format!("cp {f} define"));
    let xml = m.cat("test/xml");
    let size: usize = m.sh_ok("stat -c %s test/xml").trim().parse().unwrap();
    assert_eq!(size, xml.len());
    let last2: Vec<&str> = xml.lines().rev().take(2).collect();
    let tail = m.sh_ok("tail -n 2 test/xml");
    assert_eq!(tail, format!("{}\n{}\n", last2[1], last2[0]));
    // tar of a shut-off domain's directory gives back every value exactly.
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    m.sh_ok(&format!("tar cf - small | tar xf - -C {}", out.display()));
    for file in [
        "xml",
        "state",
        "uuid",
        "info",
        "memory",
        "control",
        "inactive_xml",
    ] {
        let got = std::fs::read_to_string(out.join("small").join(file)).unwrap();
        assert_eq!(got, m.cat(&format!("small/{file}")), "{file}");
    }
    // `>>` writes a whole document: it redefines like `>`.
    let bigger = SMALL.replace("65536", "131072");
    let g = write_file(&dir, "bigger.xml", &bigger);
    m.sh_ok(&format!("cat {g} >> small/xml"));
    assert_eq!(m.value("small/max_memory"), "131072");
    m.assert_alive();
}

#[test]
fn a_shell_redirect_sees_a_rejected_document() {
    let m = Mount::new("test:///default");
    for shell in ["sh", "bash"] {
        for script in [
            "echo '<domain>bad</domain>' > define",
            "printf '<domain>bad</domain>' > define",
            "echo '<domain>bad</domain>' >> test/xml",
            "exec 3> define; echo '<domain>bad</domain>' >&3",
        ] {
            let out = Command::new(shell)
                .arg("-c")
                .arg(script)
                .current_dir(m.path())
                .output()
                .unwrap();
            assert!(!out.status.success(), "{shell}: {script} exited 0");
            // dash's builtins name every failure "I/O error"; bash names it.
            if shell == "bash" {
                assert_errno(&String::from_utf8_lossy(&out.stderr), libc::EINVAL);
            }
        }
    }
    assert!(m
        .value("last_error")
        .contains("missing the 'type' attribute"));
    m.assert_alive();
}

#[test]
fn a_command_may_arrive_in_pieces() {
    let m = Mount::new("test:///default");
    let out = python(
        &m,
        "import os\nfd=os.open('test/control', os.O_WRONLY)\nos.write(fd, b'susp')\nos.write(fd, b'end')\nprint(open('test/state').read().strip())\nos.write(fd, b'\\n')\nos.write(fd, b'  \\n')\nos.close(fd)\nprint(open('test/state').read().strip())",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "running\npaused\n");
    m.sh_ok("printf 'resume\\n' | dd bs=1 of=test/control 2>/dev/null");
    assert_eq!(m.value("test/state"), "running");
    // A last command without a newline is applied at close.
    m.sh_ok("printf suspend > test/control");
    assert_eq!(m.value("test/state"), "paused");
    // Two commands in one write: refused whole.
    m.sh_fails(
        "/usr/bin/printf 'resume\\nsuspend\\n' > test/control",
        libc::EINVAL,
    );
    assert_eq!(m.value("test/state"), "paused");
    m.echo_ok("resume", "test/control");
    m.assert_alive();
}

#[test]
fn definitions_are_validated_as_libvirt_does() {
    let m = Mount::new("test:///default");
    let dir = TempDir::new("valid");
    for (from, to, says) in [
        (
            "<memory>65536</memory>",
            "<memory>0</memory>",
            "memory size must be specified",
        ),
        (
            "<memory>65536</memory>",
            "<memory>18446744073709551615</memory>",
            "value too large",
        ),
        (
            "<memory>65536</memory>",
            "<memory> 1024 </memory>",
            "invalid value ' 1024 '",
        ),
        ("type='test'", "type='bogus'", "invalid domain type 'bogus'"),
    ] {
        let f = write_file(&dir, "v.xml", &SMALL.replace(from, to));
        m.sh_fails(&format!("cp {f} define"), libc::EINVAL);
        let why = m.value("last_error");
        assert!(why.contains(says), "{to}: {why}");
        assert!(!m.path().join("small").exists());
    }
    let f = write_file(
        &dir,
        "id.xml",
        &SMALL.replace("type='test'", "type='test' id='abc'"),
    );
    m.sh_ok(&format!("cp {f} define"));
    assert_eq!(m.value("small/id"), "-1");
    m.assert_alive();
}

#[test]
fn failures_are_one_readable_line() {
    let m = Mount::new("test:///default");
    let out = python(
        &m,
        "import os\nfd=os.open('test/control', os.O_WRONLY)\ntry:\n  os.write(fd, b'\\x00\\x1b[31mevil\\rx' + b'y'*(1<<20) + b'\\n')\nexcept OSError as e:\n  print(e.errno)",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        libc::EINVAL.to_string()
    );
    let why = m.cat("test/last_error");
    assert_eq!(why.matches('\n').count(), 1, "{why:?}");
    assert!(why.len() < 1200, "{} bytes", why.len());
    assert!(!why.trim_end().chars().any(char::is_control), "{why:?}");
    assert!(why.contains("\\u{1b}"), "{why}");
    let log = m.log_text();
    assert!(!log.contains('\u{1b}') && !log.contains('\0'));
    m.assert_alive();
}

#[test]
fn editors_can_edit_xml() {
    let m = Mount::new("test:///default");
    // sed -i writes a temporary file and renames it over xml: a redefinition.
    m.sh_ok("sed -i 's/8388608/4194304/' test/xml");
    assert!(m
        .cat("test/inactive_xml")
        .contains("<memory unit='KiB'>4194304</memory>"));
    // The running domain keeps its live definition until it restarts.
    assert!(m.cat("test/xml").contains("8388608"));
    let listing = m.sh_ok("ls -a test");
    assert!(!listing.contains("sed"), "{listing}");
    m.sh_ok("cat test/xml > /dev/null && stat test/xml > /dev/null");
    // A failed edit leaves the definition and no temporary file behind.
    let out = m.sh("sed -i 's/<name>test</<name>other</' test/xml");
    assert!(!out.status.success());
    assert!(m.cat("test/inactive_xml").contains("4194304"));
    // vim's default save (a backup, then a write over the file) works too.
    if common::have_tool("vim") {
        m.sh_ok("vim -Es -u NONE -c '%s/8388608/2097152/' -c 'wq' test/xml");
        assert!(m
            .cat("test/inactive_xml")
            .contains("<memory unit='KiB'>2097152</memory>"));
        assert!(!m.sh_ok("ls -a test").contains(".swp"));
    }
    assert!(!m.sh_ok("ls -a test").contains("sed"));
    // Other creates stay refused.
    m.sh_fails("echo x > test/newfile", libc::EPERM);
    m.sh_fails("touch test/newfile", libc::EPERM);
    m.assert_alive();
}

#[test]
fn namespace_changes_answer_eperm() {
    let m = Mount::new("test:///default");
    for script in [
        "mv test/state test/moved",
        "mv test other",
        "ln test/state test/hard",
        "ln -s state test/soft",
        "mkdir test/dir",
        "mknod test/fifo p",
        "rm test/state",
    ] {
        m.sh_fails(script, libc::EPERM);
    }
    assert!(Path::new(&m.path().join("test/state")).exists());
    let q = quote("x y");
    m.sh_fails(&format!("mv test {q}"), libc::EPERM);
    m.assert_alive();
}
