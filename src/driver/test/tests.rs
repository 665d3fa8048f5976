//! The test driver through the `Driver` trait (and the `Dispatcher`, where its
//! argument checks matter), checked against the values libvirt 9.0's own test
//! driver gives. When `virsh` is installed it is the reference: images move
//! both ways between it and us, and host files are compared value by value.

use super::*;
use crate::dispatch::Dispatcher;
use crate::driver::{DriverKind, Operation};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use ErrorKind as K;

const TEST_UUID: &str = "6695eb01-f6a4-8304-79aa-97f2502e193f";
/// A save path no save can write to.
const NOWHERE: &str = "/nonexistent-domfs-dir/never.img";
const TESTNODE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/conformance/libvirt-testnode/testnode.xml"
);

// ---------------------------------------------------------------------------
// Helpers

fn drv() -> TestDriver {
    TestDriver::default_host().expect("test:///default")
}

fn test_dom(d: &TestDriver) -> DomainRef {
    d.lookup_by_name("test").expect("domain 'test'")
}

fn info(d: &TestDriver, dom: &DomainRef) -> DomainInfo {
    d.domain_info(dom).expect("domain info")
}

/// (maximum memory, current memory, vcpus) as `domain_info` reports them.
fn sizes(d: &TestDriver, dom: &DomainRef) -> (u64, u64, u32) {
    let i = info(d, dom);
    (i.max_memory_kib, i.memory_kib, i.vcpus)
}

/// Every domain: the active ones, then the defined ones.
fn all(d: &TestDriver) -> Vec<DomainRef> {
    let mut doms = d.list_active().expect("list active");
    doms.extend(d.list_defined().expect("list defined"));
    doms
}

fn names(d: &TestDriver) -> Vec<String> {
    all(d).into_iter().map(|r| r.name.0).collect()
}

fn uuid(s: &str) -> Uuid {
    Uuid::parse(s).expect("uuid")
}

/// A small domain definition; `extra` goes at the end of `<domain>`.
fn def(name: &str, uuid: Option<&str>, extra: &str) -> DomainDef {
    let uuid = uuid
        .map(|u| format!("<uuid>{u}</uuid>"))
        .unwrap_or_default();
    DomainDef::parse(&format!(
        "<domain type='test'><name>{name}</name>{uuid}<memory unit='KiB'>524288</memory>\
         <vcpu>2</vcpu><os><type>hvm</type></os>{extra}</domain>"
    ))
    .expect("test definition")
}

/// `test` of a fresh `test:///default`, brought into `state`.
fn test_in(state: State) -> (TestDriver, DomainRef) {
    let d = drv();
    let dom = test_dom(&d);
    match state {
        State::Running => {}
        State::Paused => d.suspend(&dom).unwrap(),
        State::ShutOff => d.destroy(&dom).unwrap(),
        other => panic!("the test driver cannot reach {other}"),
    }
    assert_eq!(info(&d, &dom).state, state);
    (d, dom)
}

/// Asserts that `r` failed with `kind` and a message containing every part.
fn assert_err<T>(r: Result<T>, kind: ErrorKind, parts: &[&str]) -> Error {
    let e = match r {
        Ok(_) => panic!("expected a {kind:?} error containing {parts:?}, got success"),
        Err(e) => e,
    };
    assert_eq!(e.kind, kind, "wrong kind: {e}");
    for p in parts {
        assert!(e.message.contains(p), "'{e}' does not mention '{p}'");
    }
    e
}

/// A directory under the system's temp dir, removed with everything in it
/// when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("domfs-testdrv-{}-{tag}-{n}", std::process::id());
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.join(name);
        std::fs::write(&path, bytes).expect("write temp file");
        path
    }

    fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .expect("read temp dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Says why a test did nothing; under CI=true a missing reference is a failure.
fn skip(test: &str, why: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: {why}, and CI=true requires it");
    }
    println!("skipping {test}: {why}");
}

fn have_virsh(test: &str) -> bool {
    let found = Command::new("which")
        .arg("virsh")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        skip(
            test,
            "virsh is not installed (Debian package libvirt-clients)",
        );
    }
    found
}

fn have_testnode(test: &str) -> bool {
    let found = Path::new(TESTNODE).is_file();
    if !found {
        skip(test, &format!("{TESTNODE} is absent"));
    }
    found
}

/// How long one virsh run may take. virsh 9.0's `save` sometimes never
/// returns after the image is written (its job watcher misses the end of
/// the save; seen here in 10 of 30 parallel runs), so no virsh call may
/// hang a test.
const VIRSH_DEADLINE: &str = "15";

/// Runs `virsh -c URI COMMANDS` under a deadline and returns its output and
/// whether it finished in time; fails the test if virsh failed.
fn virsh_within(uri: &str, commands: &str) -> (String, bool) {
    let out = Command::new("timeout")
        .args([VIRSH_DEADLINE, "virsh", "-c", uri, commands])
        .env("LC_ALL", "C")
        .output()
        .expect("run virsh");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let timed_out = out.status.code() == Some(124);
    assert!(
        out.status.success() || timed_out,
        "virsh -c {uri} '{commands}' failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (stdout, !timed_out)
}

/// Runs `virsh -c URI COMMANDS`, which must finish in time and succeed.
fn virsh(uri: &str, commands: &str) -> String {
    let (out, finished) = virsh_within(uri, commands);
    assert!(
        finished,
        "virsh -c {uri} '{commands}' did not finish in {VIRSH_DEADLINE} s"
    );
    out
}

/// The value after `label` on the first line of virsh output starting with it.
fn field<'a>(out: &'a str, label: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(label))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no '{label}' in virsh output:\n{out}"))
}

// ---------------------------------------------------------------------------
// test:///default

#[test]
fn default_host_node_and_hypervisor() {
    let d = drv();
    let n = d.node_info().unwrap();
    assert_eq!(n.model, "i686");
    assert_eq!(
        (n.cpus, n.mhz, n.nodes, n.sockets, n.cores, n.threads),
        (16, 1400, 2, 2, 2, 2)
    );
    assert_eq!(n.memory_kib, 3_145_728);
    let hv = d.hypervisor().unwrap();
    assert_eq!(hv.kind, "TEST");
    assert_eq!(hv.version.to_string(), "0.0.2");
    assert_eq!(d.kind(), DriverKind::Test);
    // Everything but what libvirt 9's test driver lacks too.
    let lacking: Vec<Operation> = Operation::ALL
        .iter()
        .copied()
        .filter(|op| !d.supports(*op))
        .collect();
    assert_eq!(lacking, [Operation::AttachDevice, Operation::DetachDevice]);
}

