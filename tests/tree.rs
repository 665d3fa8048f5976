//! The tree a shell user sees: names, modes, values, links, and the values of
//! libvirt's own `test:///default` for comparison.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
use common::*;
use std::process::Command;

const TEST_UUID: &str = "6695eb01-f6a4-8304-79aa-97f2502e193f";
const DOMAIN_FILES: [&str; 20] = [
    "autostart",
    "control",
    "cpu_time",
    "devices",
    "id",
    "inactive_xml",
    "info",
    "last_error",
    "max_memory",
    "max_vcpus",
    "memory",
    "os_type",
    "sched",
    "state",
    "stats",
    "uuid",
    "vcpu",
    "vcpus",
    "wait",
    "xml",
];

#[test]
fn ls_shows_the_root_and_a_domain() {
    let m = Mount::new("test:///default");
    assert_eq!(
        m.sh("ls").stdout,
        b"by-id\nby-uuid\ncreate\ndefine\nevents\nlast_error\nmetrics\nnode\nrestore\ntest\n"
    );
    let files = String::from_utf8(m.sh("ls test").stdout).unwrap();
    assert_eq!(files.lines().collect::<Vec<_>>(), DOMAIN_FILES);
    assert_eq!(
        m.sh("ls node").stdout,
        b"capabilities\ncells\nfree_memory\nhypervisor\ninfo\n"
    );
}

#[test]
fn modes_and_owner_follow_the_interface() {
    let m = Mount::new("test:///default");
    let out = m.sh(
        "stat -c '%n %a %F %u' . test node by-id create define restore last_error test/* node/*",
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let uid = String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string();
    let mut seen = 0;
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let (name, mode, owner) = (f[0], f[1], *f.last().unwrap());
        let want = match name {
            "." | "test" | "node" | "by-id" | "test/vcpu" | "test/wait" | "test/sched"
            | "test/devices" | "test/stats" | "node/cells" => "555",
            "create" | "define" | "restore" => "200",
            "test/xml" | "test/control" | "test/memory" | "test/max_memory" | "test/vcpus"
            | "test/autostart" => "644",
            _ => "444",
        };
        assert_eq!(mode, want, "{line}");
        assert_eq!(owner, uid, "{line}");
        seen += 1;
    }
    assert_eq!(seen, 8 + 20 + 5, "{text}");
    assert!(text.contains("test 555 directory"), "{text}");
    assert!(text.contains("test/state 444 regular"));
}

#[test]
fn every_value_file_of_test_default() {
    let m = Mount::new("test:///default");
    assert_eq!(m.value("test/state"), "running");
    assert_eq!(m.value("test/id"), "1");
    assert_eq!(m.value("test/uuid"), TEST_UUID);
    assert_eq!(m.value("test/os_type"), "linux");
    assert_eq!(m.value("test/vcpus"), "2");
    assert_eq!(m.value("test/memory"), "2097152");
    assert_eq!(m.value("test/max_memory"), "8388608");
    assert_eq!(m.cat("test/last_error"), "");
    let cpu: u64 = m.value("test/cpu_time").parse().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let later: u64 = m.value("test/cpu_time").parse().unwrap();
    assert!(
        later > cpu,
        "cpu_time must grow while running: {cpu} then {later}"
    );
    assert_eq!(
        m.cat("test/control"),
        "shutdown\nreboot\ndestroy\nsuspend\nsave PATH\nsetmem SIZE\nsetvcpus N\ndump PATH\n"
    );
    let xml = m.cat("test/xml");
    assert!(xml.starts_with("<domain type='test' id='1'>\n"), "{xml}");
    assert!(xml.contains(&format!("<uuid>{TEST_UUID}</uuid>")));
    assert!(xml.contains("<memory unit='KiB'>8388608</memory>"));
    assert!(xml.ends_with("</domain>\n"));
    assert_eq!(
        m.cat("node/info"),
        "model i686\ncpus 16\nmhz 1400\nnodes 2\nsockets 2\ncores 2\nthreads 2\nmemory 3145728\n"
    );
    assert_eq!(m.cat("node/hypervisor"), "type TEST\nversion 0.0.2\n");
    assert_eq!(m.cat("last_error"), "");
}

#[test]
fn info_lists_its_keys_in_order() {
    let m = Mount::new("test:///default");
    let info = pairs(&m.cat("test/info"));
    let keys: Vec<&str> = info.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "state",
            "id",
            "uuid",
            "os_type",
            "vcpus",
            "memory",
            "max_memory",
            "cpu_time"
        ]
    );
    // The same values as the single files.
    for (k, v) in &info {
        if k != "cpu_time" {
            assert_eq!(&m.value(&format!("test/{k}")), v, "{k}");
        }
    }
}

