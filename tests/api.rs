//! The Xen-era API files (issue 26) on `test:///default`, each compared with
//! what `virsh -c test:///default` says about the same host after the same
//! steps. Every virsh process starts from the default host, so the steps
//! run inside one virsh invocation, as domfs runs them in one mount.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
mod xen_common;
use common::*;
use std::process::{Command, Stdio};

const URI: &str = "test:///default";

/// `virsh -c test:///default SCRIPT`: its status and standard output.
fn virsh_try(script: &str) -> (bool, String) {
    let out = Command::new("timeout")
        .args(["30", "virsh", "-c", URI, script])
        .env("LC_ALL", "C")
        .output()
        .expect("run virsh");
    (
        out.status.success(),
        String::from_utf8(out.stdout).expect("utf-8"),
    )
}

fn virsh_ok(script: &str) -> String {
    virsh(URI, &[script])
}

/// The number after `label` on virsh's line, unit dropped (`2048 KiB`).
fn number_after(out: &str, label: &str) -> u64 {
    let v = virsh_field(out, label);
    v.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn max_vcpus_is_the_domain_maximum() {
    let m = Mount::new(URI);
    let virsh_max = |steps: &str| {
        virsh_ok(&format!("{steps} vcpucount test --maximum --live"))
            .trim()
            .to_string()
    };
    assert_eq!(m.value("test/max_vcpus"), virsh_max(""));
    m.echo_ok("1", "test/vcpus");
    assert_eq!(
        m.value("test/max_vcpus"),
        virsh_max("setvcpus test 1 --live;")
    );
    assert_ne!(m.value("test/vcpus"), m.value("test/max_vcpus"));
    m.echo_fails("3", "test/max_vcpus", libc::EACCES);
    let mode = m.sh_ok("stat -c %a test/max_vcpus");
    assert_eq!(mode.trim(), "444");
}

/// `dominfo`'s "Autostart:" as the file spells it.
fn virsh_autostart(steps: &str, dom: &str) -> String {
    let out = virsh_ok(&format!("{steps} dominfo {dom}"));
    match virsh_field(&out, "Autostart:").as_str() {
        "enable" => "1".into(),
        "disable" => "0".into(),
        other => panic!("virsh says autostart '{other}'"),
    }
}

#[test]
fn autostart_reads_and_writes_like_virsh() {
    let m = Mount::new(URI);
    assert_eq!(m.value("test/autostart"), virsh_autostart("", "test"));
    m.echo_ok("1", "test/autostart");
    assert_eq!(
        m.value("test/autostart"),
        virsh_autostart("autostart test;", "test")
    );
    // Kept across a stop, as libvirt keeps it.
    m.echo_ok("destroy", "test/control");
    assert_eq!(
        m.value("test/autostart"),
        virsh_autostart("autostart test; destroy test;", "test")
    );
    m.echo_ok("0", "test/autostart");
    assert_eq!(
        m.value("test/autostart"),
        virsh_autostart("autostart test; autostart --disable test;", "test")
    );
    let mode = m.sh_ok("stat -c %a test/autostart");
    assert_eq!(mode.trim(), "644");
}

#[test]
fn autostart_accepts_only_0_or_1_and_changes_nothing_otherwise() {
    let m = Mount::new(URI);
    m.echo_ok("1", "test/autostart");
    for bad in ["2", "yes", "-1", "01 1"] {
        m.echo_fails(bad, "test/autostart", libc::EINVAL);
        assert_eq!(m.value("test/autostart"), "1", "after {bad}");
        let why = m.cat("test/last_error");
        assert!(why.contains("is not 0 or 1"), "{why}");
    }
}

#[test]
fn a_transient_domain_takes_autostart_as_libvirts_test_driver_does() {
    let m = Mount::new(URI);
    let dir = TempDir::new("api");
    let xml = m
        .cat("test/xml")
        .replace("<name>test</name>", "<name>tr</name>");
    let xml: String = xml
        .lines()
        .filter(|l| !l.contains("<uuid>"))
        .map(|l| format!("{l}\n"))
        .collect();
    let file = dir.path().join("tr.xml");
    std::fs::write(&file, &xml).unwrap();
    m.sh_ok(&format!("cat {} > create", quote(file.to_str().unwrap())));
    let steps = format!("create {}; autostart tr;", file.display());
    let (virsh_took_it, _) = virsh_try(&steps);
    let wrote = m.echo("1", "tr/autostart");
    assert_eq!(wrote.is_ok(), virsh_took_it, "{wrote:?}");
    assert_eq!(m.value("tr/autostart"), virsh_autostart(&steps, "tr"));
    assert_eq!(
        virsh_field(&virsh_ok(&format!("{steps} dominfo tr")), "Persistent:"),
        "no"
    );
}

#[test]
fn free_memory_of_the_node_and_of_each_cell() {
    let m = Mount::new(URI);
    let total = virsh_ok("freecell");
    assert_eq!(
        m.value("node/free_memory").parse::<u64>().unwrap(),
        number_after(&total, "Total:")
    );
    // `freecell --all`: one "N: FREE KiB" line per cell, then the total.
    let all = virsh_ok("freecell --all");
    let cells: Vec<(String, u64)> = all
        .lines()
        .filter_map(|l| {
            let (n, rest) = l.trim().split_once(':')?;
            n.parse::<u32>().ok()?;
            Some((n.to_string(), rest.split_whitespace().next()?.parse().ok()?))
        })
        .collect();
    assert!(!cells.is_empty(), "{all}");
    let listed = m.sh_ok("ls node/cells");
    let names: Vec<&str> = listed.lines().collect();
    assert_eq!(
        names,
        cells.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>()
    );
    for (n, free) in &cells {
        let value: u64 = m
            .value(&format!("node/cells/{n}/free_memory"))
            .parse()
            .unwrap();
        assert_eq!(value, *free, "cell {n}");
        let one = virsh_ok(&format!("freecell --cellno {n}"));
        assert_eq!(value, number_after(&one, &format!("{n}:")), "cell {n}");
    }
    // A cell the host lacks is no entry at all.
    let missing = cells.len();
    m.sh_fails(
        &format!("cat node/cells/{missing}/free_memory"),
        libc::ENOENT,
    );
    m.sh_fails("cat node/cells/00/free_memory", libc::ENOENT);
}

/// `vcpuinfo` and `vcpupin` of `test` after `steps`.
fn virsh_vcpus(steps: &str) -> Vec<Vcpu> {
    common::virsh_vcpus(URI, "test", steps)
}

fn domfs_vcpus(m: &Mount) -> Vec<Vcpu> {
    common::domfs_vcpus(m, "test")
}

#[test]
fn vcpus_and_pinning_match_vcpuinfo_and_vcpupin() {
    let m = Mount::new(URI);
    assert_eq!(domfs_vcpus(&m), virsh_vcpus(""));
    let mut steps = String::new();
    for (vcpu, list) in [("0", "3,5-6"), ("1", "7"), ("1", "0-1"), ("0", "0-7,^2")] {
        m.echo_ok(list, &format!("test/vcpu/{vcpu}/affinity"));
        steps.push_str(&format!("vcpupin test {vcpu} {list};"));
        assert_eq!(domfs_vcpus(&m), virsh_vcpus(&steps), "after {steps}");
    }
    // Pinning holds while paused.
    m.echo_ok("suspend", "test/control");
    m.echo_ok("4", "test/vcpu/1/affinity");
    steps.push_str("suspend test; vcpupin test 1 4;");
    assert_eq!(domfs_vcpus(&m), virsh_vcpus(&steps), "after {steps}");
    // Fewer vCPUs in use, fewer directories.
    m.echo_ok("resume", "test/control");
    m.echo_ok("1", "test/vcpus");
    steps.push_str("resume test; setvcpus test 1 --live;");
    assert_eq!(domfs_vcpus(&m), virsh_vcpus(&steps), "after {steps}");
    assert_eq!(m.sh_ok("ls test/vcpu"), "0\n");
    // CPU time is the domain's, shared between its vCPUs.
    let t: u64 = m.value("test/vcpu/0/cpu_time").parse().unwrap();
    let whole: u64 = m.value("test/cpu_time").parse().unwrap();
    assert!(t > 0 && t <= whole, "{t} of {whole}");
}

#[test]
fn a_shut_off_domain_has_offline_vcpus_that_cannot_be_pinned() {
    let m = Mount::new(URI);
    m.echo_ok("destroy", "test/control");
    assert_eq!(domfs_vcpus(&m), virsh_vcpus("destroy test;"));
    let (virsh_pinned, _) = virsh_try("destroy test; vcpupin test 0 1");
    assert!(!virsh_pinned);
    m.echo_fails("1", "test/vcpu/0/affinity", libc::EBUSY);
    assert_eq!(m.value("test/vcpu/0/cpu_time"), "0");
    assert_eq!(domfs_vcpus(&m), virsh_vcpus("destroy test;"));
}

#[test]
fn a_cpu_the_host_lacks_is_einval_and_changes_nothing() {
    let m = Mount::new(URI);
    m.echo_ok("1-2", "test/vcpu/0/affinity");
    let present = number_after(&virsh_ok("nodecpumap"), "CPUs present:");
    for bad in [
        format!("{present}"),
        format!("0-{present}"),
        format!("1,{}", present + 7),
    ] {
        let (virsh_pinned, _) = virsh_try(&format!("vcpupin test 0 {bad}"));
        assert!(!virsh_pinned, "virsh pinned to {bad}");
        m.echo_fails(&bad, "test/vcpu/0/affinity", libc::EINVAL);
        assert_eq!(m.value("test/vcpu/0/affinity"), "1-2", "after {bad}");
        let why = m.cat("test/last_error");
        assert!(why.contains("not on this host"), "{why}");
    }
    // The last CPU the host has is fine.
    m.echo_ok(&format!("{}", present - 1), "test/vcpu/0/affinity");
    for bad in ["x", "3-1", "^1", "1,,2", "1 2"] {
        m.echo_fails(bad, "test/vcpu/0/affinity", libc::EINVAL);
        assert_eq!(m.value("test/vcpu/0/affinity"), format!("{}", present - 1));
    }
    // A vCPU past the ones in use has no directory.
    m.sh_fails("cat test/vcpu/2/affinity", libc::ENOENT);
}

/// libvirt's `virDomainState` codes, by the names `virsh domstate` prints.
fn state_code(virsh_state: &str) -> u8 {
    match virsh_state {
        "no state" => 0,
        "running" => 1,
        "idle" => 2,
        "paused" => 3,
        "in shutdown" => 4,
        "shut off" => 5,
        "crashed" => 6,
        "pmsuspended" => 7,
        other => panic!("unknown virsh state '{other}'"),
    }
}

/// The value of `family` for domain `name` in the metrics text.
fn sample(text: &str, family: &str, name: &str) -> String {
    let prefix = format!("{family}{{domain=\"{name}\",");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.rsplit_once(' '))
        .map(|(_, v)| v.to_string())
        .unwrap_or_else(|| panic!("no {family} for {name} in:\n{text}"))
}