#[test]
fn default_host_has_the_one_running_domain_test() {
    let d = drv();
    assert_eq!(names(&d), ["test"]);
    let dom = test_dom(&d);
    assert_eq!(dom.uuid.to_string(), TEST_UUID);
    assert_eq!(dom.id, Some(DomainId(1)));
    assert_eq!(d.lookup_by_id(DomainId(1)).unwrap(), dom);
    assert_eq!(d.lookup_by_uuid(uuid(TEST_UUID)).unwrap(), dom);
    assert_eq!(d.list_active().unwrap(), std::slice::from_ref(&dom));
    assert!(d.list_defined().unwrap().is_empty());
    assert_eq!(info(&d, &dom).state, State::Running);
    assert_eq!(d.domain_os_type(&dom).unwrap(), "linux");
    assert_eq!(sizes(&d, &dom), (8_388_608, 2_097_152, 2));
    let x = d.domain_xml(&dom).unwrap();
    assert_eq!(x.os.os_type, "hvm");
    assert_eq!(x.id, Some(DomainId(1)));
    assert_eq!(x.name, "test");
    assert!(x.to_xml().starts_with("<domain type='test' id='1'>"));
}

#[test]
fn unknown_domains_are_no_domain() {
    let d = drv();
    assert_err(d.lookup_by_name("nope"), K::NoDomain, &["'nope'"]);
    assert_err(d.lookup_by_id(DomainId(2)), K::NoDomain, &["id 2"]);
    let other = "00000000-0000-4000-8000-000000000001";
    assert_err(d.lookup_by_uuid(uuid(other)), K::NoDomain, &[other]);
    let made_up = DomainRef {
        name: DomainName("test".into()),
        uuid: uuid(other),
        id: Some(DomainId(1)),
    };
    assert_err(d.domain_info(&made_up), K::NoDomain, &[other]);
}

// ---------------------------------------------------------------------------
// The state table

type Op = fn(&TestDriver, &DomainRef) -> Result<()>;

#[test]
fn the_state_table_refuses_illegal_transitions() {
    let cases: &[(State, &str, Op)] = &[
        (State::Paused, "suspend", |d, x| d.suspend(x)),
        (State::ShutOff, "suspend", |d, x| d.suspend(x)),
        (State::Running, "resume", |d, x| d.resume(x)),
        (State::ShutOff, "resume", |d, x| d.resume(x)),
        (State::Running, "start", |d, x| d.start(x)),
        (State::Paused, "start", |d, x| d.start(x)),
        (State::ShutOff, "shutdown", |d, x| d.shutdown(x)),
        (State::ShutOff, "reboot", |d, x| d.reboot(x)),
        (State::ShutOff, "destroy", |d, x| d.destroy(x)),
        (State::ShutOff, "save", |d, x| d.save(x, Path::new(NOWHERE))),
        (State::Running, "undefine", |d, x| d.undefine(x)),
        (State::Paused, "undefine", |d, x| d.undefine(x)),
        (State::Running, "setmaxmem", |d, x| {
            d.set_max_memory(x, 4_194_304)
        }),
        (State::Paused, "setmaxmem", |d, x| {
            d.set_max_memory(x, 4_194_304)
        }),
    ];
    for (state, op, call) in cases {
        let (d, dom) = test_in(*state);
        let before = d.domain_xml(&dom).unwrap();
        let e = assert_err(call(&d, &dom), K::InvalidState, &["'test'", op]);
        assert!(e.message.contains(state.as_str()), "{op} in {state}: {e}");
        assert_eq!(info(&d, &dom).state, *state, "{op} changed the state");
        assert_eq!(
            d.domain_xml(&dom).unwrap(),
            before,
            "{op} changed the domain"
        );
    }
    assert!(!Path::new(NOWHERE).exists());
}

#[test]
fn a_stale_reference_is_no_domain() {
    let (d, dom) = test_in(State::ShutOff);
    d.undefine(&dom).unwrap();
    let ops: &[(&str, Op)] = &[
        ("info", |d, x| d.domain_info(x).map(drop)),
        ("xml", |d, x| d.domain_xml(x).map(drop)),
        ("start", |d, x| d.start(x)),
        ("shutdown", |d, x| d.shutdown(x)),
        ("reboot", |d, x| d.reboot(x)),
        ("destroy", |d, x| d.destroy(x)),
        ("suspend", |d, x| d.suspend(x)),
        ("resume", |d, x| d.resume(x)),
        ("undefine", |d, x| d.undefine(x)),
        ("save", |d, x| d.save(x, Path::new(NOWHERE))),
        ("setmem", |d, x| d.set_memory(x, 1024)),
        ("setmaxmem", |d, x| d.set_max_memory(x, 1024)),
        ("setvcpus", |d, x| d.set_vcpus(x, 1)),
    ];
    for (op, call) in ops {
        let e = assert_err(call(&d, &dom), K::NoDomain, &["'test'"]);
        assert!(e.message.contains(TEST_UUID), "{op}: {e}");
    }
}

// ---------------------------------------------------------------------------
// Lifecycle

#[test]
fn suspend_and_resume_keep_the_id() {
    let d = drv();
    let dom = test_dom(&d);
    d.suspend(&dom).unwrap();
    assert_eq!(info(&d, &dom).state, State::Paused);
    assert_eq!(d.lookup_by_id(DomainId(1)).unwrap(), dom);
    d.resume(&dom).unwrap();
    assert_eq!(info(&d, &dom).state, State::Running);
    assert_eq!(test_dom(&d).id, Some(DomainId(1)));
}

#[test]
fn shutdown_and_destroy_stop_persistent_and_remove_transient_domains() {
    let d = drv();
    let dom = test_dom(&d);
    d.shutdown(&dom).unwrap();
    assert_eq!(info(&d, &dom).state, State::ShutOff);
    assert_eq!(test_dom(&d).id, None);
    assert_eq!(d.domain_xml(&dom).unwrap().id, None);
    assert_err(d.lookup_by_id(DomainId(1)), K::NoDomain, &[]);

    // From paused too, and destroy alike.
    d.start(&dom).unwrap();
    d.suspend(&dom).unwrap();
    d.shutdown(&dom).unwrap();
    assert_eq!(info(&d, &dom).state, State::ShutOff);
    d.start(&dom).unwrap();
    d.suspend(&dom).unwrap();
    d.destroy(&dom).unwrap();
    assert_eq!(info(&d, &dom).state, State::ShutOff);
    assert_eq!(names(&d), ["test"]);

    for stop in [TestDriver::shutdown as Op, TestDriver::destroy as Op] {
        let web = d.create_xml(def("web", None, "")).unwrap();
        stop(&d, &web).unwrap();
        assert_err(d.lookup_by_name("web"), K::NoDomain, &[]);
        assert_err(d.domain_info(&web), K::NoDomain, &["'web'"]);
        assert_eq!(names(&d), ["test"]);
    }
}