/// `cat test/info` against libvirt 9's own `virsh -c test:///default dominfo test`.
#[test]
fn info_matches_libvirt_test_default() {
    if !have_tool("virsh") {
        return;
    }
    let m = Mount::new("test:///default");
    let ours: std::collections::HashMap<String, String> =
        pairs(&m.cat("test/info")).into_iter().collect();
    let virsh_info = virsh("test:///default", &["dominfo", "test"]);
    let field = |label: &str| virsh_field(&virsh_info, label);
    assert_eq!(ours["id"], field("Id:"));
    assert_eq!(ours["uuid"], field("UUID:"));
    assert_eq!(ours["os_type"], field("OS Type:"));
    assert_eq!(ours["state"], field("State:"));
    assert_eq!(ours["vcpus"], field("CPU(s):"));
    assert_eq!(format!("{} KiB", ours["max_memory"]), field("Max memory:"));
    assert_eq!(format!("{} KiB", ours["memory"]), field("Used memory:"));

    let node = virsh("test:///default", &["nodeinfo"]);
    let nf = |label: &str| virsh_field(&node, label);
    let ours: std::collections::HashMap<String, String> =
        pairs(&m.cat("node/info")).into_iter().collect();
    assert_eq!(ours["model"], nf("CPU model:"));
    assert_eq!(ours["cpus"], nf("CPU(s):"));
    assert_eq!(format!("{} MHz", ours["mhz"]), nf("CPU frequency:"));
    assert_eq!(ours["sockets"], nf("CPU socket(s):"));
    assert_eq!(ours["cores"], nf("Core(s) per socket:"));
    assert_eq!(ours["threads"], nf("Thread(s) per core:"));
    assert_eq!(ours["nodes"], nf("NUMA cell(s):"));
    assert_eq!(format!("{} KiB", ours["memory"]), nf("Memory size:"));

    let version = virsh("test:///default", &["version"]);
    let hv = pairs(&m.cat("node/hypervisor"));
    let running = format!("Running hypervisor: {} {}", hv[0].1, hv[1].1);
    assert!(version.contains(&running), "{running} not in: {version}");
}

#[test]
fn symlinks_by_id_and_by_uuid() {
    let m = Mount::new("test:///default");
    assert_eq!(m.sh("ls by-id").stdout, b"1\n");
    assert_eq!(m.sh("readlink by-id/1").stdout, b"../test\n");
    assert_eq!(
        m.sh(&format!("readlink by-uuid/{TEST_UUID}")).stdout,
        b"../test\n"
    );
    // Through the link, as a user would.
    assert_eq!(m.value("by-id/1/state"), "running");
    assert_eq!(m.value(&format!("by-uuid/{TEST_UUID}/id")), "1");
    let out = m.sh("ls -l by-uuid");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{TEST_UUID} -> ../test")));
    // A stopped domain has no id and so no by-id link; by-uuid stays.
    m.echo_ok("destroy", "test/control");
    assert_eq!(m.sh("ls by-id").stdout, b"");
    assert!(!m.sh("readlink by-id/1").status.success());
    assert_eq!(
        m.sh("ls by-uuid").stdout,
        format!("{TEST_UUID}\n").into_bytes()
    );
    m.echo_ok("start", "test/control");
    assert_eq!(m.sh("ls by-id").stdout, b"2\n");
    assert_eq!(m.sh("readlink by-id/2").stdout, b"../test\n");
}

#[test]
fn stat_size_never_truncates_a_read() {
    let m = Mount::new("test:///default");
    // The size is the value's length ("running\n").
    let size = m.sh("stat -c %s test/state").stdout;
    assert_eq!(size, b"8\n");
    // A definition larger than the size stat shows still reads whole.
    let disks: String = (0..100)
        .map(|i| {
            format!(
                "<disk type='file' device='disk'><source file='/var/lib/images/big-{i:03}.img'/>\
                 <target dev='xvd{i}'/></disk>"
            )
        })
        .collect();
    let xml = format!(
        "<domain type='xen'><name>big</name><memory>262144</memory>\
         <os><type>linux</type></os><devices>{disks}</devices></domain>"
    );
    let file = TempDir::new("xml");
    let path = file.path().join("big.xml");
    std::fs::write(&path, &xml).unwrap();
    m.sh_ok(&format!("cat '{}' > define", path.display()));
    let text = m.cat("big/xml");
    assert!(text.len() > 8192, "only {} bytes", text.len());
    assert!(text.contains("big-099.img") && text.ends_with("</domain>\n"));
    let wc = m.sh("wc -c < big/xml").stdout;
    assert_eq!(
        String::from_utf8(wc).unwrap().trim(),
        text.len().to_string()
    );
}

