//! Whole XML documents: create, define and redefinition through `xml`,
//! applied on close so `cp` and `cat >` report a rejection.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
use common::*;

fn web1(memory: u64) -> String {
    format!(
        "<domain type='xen'>\n  <name>web1</name>\n  <memory>{memory}</memory>\n  <vcpu>2</vcpu>\n  \
         <os>\n    <type>linux</type>\n    <kernel>/boot/vmlinuz</kernel>\n  </os>\n  \
         <devices>\n    <disk type='file' device='disk'>\n      <source file='/srv/web1.img'/>\n      \
         <target dev='xvda'/>\n    </disk>\n  </devices>\n  <blkiotune><weight>800</weight></blkiotune>\n</domain>\n"
    )
}

fn write_file(dir: &TempDir, name: &str, text: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn define_then_start_then_undefine() {
    let m = Mount::new("test:///default");
    let dir = TempDir::new("xml");
    let f = write_file(&dir, "web1.xml", &web1(262144));
    // A listing just before the change must not be served after it.
    assert!(!String::from_utf8(m.sh("ls").stdout)
        .unwrap()
        .contains("web1"));
    m.sh_ok(&format!("cp {f} define"));
    assert_eq!(
        m.sh("ls").stdout,
        b"by-id\nby-uuid\ncreate\ndefine\nevents\nlast_error\nmetrics\nnode\nrestore\ntest\nweb1\n"
    );
    assert_eq!(m.value("web1/state"), "shutoff");
    assert_eq!(m.value("web1/id"), "-1");
    let uuid = m.value("web1/uuid");
    assert_eq!(uuid.len(), 36, "a UUID was generated: {uuid}");
    assert!(
        m.cat("web1/xml").contains("<blkiotune>"),
        "unknown elements kept"
    );
    m.echo_ok("start", "web1/control");
    assert_eq!(m.value("web1/id"), "2");
    assert_eq!(m.sh("readlink by-id/2").stdout, b"../web1\n");
    assert_eq!(
        m.sh(&format!("readlink by-uuid/{uuid}")).stdout,
        b"../web1\n"
    );
    m.echo_ok("shutdown", "web1/control");
    assert!(m.sh("rmdir web1").status.success());
    assert!(!String::from_utf8(m.sh("ls").stdout)
        .unwrap()
        .contains("web1"));
}

#[test]
fn create_starts_a_transient_domain_that_vanishes_when_it_stops() {
    let m = Mount::new("test:///default");
    let dir = TempDir::new("xml");
    let f = write_file(&dir, "web1.xml", &web1(131072));
    m.sh_ok(&format!("cat {f} > create"));
    assert_eq!(m.value("web1/state"), "running");
    assert_eq!(m.value("web1/id"), "2");
    assert_eq!(m.value("web1/memory"), "131072");
    // The same name again: it exists.
    m.sh_fails(&format!("cat {f} > create"), libc::EEXIST);
    m.echo_ok("destroy", "web1/control");
    assert!(!String::from_utf8(m.sh("ls").stdout)
        .unwrap()
        .contains("web1"));
    assert!(!m.sh("test -e web1").status.success());
}

#[test]
fn redefinition_through_xml() {
    let m = Mount::new("test:///default");
    let dir = TempDir::new("xml");
    let f = write_file(&dir, "v1.xml", &web1(262144));
    assert!(m.sh(&format!("cp {f} define")).status.success());
    let v2 = write_file(&dir, "v2.xml", &web1(524288));
    m.sh_ok(&format!("cp {v2} web1/xml"));
    assert_eq!(m.value("web1/max_memory"), "524288");
    assert!(m
        .cat("web1/xml")
        .contains("<memory unit='KiB'>524288</memory>"));
    // Editing the file in place with a shell, as a user might.
    m.sh_ok("sed 's/524288/393216/' web1/xml > /tmp/domfs-edit.$$ && cat /tmp/domfs-edit.$$ > web1/xml; r=$?; rm -f /tmp/domfs-edit.$$; exit $r");
    assert_eq!(m.value("web1/max_memory"), "393216");
    // A running domain keeps its live definition until it restarts.
    m.echo_ok("start", "web1/control");
    let v3 = write_file(&dir, "v3.xml", &web1(196608));
    assert!(m.sh(&format!("cp {v3} web1/xml")).status.success());
    assert_eq!(m.value("web1/max_memory"), "393216");
    m.echo_ok("destroy", "web1/control");
    assert_eq!(m.value("web1/max_memory"), "196608");
}

#[test]
fn a_rejected_xml_leaves_the_old_one_intact() {
    let m = Mount::new("test:///default");
    let dir = TempDir::new("xml");
    let before = m.cat("test/xml");
    for (name, text, says) in [
        ("broken.xml", "<domain type='test'><name>test</name>", "root element closed"),
        (
            "memory.xml",
            "<domain type='test'>\n<name>test</name>\n<memory>lots</memory>\n<os><type>hvm</type></os></domain>",
            "line 3",
        ),
        (
            "other.xml",
            "<domain type='test'><name>other</name><memory>1024</memory><os><type>hvm</type></os></domain>",
            "names domain 'other'",
        ),
        (
            "uuid.xml",
            "<domain type='test'><name>test</name><uuid>00000000-0000-0000-0000-000000000009</uuid>\
             <memory>1024</memory><os><type>hvm</type></os></domain>",
            "uuid",
        ),
    ] {
        let f = write_file(&dir, name, text);
        let out = m.sh(&format!("cp {f} test/xml"));
        assert!(!out.status.success(), "{name} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_errno(&err, libc::EINVAL);
        let why = m.value("test/last_error");
        assert!(why.contains(says), "{name}: {why}");
        assert_eq!(m.cat("test/xml"), before, "{name} changed the XML");
    }
    // define and create report bad documents from close too.
    let f = write_file(
        &dir,
        "bad.xml",
        "<domain type='xen'><memory>1</memory></domain>",
    );
    for target in ["define", "create"] {
        m.sh_fails(&format!("cp {f} {target}"), libc::EINVAL);
        assert!(
            m.value("last_error").contains("name"),
            "{}",
            m.value("last_error")
        );
    }
    // A name clash on define: EEXIST.
    let clash = write_file(
        &dir,
        "clash.xml",
        "<domain type='test'><name>test</name><uuid>00000000-0000-0000-0000-000000000009</uuid>\
         <memory>1024</memory><os><type>hvm</type></os></domain>",
    );
    m.sh_fails(&format!("cp {clash} define"), libc::EEXIST);
    assert_eq!(m.cat("test/xml"), before);
}

/// A refused document is dropped: writing it again from offset 0 (busybox's
/// `cat` does, after a failed write) meets the same refusal and reason, not
/// an out-of-order write, and `last_error` keeps the real reason.
#[test]
fn a_refused_document_can_be_written_again_from_the_start() {
    let m = Mount::new("test:///default");
    let uuid = m.value("test/uuid");
    let doc = web1(262144).replace(
        "<name>web1</name>",
        &format!("<name>other</name><uuid>{uuid}</uuid>"),
    );
    let script = format!(
        "import os, sys\n\
         fd = os.open('define', os.O_WRONLY)\n\
         doc = {doc:?}.encode()\n\
         for attempt in range(2):\n\
         \x20   try:\n\
         \x20       os.pwrite(fd, doc, 0)\n\
         \x20       sys.exit('attempt %d was taken' % attempt)\n\
         \x20   except OSError as e:\n\
         \x20       print(attempt, e.errno)\n\
         os.close(fd)\n"
    );
    let out = m.sh(&format!("python3 -c {}", quote(&script)));
    assert!(out.status.success(), "{out:?}");
    let eexist = libc::EEXIST;
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("0 {eexist}\n1 {eexist}\n")
    );
    let last = m.cat("last_error");
    assert!(
        last.contains("already") && !last.contains("in order"),
        "{last}"
    );
}

/// How programs write a file from a shell, each run by `/bin/dash` and
/// `/bin/bash` as `SHELL -c SCRIPT`: `{f}` is the document's path, `{t}` the
/// target. dash opens a lone command's redirect itself and forks the writer,
/// so the shell, not the writer, holds the file last.
const WRITERS: [&str; 8] = [
    "cat {f} > {t}",
    "cat < {f} > {t}",
    "{ cat {f}; } > {t}",
    "tee {t} < {f} > /dev/null",
    "cp {f} {t}",
    "dd if={f} of={t} status=none",
    "dd if={f} status=none > {t}",
    "exec cat {f} > {t}",
];

/// Builtins: the shell writes and closes the file itself.
const BUILTINS: [&str; 2] = [
    "echo \"$(cat {f})\" > {t}",
    "printf '%s\\n' \"$(cat {f})\" > {t}",
];

fn run_in(m: &Mount, shell: &str, form: &str, f: &str, target: &str) -> std::process::Output {
    let script = form.replace("{f}", f).replace("{t}", target);
    std::process::Command::new(shell)
        .arg("-c")
        .arg(&script)
        .current_dir(m.path())
        .output()
        .unwrap()
}

#[test]
fn a_document_cut_short_fails_the_writers_exit_status_in_every_shell() {
    let m = Mount::new("test:///default");
    let dir = TempDir::new("forms");
    let f = write_file(&dir, "cut.xml", "<domain type='test'>\n<name>cut</name>\n");
    for shell in ["/bin/dash", "/bin/bash"] {
        for form in WRITERS {
            let out = run_in(&m, shell, form, &f, "define");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{shell} -c '{form}' exited 0");
            assert_errno(&err, libc::EINVAL);
            assert!(
                m.value("last_error").contains("root element closed"),
                "{shell} -c '{form}': {}",
                m.value("last_error")
            );
            assert!(!m.path().join("cut").exists(), "{shell} -c '{form}'");
        }
    }
    m.assert_alive();
}

#[test]
fn a_rejected_document_fails_every_shell_form_and_changes_nothing() {
    let m = Mount::new("test:///default");
    let dir = TempDir::new("forms");
    // Complete, but a domain needs its memory.
    let f = write_file(
        &dir,
        "bad.xml",
        "<domain type='test'><name>bad</name></domain>\n",
    );
    let before = m.cat("test/xml");
    for shell in ["/bin/dash", "/bin/bash"] {
        for form in WRITERS.iter().chain(&BUILTINS) {
            for target in ["define", "create", "test/xml"] {
                let out = run_in(&m, shell, form, &f, target);
                assert!(
                    !out.status.success(),
                    "{shell} -c '{form}' into {target} exited 0"
                );
                assert!(!m.path().join("bad").exists(), "{shell} -c '{form}'");
            }
        }
    }
    assert_eq!(m.cat("test/xml"), before);
    m.assert_alive();
}

#[test]
fn a_good_document_is_applied_once_by_every_shell_form() {
    let m = Mount::new("test:///default");
    let dir = TempDir::new("forms");
    let mut n = 0;
    for shell in ["/bin/dash", "/bin/bash"] {
        for form in WRITERS.iter().chain(&BUILTINS) {
            n += 1;
            let name = format!("d{n}");
            let f = write_file(
                &dir,
                &format!("{name}.xml"),
                &format!(
                    "<domain type='test'><name>{name}</name><memory>65536</memory>\
                     <os><type>hvm</type></os></domain>\n"
                ),
            );
            // create a second time would fail (the domain exists) and be
            // logged a second time.
            let out = run_in(&m, shell, form, &f, "create");
            assert!(
                out.status.success(),
                "{shell} -c '{form}': {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(m.value(&format!("{name}/state")), "running");
            let applied = format!("{name}: defined from written XML");
            assert_eq!(
                m.log_text().matches(&applied).count(),
                1,
                "{shell} -c '{form}'"
            );
        }
    }
    assert!(!m.log_text().contains("nothing was applied"));
    m.assert_alive();
}