#[test]
fn reboot_follows_on_reboot() {
    let d = drv();
    let dom = test_dom(&d);
    d.reboot(&dom).unwrap();
    assert_eq!(info(&d, &dom).state, State::Running);
    assert_eq!(test_dom(&d).id, Some(DomainId(1)));
    d.suspend(&dom).unwrap();
    d.reboot(&dom).unwrap();
    assert_eq!(info(&d, &dom).state, State::Running);
    assert_eq!(test_dom(&d).id, Some(DomainId(1)));

    for (action, keeps_running) in [
        ("destroy", false),
        ("preserve", false),
        ("restart", true),
        ("rename-restart", true),
    ] {
        let name = format!("r-{action}");
        let on_reboot = format!("<on_reboot>{action}</on_reboot>");
        let r = d.define_xml(def(&name, None, &on_reboot)).unwrap();
        d.start(&r).unwrap();
        let id = d.lookup_by_name(&name).unwrap().id;
        assert!(id.is_some());
        d.reboot(&r).unwrap();
        let (want, want_id) = match keeps_running {
            true => (State::Running, id),
            false => (State::ShutOff, None),
        };
        assert_eq!(info(&d, &r).state, want, "on_reboot {action}");
        assert_eq!(d.lookup_by_name(&name).unwrap().id, want_id, "{action}");
    }
    // A transient domain that is shut off by its reboot is gone.
    let t = d
        .create_xml(def("t", None, "<on_reboot>destroy</on_reboot>"))
        .unwrap();
    d.reboot(&t).unwrap();
    assert_err(d.lookup_by_name("t"), K::NoDomain, &[]);
}

#[test]
fn ids_are_never_reused() {
    let d = drv();
    let dom = test_dom(&d);
    d.shutdown(&dom).unwrap();
    d.start(&dom).unwrap();
    assert_eq!(test_dom(&d).id, Some(DomainId(2)));
    assert_eq!(d.domain_xml(&dom).unwrap().id, Some(DomainId(2)));
    d.destroy(&dom).unwrap();
    d.start(&dom).unwrap();
    assert_eq!(test_dom(&d).id, Some(DomainId(3)));
    let web = d.create_xml(def("web", None, "")).unwrap();
    assert_eq!(web.id, Some(DomainId(4)));
    d.destroy(&web).unwrap();
    let web = d.create_xml(def("web", None, "")).unwrap();
    assert_eq!(web.id, Some(DomainId(5)));
    assert_err(d.lookup_by_id(DomainId(1)), K::NoDomain, &[]);
    assert_eq!(d.lookup_by_id(DomainId(3)).unwrap().name.0, "test");
}

#[test]
fn define_adds_a_shut_off_domain() {
    let d = drv();
    let a = d.define_xml(def("a", None, "")).unwrap();
    assert_eq!(a.id, None);
    assert_eq!(a.uuid.0[6] >> 4, 4, "a generated UUID is version 4");
    assert_ne!(a.uuid, uuid(TEST_UUID));
    assert_eq!(d.lookup_by_uuid(a.uuid).unwrap(), a);
    let i = info(&d, &a);
    assert_eq!((i.state, i.cpu_time_ns), (State::ShutOff, 0));
    assert_eq!(sizes(&d, &a), (524_288, 524_288, 2));
    assert_eq!(d.domain_xml(&a).unwrap().uuid, Some(a.uuid));

    let given = "11111111-2222-4333-8444-555555555555";
    let b = d.define_xml(def("b", Some(given), "")).unwrap();
    assert_eq!(b.uuid.to_string(), given);
    assert_eq!(names(&d), ["test", "a", "b"]);
    d.start(&b).unwrap();
    assert_eq!(d.lookup_by_name("b").unwrap().id, Some(DomainId(2)));
}

#[test]
fn redefining_a_running_domain_takes_effect_at_its_next_start() {
    let d = drv();
    let dom = test_dom(&d);
    let live = d.domain_xml(&dom).unwrap();
    let mut new = live.clone();
    new.set_memory_kib(4_194_304);
    new.set_current_memory_kib(Some(1_048_576));
    assert_eq!(d.define_xml(new).unwrap(), dom);

    assert_eq!(d.domain_xml(&dom).unwrap(), live);
    assert_eq!(info(&d, &dom).max_memory_kib, 8_388_608);
    d.destroy(&dom).unwrap();
    let config = d.domain_xml(&dom).unwrap();
    assert_eq!((config.id, config.memory_kib), (None, 4_194_304));
    d.start(&dom).unwrap();
    assert_eq!(sizes(&d, &dom), (4_194_304, 1_048_576, 2));
    let x = d.domain_xml(&dom).unwrap();
    assert_eq!((x.id, x.memory_kib), (Some(DomainId(2)), 4_194_304));
    assert_eq!(names(&d), ["test"]);
}

#[test]
fn name_and_uuid_clashes_are_already_exists() {
    let d = drv();
    let other = "11111111-2222-4333-8444-555555555555";
    for clash in [
        def("test", Some(other), ""),
        def("other", Some(TEST_UUID), ""),
    ] {
        assert_err(d.define_xml(clash.clone()), K::AlreadyExists, &["test"]);
        assert_err(d.create_xml(clash), K::AlreadyExists, &["test"]);
    }
    // An active domain cannot be created again, with or without its UUID.
    for again in [def("test", None, ""), def("test", Some(TEST_UUID), "")] {
        assert_err(d.create_xml(again), K::AlreadyExists, &["already active"]);
    }
    assert_eq!(names(&d), ["test"]);
    assert_eq!(info(&d, &test_dom(&d)).max_memory_kib, 8_388_608);
}

#[test]
fn create_starts_a_transient_domain() {
    let d = drv();
    let web = d.create_xml(def("web", None, "")).unwrap();
    assert_eq!(web.id, Some(DomainId(2)));
    assert_eq!(d.lookup_by_name("web").unwrap(), web);
    assert_eq!(info(&d, &web).state, State::Running);
    assert_eq!(sizes(&d, &web), (524_288, 524_288, 2));
    d.destroy(&web).unwrap();
    assert_eq!(names(&d), ["test"]);

    // Creating a shut-off persistent domain runs the new definition once;
    // the domain stays defined with its own.
    let dom = test_dom(&d);
    d.destroy(&dom).unwrap();
    let r = d.create_xml(def("test", None, "")).unwrap();
    assert_eq!((r.uuid, r.id), (dom.uuid, Some(DomainId(3))));
    assert_eq!(info(&d, &dom).max_memory_kib, 524_288);
    d.destroy(&dom).unwrap();
    assert_eq!(info(&d, &dom).max_memory_kib, 8_388_608);
}