#[test]
fn metrics_hold_every_domains_numbers() {
    let m = Mount::new(URI);
    let dir = TempDir::new("api");
    // A second domain, shut off, so both kinds of id label show.
    let xml = "<domain type='test'><name>other</name><memory>524288</memory>\
               <vcpu>3</vcpu><os><type>hvm</type></os></domain>";
    let file = dir.path().join("other.xml");
    std::fs::write(&file, xml).unwrap();
    m.echo_ok(xml, "define");
    m.echo_ok("suspend", "test/control");
    let steps = format!("define {}; suspend test;", file.display());
    let text = m.cat("metrics");
    for name in ["test", "other"] {
        let uuid = m.value(&format!("{name}/uuid"));
        let id = m.value(&format!("{name}/id"));
        let labels = format!("{{domain=\"{name}\",uuid=\"{uuid}\",id=\"{id}\"}}");
        assert!(text.contains(&labels), "{labels} in:\n{text}");
        let info = virsh_ok(&format!("{steps} dominfo {name}"));
        let kib = |label| number_after(&info, label) * 1024;
        assert_eq!(
            sample(&text, "domfs_domain_state", name),
            state_code(&virsh_field(&info, "State:")).to_string()
        );
        assert_eq!(
            sample(&text, "domfs_domain_memory_bytes", name),
            kib("Used memory:").to_string()
        );
        assert_eq!(
            sample(&text, "domfs_domain_memory_max_bytes", name),
            kib("Max memory:").to_string()
        );
        assert_eq!(
            sample(&text, "domfs_domain_vcpus", name),
            virsh_field(&info, "CPU(s):")
        );
        // domfs accounts CPU time (libvirt's test driver shows the clock):
        // the same number as the domain's cpu_time file, in seconds.
        let secs: f64 = sample(&text, "domfs_domain_cpu_seconds_total", name)
            .parse()
            .unwrap();
        let ns: f64 = m.value(&format!("{name}/cpu_time")).parse().unwrap();
        assert!((secs - ns / 1e9).abs() < 1e-6, "{secs} vs {ns} ns");
    }
    for family in [
        "domfs_domain_state",
        "domfs_domain_cpu_seconds_total",
        "domfs_domain_memory_bytes",
        "domfs_domain_memory_max_bytes",
        "domfs_domain_vcpus",
    ] {
        assert!(text.contains(&format!("# HELP {family} ")), "{family}");
        assert!(text.contains(&format!("# TYPE {family} ")), "{family}");
    }
}