/// `metrics` keeps the length it had when last built for `stat` (building
/// it asks every domain), but not past a change: a domain more is a longer
/// text at the next `stat`, though nobody read the file in between.
#[test]
fn metrics_size_follows_the_host() {
    let m = Mount::new("test:///default");
    let size = |m: &Mount| -> u64 {
        let out = m.sh_ok("stat -c %s metrics");
        out.trim().parse().unwrap()
    };
    let before = size(&m);
    assert!(before > 0);
    let file = TempDir::new("metrics");
    let path = file.path().join("more.xml");
    std::fs::write(
        &path,
        "<domain type='test'><name>more</name><memory>65536</memory>\
         <os><type>hvm</type></os></domain>",
    )
    .unwrap();
    m.sh_ok(&format!("cat {} > create", quote(path.to_str().unwrap())));
    // The kernel keeps attributes for a TTL (1 s).
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let after = size(&m);
    assert!(
        after > before,
        "metrics was {before} bytes, {after} with a domain more"
    );
    assert!(m.cat("metrics").contains("domain=\"more\""));
}

#[test]
fn inode_numbers_stay_stable_for_a_domains_life() {
    let m = Mount::new("test:///default");
    let inodes = || String::from_utf8(m.sh("stat -c %i test test/state test/xml").stdout).unwrap();
    let before = inodes();
    m.echo_ok("suspend", "test/control");
    m.echo_ok("destroy", "test/control");
    m.echo_ok("start", "test/control");
    assert_eq!(inodes(), before);
    let ids: Vec<&str> = before.lines().collect();
    assert_eq!(ids.len(), 3);
    assert!(ids[0] != ids[1] && ids[1] != ids[2]);
}

#[test]
fn a_host_file_with_several_domains() {
    let dir = TempDir::new("host");
    std::fs::write(
        dir.path().join("b.xml"),
        "<domain type='xen'><name>b</name><uuid>00000000000000000000000000000002</uuid>\
         <memory>131072</memory><vcpu>2</vcpu><os><type>linux</type></os></domain>",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("host.xml"),
        "<node><cpu><mhz>2400</mhz><model>x86_64</model><active>6</active><nodes>1</nodes>\
         <sockets>2</sockets><cores>2</cores><threads>2</threads></cpu><memory>4194304</memory>\
         <domain type='xen'><name>a</name><uuid>00000000-0000-0000-0000-000000000001</uuid>\
         <memory>262144</memory><currentMemory>131072</currentMemory><os><type>hvm</type></os>\
         </domain><domain file='b.xml'/><network file='net.xml'/></node>",
    )
    .unwrap();
    let m = Mount::new(&format!("test://{}/host.xml", dir.path().display()));
    assert_eq!(
        m.cat("node/info"),
        "model x86_64\ncpus 6\nmhz 2400\nnodes 1\nsockets 2\ncores 2\nthreads 2\nmemory 4194304\n"
    );
    assert_eq!(m.value("a/id"), "1");
    assert_eq!(m.value("b/id"), "2");
    assert_eq!(m.value("a/memory"), "131072");
    assert_eq!(m.value("a/max_memory"), "262144");
    assert_eq!(m.value("b/memory"), "131072");
    assert_eq!(m.value("b/vcpus"), "2");
    assert_eq!(m.value("b/uuid"), "00000000-0000-0000-0000-000000000002");
    assert!(
        m.log_text().contains("skipping <network>"),
        "{}",
        m.log_text()
    );
}

#[test]
fn a_bad_uri_or_host_file_fails_to_mount_with_a_reason() {
    let dir = TempDir::new("mnt");
    for (uri, says) in [
        ("qemu:///system", "unknown URI scheme 'qemu'"),
        ("test:///nonexistent/host.xml", "cannot read host file"),
        ("xen:///", "no Xen back end is reachable"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_domfs"))
            .arg(uri)
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{uri} mounted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{uri}: {err}");
        assert!(!is_mountpoint(dir.path()));
    }
}

/// `cat test/xml` is what libvirt 9's `virsh -c test:///default dumpxml test` prints.
#[test]
fn xml_matches_libvirt_test_default() {
    if !have_tool("virsh") {
        return;
    }
    let m = Mount::new("test:///default");
    let dumpxml = virsh("test:///default", &["dumpxml", "test"]);
    assert_eq!(m.cat("test/xml").trim_end(), dumpxml.trim_end());
}