#[test]
fn undefine_removes_a_shut_off_domain() {
    let (d, dom) = test_in(State::ShutOff);
    let defined: Vec<Uuid> = d.list_defined().unwrap().iter().map(|r| r.uuid).collect();
    assert_eq!(defined, [dom.uuid]);
    d.undefine(&dom).unwrap();
    assert!(all(&d).is_empty());
    assert_err(d.lookup_by_name("test"), K::NoDomain, &[]);
    assert_err(d.lookup_by_uuid(dom.uuid), K::NoDomain, &[]);
    // The name is free again.
    let other = "11111111-2222-4333-8444-555555555555";
    d.define_xml(def("test", Some(other), "")).unwrap();
    assert_eq!(test_dom(&d).uuid.to_string(), other);
}

// ---------------------------------------------------------------------------
// Memory and vcpus

#[test]
fn set_memory_is_live_on_a_running_domain_and_bounded_by_max() {
    let d = drv();
    let dom = test_dom(&d);
    assert_err(
        d.set_memory(&dom, 8_388_609),
        K::InvalidArgument,
        &["8388609", "8388608"],
    );
    assert_eq!(info(&d, &dom).memory_kib, 2_097_152);
    d.set_memory(&dom, 1_048_576).unwrap();
    assert_eq!(sizes(&d, &dom), (8_388_608, 1_048_576, 2));
    let x = d.domain_xml(&dom).unwrap();
    assert_eq!(x.current_memory_kib, Some(1_048_576));
    // A later live change keeps it (the running definition becomes a copy
    // of its own, memory included).
    d.set_vcpus(&dom, 1).unwrap();
    assert_eq!(sizes(&d, &dom), (8_388_608, 1_048_576, 1));
    d.set_memory(&dom, 8_388_608).unwrap();
    assert_eq!(info(&d, &dom).memory_kib, 8_388_608);
    // Live only: the configuration comes back after a restart.
    d.destroy(&dom).unwrap();
    assert_eq!(info(&d, &dom).memory_kib, 2_097_152);
    // On a shut-off domain it changes the configuration.
    d.set_memory(&dom, 524_288).unwrap();
    d.start(&dom).unwrap();
    assert_eq!(info(&d, &dom).memory_kib, 524_288);
}

#[test]
fn set_max_memory_on_a_shut_off_domain() {
    let (d, dom) = test_in(State::ShutOff);
    // Below current memory: current follows it down.
    d.set_max_memory(&dom, 1_048_576).unwrap();
    assert_eq!(sizes(&d, &dom), (1_048_576, 1_048_576, 2));
    // Raising it keeps current memory.
    d.set_max_memory(&dom, 16_777_216).unwrap();
    assert_eq!(sizes(&d, &dom), (16_777_216, 1_048_576, 2));
    d.start(&dom).unwrap();
    assert_eq!(sizes(&d, &dom), (16_777_216, 1_048_576, 2));

    // Without <currentMemory> too, as libvirt (virsh setmaxmem --config).
    let r = d.define_xml(def("nocur", None, "")).unwrap();
    d.set_max_memory(&r, 1_048_576).unwrap();
    assert_eq!(sizes(&d, &r), (1_048_576, 524_288, 2));
    d.set_max_memory(&r, 262_144).unwrap();
    assert_eq!(sizes(&d, &r), (262_144, 262_144, 2));
}

#[test]
fn set_vcpus_live_and_in_the_configuration() {
    let d = drv();
    let dom = test_dom(&d);
    assert_err(d.set_vcpus(&dom, 3), K::InvalidArgument, &["3 > 2"]);
    assert_eq!(info(&d, &dom).vcpus, 2);
    d.set_vcpus(&dom, 1).unwrap();
    assert_eq!(info(&d, &dom).vcpus, 1);
    assert_eq!(d.domain_xml(&dom).unwrap().current_vcpus, Some(1));
    d.set_vcpus(&dom, 2).unwrap();
    assert_eq!(info(&d, &dom).vcpus, 2);
    assert_eq!(d.domain_xml(&dom).unwrap().current_vcpus, None);

    d.destroy(&dom).unwrap();
    d.set_vcpus(&dom, 1).unwrap();
    assert_eq!(info(&d, &dom).vcpus, 1);
    assert_eq!(d.domain_xml(&dom).unwrap().current_vcpus, Some(1));
    assert_err(d.set_vcpus(&dom, 5), K::InvalidArgument, &["5 > 2"]);
    d.start(&dom).unwrap();
    assert_eq!(info(&d, &dom).vcpus, 1);
}

#[test]
fn cpu_time_runs_only_while_running() {
    let d = drv();
    let dom = test_dom(&d);
    let cpu = || info(&d, &dom).cpu_time_ns;
    let pause = || std::thread::sleep(Duration::from_millis(5));
    let a = cpu();
    pause();
    let b = cpu();
    assert!(b > a, "running: {b} > {a}");
    d.suspend(&dom).unwrap();
    let p = cpu();
    assert!(p >= b);
    pause();
    assert_eq!(cpu(), p, "paused");
    d.resume(&dom).unwrap();
    pause();
    assert!(cpu() > p, "resumed");
    d.destroy(&dom).unwrap();
    assert_eq!(cpu(), 0);
}

// ---------------------------------------------------------------------------
// Save and restore

/// `test` of a fresh default host with non-default memory (1048576 KiB) and
/// vcpus (1), saved to `img`.
fn saved_with_changes(img: &Path) -> (TestDriver, DomainRef) {
    let d = drv();
    let dom = test_dom(&d);
    d.set_memory(&dom, 1_048_576).unwrap();
    d.set_vcpus(&dom, 1).unwrap();
    d.save(&dom, img).unwrap();
    (d, dom)
}