/// promtool's own check: the exposition is well formed and its names
/// follow Prometheus's conventions (it warns about those on stdout and
/// fails on them).
#[test]
fn promtool_accepts_the_metrics() {
    if !have_tool("promtool") {
        return;
    }
    let m = Mount::new(URI);
    // A name that needs escaping in a label value.
    let xml = "<domain type='test'><name>we\\ird\"one</name><memory>1024</memory>\
               <os><type>hvm</type></os></domain>";
    m.echo_ok(xml, "define");
    let text = m.cat("metrics");
    assert!(text.contains(r#"domain="we\\ird\"one""#), "{text}");
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// On a Xen connection without the hypervisor driver (which answers
/// vCPUs and free memory; autostart needs the libxl driver) no driver
/// answers these: each file says so with EOPNOTSUPP, and a write's
/// `last_error` names the operation.
#[test]
fn without_a_driver_for_them_the_files_are_eopnotsupp() {
    let sim = xen_common::Sim::start(&["--guest", "guest1,memory=256,vcpus=2"]);
    let opt = format!("xenstore={},privcmd=none", sim.socket().display());
    let m = Mount::with_options("xen:///", &["-o", &opt]);
    for read in [
        "cat guest1/max_vcpus",
        "cat guest1/autostart",
        "ls guest1/vcpu",
        "cat node/free_memory",
        "ls node/cells",
    ] {
        m.sh_fails(read, libc::EOPNOTSUPP);
    }
    let why = m.cat("guest1/last_error");
    assert!(why.contains("get autostart"), "{why}");
    // They are still files: `ls -l` lists them.
    let long = m.sh_ok("ls -l guest1 node");
    assert!(
        long.contains(" max_vcpus\n") && long.contains(" free_memory\n"),
        "{long}"
    );
    m.echo_fails("1", "guest1/autostart", libc::EOPNOTSUPP);
    let why = m.cat("guest1/last_error");
    assert!(why.contains("set autostart"), "{why}");
    // The metrics need only the list and each domain's info.
    let text = m.cat("metrics");
    assert!(
        text.contains("domfs_domain_memory_bytes{domain=\"guest1\","),
        "{text}"
    );
}