#[test]
fn save_and_restore_a_persistent_domain() {
    let tmp = TempDir::new("save");
    let img = tmp.join("test.img");
    let (d, dom) = saved_with_changes(&img);

    let bytes = std::fs::read(&img).unwrap();
    assert!(bytes.starts_with(b"TestGuestMagic\0"));
    assert!(image::decode(&bytes).unwrap().contains("<name>test</name>"));
    assert_eq!(tmp.entries(), ["test.img"], "no temporary file is left");
    assert_eq!(info(&d, &dom).state, State::ShutOff);
    assert_eq!(test_dom(&d).id, None);

    let r = d.restore(&img).unwrap();
    assert_eq!((r.name.0.as_str(), r.uuid), ("test", dom.uuid));
    assert_eq!(r.id, Some(DomainId(2)));
    assert_eq!(info(&d, &r).state, State::Running);
    assert_eq!(sizes(&d, &r), (8_388_608, 1_048_576, 1));
    assert_eq!(names(&d), ["test"]);
    // Still the persistent domain: stopping it keeps it defined.
    d.destroy(&r).unwrap();
    assert_eq!(info(&d, &dom).state, State::ShutOff);
}

#[test]
fn save_and_restore_a_transient_domain() {
    let tmp = TempDir::new("transient");
    let img = tmp.join("web.img");
    let d = drv();
    let web = d.create_xml(def("web", None, "")).unwrap();
    d.set_memory(&web, 262_144).unwrap();
    d.save(&web, &img).unwrap();
    assert_err(d.lookup_by_name("web"), K::NoDomain, &[]);

    let r = d.restore(&img).unwrap();
    assert_eq!(
        (r.name.0.as_str(), r.uuid, r.id),
        ("web", web.uuid, Some(DomainId(3)))
    );
    assert_eq!(info(&d, &r).state, State::Running);
    assert_eq!(sizes(&d, &r), (524_288, 262_144, 2));
    assert_err(d.restore(&img), K::AlreadyExists, &["web"]);
    d.destroy(&r).unwrap();
    assert_eq!(names(&d), ["test"]);
}

#[test]
fn restore_of_an_active_domain_is_already_exists() {
    let tmp = TempDir::new("active");
    let img = tmp.join("test.img");
    let d = drv();
    let dom = test_dom(&d);
    d.save(&dom, &img).unwrap();
    d.start(&dom).unwrap();
    assert_err(d.restore(&img), K::AlreadyExists, &["'test'", "active"]);
    assert_eq!(test_dom(&d).id, Some(DomainId(2)));
}

#[test]
fn bad_images_are_refused_with_reasons() {
    let tmp = TempDir::new("badimg");
    let d = drv();
    let good = image::encode(&d.domain_xml(&test_dom(&d)).unwrap().to_xml()).unwrap();
    let mut wrong_magic = good.clone();
    wrong_magic[..4].copy_from_slice(b"Qemu");
    let truncated = &good[..good.len() - 10];
    let invalid = image::encode("<domain type='test'><name>x</name></domain>").unwrap();
    d.destroy(&test_dom(&d)).unwrap();

    let cases: [(PathBuf, &[&str]); 4] = [
        (tmp.join("missing.img"), &["cannot read saved image"]),
        (tmp.write("magic.img", wrong_magic), &["magic"]),
        (tmp.write("short.img", truncated), &["truncated"]),
        (
            tmp.write("invalid.img", invalid),
            &["saved domain XML is invalid", "<memory>"],
        ),
    ];
    for (path, parts) in &cases {
        let e = assert_err(d.restore(path), K::InvalidArgument, parts);
        let shown = path.display().to_string();
        assert!(e.message.contains(&shown), "'{e}' names no file");
        assert_eq!(info(&d, &test_dom(&d)).state, State::ShutOff);
    }
    // The good image, for contrast.
    let ok = tmp.write("good.img", &good);
    assert_eq!(info(&d, &d.restore(&ok).unwrap()).state, State::Running);
}

#[test]
fn a_failed_save_leaves_the_domain_running() {
    let tmp = TempDir::new("failsave");
    let img = tmp.join("no-such-dir").join("test.img");
    let d = drv();
    let dom = test_dom(&d);
    let before = d.domain_xml(&dom).unwrap();
    assert_err(
        d.save(&dom, &img),
        K::InvalidArgument,
        &["cannot write saved image"],
    );
    assert_eq!(info(&d, &dom).state, State::Running);
    assert_eq!(test_dom(&d).id, Some(DomainId(1)));
    assert_eq!(d.domain_xml(&dom).unwrap(), before);
    assert!(!img.exists());
    assert!(tmp.entries().is_empty());
}

#[test]
fn an_image_saved_by_virsh_restores_here() {
    if !have_virsh("an_image_saved_by_virsh_restores_here") {
        return;
    }
    let tmp = TempDir::new("fromvirsh");
    let img = tmp.join("virsh.img");
    let cmds = format!(
        "setmem test 1048576 --live; setvcpus test 1 --live; save test {}",
        img.display()
    );
    // Only virsh's `save` may outlive the deadline (see VIRSH_DEADLINE);
    // the image must then be whole, which restoring it below checks.
    let (_, finished) = virsh_within("test:///default", &cmds);
    if !finished {
        println!("virsh save did not return in {VIRSH_DEADLINE} s; using the image it wrote");
    }
    let d = drv();
    let dom = test_dom(&d);
    assert_err(d.restore(&img), K::AlreadyExists, &["active"]);
    d.destroy(&dom).unwrap();
    let r = d.restore(&img).unwrap();
    assert_eq!((r.uuid, r.id), (uuid(TEST_UUID), Some(DomainId(2))));
    assert_eq!(info(&d, &r).state, State::Running);
    assert_eq!(sizes(&d, &r), (8_388_608, 1_048_576, 1));
}

#[test]
fn an_image_saved_here_restores_in_virsh() {
    if !have_virsh("an_image_saved_here_restores_in_virsh") {
        return;
    }
    let tmp = TempDir::new("tovirsh");
    let img = tmp.join("ours.img");
    saved_with_changes(&img);
    let cmds = format!("destroy test; restore {}; dominfo test", img.display());
    let out = virsh("test:///default", &cmds);
    assert_eq!(field(&out, "State:"), "running");
    assert_eq!(field(&out, "UUID:"), TEST_UUID);
    assert_eq!(field(&out, "Used memory:"), "1048576 KiB");
    assert_eq!(field(&out, "Max memory:"), "8388608 KiB");
    assert_eq!(field(&out, "CPU(s):"), "1");
}

// ---------------------------------------------------------------------------
// Host files

const INLINE_UUID: &str = "11111111-2222-3333-4444-555555555555";
const REL_UUID: &str = "22222222-2222-3333-4444-555555555555";
const ABS_UUID: &str = "33333333-2222-3333-4444-555555555555";

#[test]
fn a_host_file_gives_every_value() {
    let tmp = TempDir::new("host");
    std::fs::create_dir(tmp.join("elsewhere")).unwrap();
    tmp.write(
        "rel.xml",
        format!(
            "<domain type='test'><name>relative</name><uuid>{REL_UUID}</uuid>\
             <memory unit='MiB'>512</memory><vcpu>4</vcpu><os><type>hvm</type></os></domain>"
        ),
    );
    let abs = tmp.write(
        "elsewhere/abs.xml",
        format!(
            "<domain type='test'><name>absolute</name><uuid>{ABS_UUID}</uuid>\
             <memory>262144</memory><currentMemory>131072</currentMemory><vcpu>1</vcpu>\
             <os><type>xen</type></os></domain>"
        ),
    );
    let host = tmp.write(
        "host.xml",
        format!(
            "<node>
  <cpu>
    <mhz>2400</mhz><model>x86_64</model><active>6</active>
    <nodes>1</nodes><sockets>2</sockets><cores>2</cores><threads>2</threads>
  </cpu>
  <memory>4194304</memory>
  <domain type='test'>
    <name>inline</name>
    <uuid>{INLINE_UUID}</uuid>
    <memory>1048576</memory>
    <currentMemory>524288</currentMemory>
    <vcpu current='1'>2</vcpu>
    <os><type>hvm</type></os>
  </domain>
  <network file='x.xml'/>
  <domain file='rel.xml'/>
  <pool type='dir'><name>p</name><volume file='v.xml'/></pool>
  <domain file='{}'/>
</node>
",
            abs.display()
        ),
    );
    let d = TestDriver::from_file(&host).unwrap();
    let n = d.node_info().unwrap();
    assert_eq!(
        (n.model.as_str(), n.mhz, n.memory_kib),
        ("x86_64", 2400, 4_194_304)
    );
    assert_eq!((n.nodes, n.sockets, n.cores, n.threads), (1, 2, 2, 2));
    assert_eq!(n.cpus, 6, "8 by topology, capped by <active>");
    assert_eq!(names(&d), ["inline", "relative", "absolute"]);

    let expect = [
        ("inline", INLINE_UUID, 1, 1_048_576, 524_288, 1),
        ("relative", REL_UUID, 2, 524_288, 524_288, 4),
        ("absolute", ABS_UUID, 3, 262_144, 131_072, 1),
    ];
    for (name, uuid_text, id, max, cur, vcpus) in expect {
        let r = d.lookup_by_name(name).unwrap();
        assert_eq!(r.uuid.to_string(), uuid_text, "{name}");
        assert_eq!(r.id, Some(DomainId(id)), "{name}");
        assert_eq!(info(&d, &r).state, State::Running, "{name}");
        assert_eq!(sizes(&d, &r), (max, cur, vcpus), "{name}");
    }

    // A domain loaded without <currentMemory> keeps its memory when its
    // maximum is raised (as libvirt's setmaxmem --config).
    let rel = d.lookup_by_name("relative").unwrap();
    d.destroy(&rel).unwrap();
    d.set_max_memory(&rel, 1_048_576).unwrap();
    assert_eq!(sizes(&d, &rel), (1_048_576, 524_288, 4));

    // An <active> above the topology's count does not raise it; missing
    // values keep the defaults.
    let bare = tmp.write(
        "bare.xml",
        "<node><cpu><sockets>4</sockets><active>100</active></cpu></node>",
    );
    let n = TestDriver::from_file(&bare).unwrap().node_info().unwrap();
    assert_eq!((n.cpus, n.sockets, n.nodes, n.mhz), (32, 4, 2, 1400));
    assert_eq!((n.model.as_str(), n.memory_kib), ("i686", 3_145_728));
}

#[test]
fn libvirts_example_host_loads() {
    if !have_testnode("libvirts_example_host_loads") {
        return;
    }
    let d = TestDriver::from_file(Path::new(TESTNODE)).unwrap();
    let n = d.node_info().unwrap();
    assert_eq!((n.model.as_str(), n.mhz), ("i986", 6000));
    assert_eq!((n.nodes, n.sockets, n.cores, n.threads), (4, 4, 4, 2));
    assert_eq!(n.cpus, 50, "128 by topology, capped by <active>50");
    assert_eq!(n.memory_kib, 8_192_000);
    assert_eq!(names(&d), ["fv0", "fc4"]);

    let fv0 = d.lookup_by_name("fv0").unwrap();
    assert_eq!(fv0.id, Some(DomainId(1)));
    assert_eq!(fv0.uuid.to_string(), "4dea22b3-1d52-d8f3-2516-782e98ab3fa0");
    assert_eq!(info(&d, &fv0).state, State::Running);
    assert_eq!(sizes(&d, &fv0), (524_288, 524_288, 4));
    let xml = d.domain_xml(&fv0).unwrap().to_xml();
    assert!(xml.contains("<blkiotune>"), "{xml}");
    assert!(xml.contains("<weight>800</weight>"), "{xml}");

    let fc4 = d.lookup_by_name("fc4").unwrap();
    assert_eq!(fc4.id, Some(DomainId(2)));
    assert_eq!(fc4.uuid.to_string(), "ef861801-45b9-11cb-88e3-afbfe5370493");
    assert_eq!(info(&d, &fc4).state, State::Running);
    assert_eq!(sizes(&d, &fc4), (261_072, 131_072, 1));
    assert_eq!(d.domain_xml(&fc4).unwrap().os.os_type, "xen");
}

#[test]
fn libvirts_example_host_matches_virsh() {
    let test = "libvirts_example_host_matches_virsh";
    if !have_testnode(test) || !have_virsh(test) {
        return;
    }
    // virsh 9.0 fails on the example's missing network and pool files.
    let tmp = TempDir::new("testnode");
    let src = Path::new(TESTNODE).parent().unwrap();
    let text = std::fs::read_to_string(TESTNODE).unwrap();
    let dropped = ["<network", "<pool", "<volume", "</pool>"];
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !dropped.iter().any(|p| l.contains(p)))
        .collect();
    let host = tmp.write("testnode.xml", kept.join("\n"));
    for f in ["testdomfv0.xml", "testdomfc4.xml"] {
        std::fs::copy(src.join(f), tmp.join(f)).unwrap();
    }
    let uri = format!("test://{}", host.display());
    let d = TestDriver::from_file(&host).unwrap();

    let out = virsh(&uri, "nodeinfo");
    let n = d.node_info().unwrap();
    assert_eq!(field(&out, "CPU model:"), n.model);
    assert_eq!(field(&out, "CPU(s):"), n.cpus.to_string());
    assert_eq!(field(&out, "CPU frequency:"), format!("{} MHz", n.mhz));
    assert_eq!(field(&out, "CPU socket(s):"), n.sockets.to_string());
    assert_eq!(field(&out, "Core(s) per socket:"), n.cores.to_string());
    assert_eq!(field(&out, "Thread(s) per core:"), n.threads.to_string());
    assert_eq!(field(&out, "NUMA cell(s):"), n.nodes.to_string());
    assert_eq!(field(&out, "Memory size:"), format!("{} KiB", n.memory_kib));

    for name in ["fv0", "fc4"] {
        let out = virsh(&uri, &format!("dominfo {name}"));
        let r = d.lookup_by_name(name).unwrap();
        let i = info(&d, &r);
        let id = r.id.expect("running").to_string();
        assert_eq!(field(&out, "Id:"), id, "{name}");
        assert_eq!(field(&out, "UUID:"), r.uuid.to_string(), "{name}");
        assert_eq!(field(&out, "State:"), i.state.as_str(), "{name}");
        assert_eq!(field(&out, "CPU(s):"), i.vcpus.to_string(), "{name}");
        let max = format!("{} KiB", i.max_memory_kib);
        assert_eq!(field(&out, "Max memory:"), max, "{name}");
        let used = format!("{} KiB", i.memory_kib);
        assert_eq!(field(&out, "Used memory:"), used, "{name}");
    }
}

#[test]
fn bad_host_files_are_refused_with_reasons() {
    let tmp = TempDir::new("badhost");
    let load = |name: &str, text: &str| {
        let path = tmp.write(name, text);
        (TestDriver::from_file(&path).map(drop), path)
    };
    let missing = tmp.join("missing.xml");
    let shown = missing.display().to_string();
    let r = TestDriver::from_file(&missing).map(drop);
    assert_err(r, K::InvalidArgument, &["cannot read host file", &shown]);

    let (r, path) = load("root.xml", &def("x", None, "").to_xml());
    let shown = path.display().to_string();
    let parts = ["root element is <domain>, expected <node>", &shown];
    assert_err(r, K::InvalidArgument, &parts);

    let (r, _) = load("mhz.xml", "<node><cpu><mhz>fast</mhz></cpu></node>");
    assert_err(r, K::InvalidArgument, &["<mhz>", "'fast'", "not a number"]);

    let (r, _) = load("ghost.xml", "<node><domain file='ghost-dom.xml'/></node>");
    let ghost = tmp.join("ghost-dom.xml").display().to_string();
    assert_err(r, K::InvalidArgument, &["cannot read domain file", &ghost]);

    let inline = "<node>\n<domain type='test'><name>bad</name>\n<memory>lots</memory>\
                  <os><type>hvm</type></os></domain>\n</node>";
    let (r, path) = load("inline.xml", inline);
    let shown = path.display().to_string();
    let parts = [
        shown.as_str(),
        "line 3",
        "<memory>",
        "'lots' is not a number",
    ];
    assert_err(r, K::InvalidArgument, &parts);

    let (r, path) = load("broken.xml", "<node><cpu></node>");
    let shown = path.display().to_string();
    assert_err(r, K::InvalidArgument, &["host file", &shown]);
}

// ---------------------------------------------------------------------------
// Through the dispatcher

fn dispatcher(read_only: bool) -> Dispatcher {
    Dispatcher::new(vec![Box::new(drv())], &[], read_only)
}

#[test]
fn the_dispatcher_checks_arguments_before_the_driver() {
    let d = dispatcher(false);
    let dom = d.lookup_by_name("test").unwrap();
    let bad: [(Operation, Result<()>); 5] = [
        (Operation::SetMemory, d.set_memory(&dom, 0)),
        (Operation::SetMaxMemory, d.set_max_memory(&dom, 0)),
        (Operation::SetVcpus, d.set_vcpus(&dom, 0)),
        (Operation::Save, d.save(&dom, Path::new("test.img"))),
        (
            Operation::Restore,
            d.restore(Path::new("test.img")).map(drop),
        ),
    ];
    for (op, r) in bad {
        let e = assert_err(r, K::InvalidArgument, &[]);
        assert_eq!(e.op, Some(op));
    }
    assert!(!Path::new("test.img").exists());
    let i = d.domain_info(&dom).unwrap();
    assert_eq!(
        (i.state, i.memory_kib, i.vcpus),
        (State::Running, 2_097_152, 2)
    );
    // The driver's own refusals come through with the operation named.
    let e = assert_err(d.resume(&dom), K::InvalidState, &["running"]);
    assert_eq!(e.op, Some(Operation::Resume));
    assert_eq!(e.errno(), libc::EBUSY);
}

type DispatchOp = fn(&Dispatcher, &DomainRef, &Path) -> Result<()>;

#[test]
fn a_read_only_dispatcher_refuses_every_change() {
    let tmp = TempDir::new("readonly");
    let img = tmp.join("test.img");
    let d = dispatcher(true);
    let dom = d.lookup_by_name("test").unwrap();
    let xml_before = d.domain_xml(&dom).unwrap();
    let ops: &[(Operation, DispatchOp)] = &[
        (Operation::CreateXml, |d, _, _| {
            d.create_xml_text(
                "<domain type='test'><name>n</name><memory>1024</memory>\
                          <os><type>hvm</type></os></domain>",
            )
            .map(drop)
        }),
        (Operation::DefineXml, |d, x, _| {
            d.define_xml_text(&d.domain_xml(x)?.to_xml()).map(drop)
        }),
        (Operation::DefineXml, |d, x, _| {
            d.define_xml(d.domain_xml(x)?).map(drop)
        }),
        (Operation::Undefine, |d, x, _| d.undefine(x)),
        (Operation::Start, |d, x, _| d.start(x)),
        (Operation::Shutdown, |d, x, _| d.shutdown(x)),
        (Operation::Reboot, |d, x, _| d.reboot(x)),
        (Operation::Destroy, |d, x, _| d.destroy(x)),
        (Operation::Suspend, |d, x, _| d.suspend(x)),
        (Operation::Resume, |d, x, _| d.resume(x)),
        (Operation::Save, |d, x, p| d.save(x, p)),
        (Operation::Restore, |d, _, p| d.restore(p).map(drop)),
        (Operation::SetMemory, |d, x, _| d.set_memory(x, 1_048_576)),
        (Operation::SetMaxMemory, |d, x, _| {
            d.set_max_memory(x, 1_048_576)
        }),
        (Operation::SetVcpus, |d, x, _| d.set_vcpus(x, 1)),
    ];
    for (op, call) in ops {
        let e = assert_err(call(&d, &dom, &img), K::ReadOnly, &["read-only"]);
        assert_eq!(e.op, Some(*op));
    }
    assert_eq!(d.list_domains().unwrap(), std::slice::from_ref(&dom));
    assert_eq!(d.domain_xml(&dom).unwrap(), xml_before);
    let i = d.domain_info(&dom).unwrap();
    assert_eq!(
        (i.state, i.memory_kib, i.vcpus),
        (State::Running, 2_097_152, 2)
    );
    assert!(tmp.entries().is_empty());
}

#[test]
fn image_file_errors_map_to_the_right_kind() {
    let path = std::path::Path::new("/x/y.img");
    let kind = |errno| super::file_error("w", path, &std::io::Error::from_raw_os_error(errno)).kind;
    assert_eq!(kind(libc::ENOENT), ErrorKind::InvalidArgument);
    assert_eq!(kind(libc::EISDIR), ErrorKind::InvalidArgument);
    assert_eq!(kind(libc::EACCES), ErrorKind::PermissionDenied);
    assert_eq!(kind(libc::EROFS), ErrorKind::PermissionDenied);
    assert_eq!(kind(libc::ENOSPC), ErrorKind::Backend);
    assert_eq!(kind(libc::EIO), ErrorKind::Backend);
    let e = super::file_error(
        "cannot write saved image",
        path,
        &std::io::Error::from_raw_os_error(libc::ENOSPC),
    );
    assert!(
        e.message.contains("/x/y.img") && e.message.contains("No space left"),
        "{}",
        e.message
    );
}

#[test]
fn every_change_is_published_with_the_domain_as_it_was() {
    use crate::events::Bus;
    use crate::model::{EventKind, StopReason};
    let d = drv();
    let bus = Bus::new();
    let sub = bus.subscribe();
    d.publish_to(bus);
    let dom = test_dom(&d);
    d.suspend(&dom).unwrap();
    d.resume(&dom).unwrap();
    d.set_memory(&dom, 1024).unwrap();
    d.destroy(&dom).unwrap();
    d.start(&dom).unwrap();
    assert!(d
        .suspend(&DomainRef {
            id: None,
            ..dom.clone()
        })
        .is_ok());
    let _ = d.resume(&dom);
    let got: Vec<(EventKind, Option<u32>)> = sub
        .rx
        .try_iter()
        .map(|(_, e)| (e.kind, e.id.map(|i| i.0)))
        .collect();
    assert_eq!(
        got,
        [
            (EventKind::Suspended, Some(1)),
            (EventKind::Resumed, Some(1)),
            (EventKind::MemoryChanged, Some(1)),
            (EventKind::Stopped(StopReason::Destroyed), Some(1)),
            (EventKind::Started, Some(2)),
            (EventKind::Suspended, Some(2)),
            (EventKind::Resumed, Some(2)),
        ]
    );
    // A refused change publishes nothing.
    assert!(d.resume(&dom).is_err());
    assert!(sub.rx.try_iter().next().is_none());
}

#[test]
fn lookups_stay_right_after_domains_go() {
    let d = drv();
    for i in 0..5 {
        d.define_xml(def(&format!("n{i}"), None, "")).unwrap();
    }
    // Removing from the middle moves the last domain into its slot.
    let n1 = d.lookup_by_name("n1").unwrap();
    d.undefine(&n1).unwrap();
    for i in [0, 2, 3, 4] {
        let name = format!("n{i}");
        let r = d.lookup_by_name(&name).unwrap();
        assert_eq!(d.lookup_by_uuid(r.uuid).unwrap().name.0, name);
    }
    assert!(d.lookup_by_name("n1").is_err());
    let n4 = d.lookup_by_name("n4").unwrap();
    d.start(&n4).unwrap();
    let id = d.lookup_by_name("n4").unwrap().id.unwrap();
    assert_eq!(d.lookup_by_id(id).unwrap().name.0, "n4");
    d.destroy(&n4).unwrap();
    assert!(d.lookup_by_id(id).is_err());
}

// ---------------------------------------------------------------------------
// Issue 26: vCPU pinning and autostart

#[test]
fn pinning_changes_one_vcpu_and_refuses_what_the_host_lacks() {
    let d = drv();
    let dom = test_dom(&d);
    let before = d.domain_vcpu_info(&dom).unwrap();
    d.pin_vcpu(&dom, 1, "2-3".parse().unwrap()).unwrap();
    let after = d.domain_vcpu_info(&dom).unwrap();
    assert_eq!(after[0], before[0].clone_with_time(after[0].cpu_time_ns));
    assert_eq!(after[1].affinity.to_string(), "2-3");
    assert_eq!(after[1].cpu, Some(3), "the last CPU it may use");
    let past = PINNABLE_CPUS;
    for (vcpu, list) in [
        (0, format!("{past}")),
        (0, format!("0-{past}")),
        (2, "1".to_string()),
    ] {
        let e = d.pin_vcpu(&dom, vcpu, list.parse().unwrap()).unwrap_err();
        assert_eq!(e.kind, K::InvalidArgument, "{vcpu} {list}");
    }
    assert_eq!(
        d.domain_vcpu_info(&dom).unwrap()[1].affinity.to_string(),
        "2-3",
        "a refused pin changes nothing"
    );
    // A pin lasts while the domain runs.
    d.destroy(&dom).unwrap();
    let e = d.pin_vcpu(&dom, 0, "1".parse().unwrap()).unwrap_err();
    assert_eq!(e.kind, K::InvalidState);
    d.start(&dom).unwrap();
    let dom = test_dom(&d);
    assert_eq!(
        d.domain_vcpu_info(&dom).unwrap()[1].affinity,
        CpuSet::first(PINNABLE_CPUS),
        "a new run starts unpinned"
    );
}

#[test]
fn autostart_survives_a_stop() {
    let d = drv();
    let dom = test_dom(&d);
    assert!(!d.domain_autostart(&dom).unwrap());
    d.set_autostart(&dom, true).unwrap();
    d.destroy(&dom).unwrap();
    assert!(d.domain_autostart(&dom).unwrap());
    assert_eq!(
        d.domain_max_vcpus(&dom).unwrap(),
        d.domain_xml(&dom).unwrap().vcpus
    );
}

impl VcpuInfo {
    /// The same record with another CPU time (time moves between reads).
    fn clone_with_time(&self, ns: u64) -> VcpuInfo {
        VcpuInfo {
            cpu_time_ns: ns,
            ..self.clone()
        }
    }
}
