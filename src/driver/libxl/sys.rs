//! libxenlight (Xen 4.17) loaded at run time: every foreign call and every
//! `unsafe` block of the libxl driver lives here, behind a safe [`Ctx`].
//!
//! The library is opened with `libloading` by its versioned name
//! (`libxenlight.so.4.17`, Debian's libxenmisc4.17), so a domfs binary
//! runs without any Xen library installed; [`Libxl::load`] then fails and
//! the connection goes on without this driver.
//!
//! Structs cross as JSON (`libxl_domain_config_from_json`,
//! `libxl_event_to_json`), so the only binary layouts relied on are the
//! sizes of the few structs domfs allocates for libxl to fill, the two
//! hook tables it hands over, `libxl_bitmap`, and two fields of
//! `libxl_dominfo`. `LAYOUTS` and `CONSTANTS` list them for the layout test
//! (`tests/libxl_layout.rs`), which compares them with libxen-dev's headers.
//!
//! Facts this module depends on, from Xen 4.17's `libxl.h`,
//! `libxl_event.h` and `tools/libs/light/libxl_{fork,event,create}.c`:
//! a `libxl_ctx` is thread-safe; a NULL `ao_how` makes a call synchronous
//! on the calling thread; `libxl_childproc_setmode` must precede any child,
//! and libxl asserts that SIGCHLD had no handler before it installs its own
//! (domfs never installs one, and its signal thread does not take SIGCHLD);
//! without a `disaster` hook libxl calls `exit(-1)`; the logger must outlive
//! the context, and the hook tables are not copied, so they must too.

use libloading::Library;
use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// The library's file name: the ABI this build was written against.
pub const LIBXENLIGHT: &str = "libxenlight.so.4.17";
/// The logger's library (`xtl_createlogger_stdiostream`).
pub const LIBXENTOOLLOG: &str = "libxentoollog.so.1";

/// `LIBXL_VERSION`, the only version `libxl_ctx_alloc` accepts.
pub const LIBXL_VERSION: c_int = 0;
/// `libxl_sigchld_owner_libxl_always_selective_reap`: libxl keeps a SIGCHLD
/// handler and reaps only its own children; domfs waits for its own
/// (std's `Command` uses `waitpid(pid)`), as libvirt's libxl driver does.
pub const SIGCHLD_OWNER_ALWAYS_SELECTIVE_REAP: c_int = 3;
/// `XTL_INFO` and `XTL_DEBUG` (`xentoollog_level`).
pub const XTL_DEBUG: c_int = 1;
pub const XTL_INFO: c_int = 5;
/// `XTL_STDIOSTREAM_HIDE_PROGRESS`.
pub const XTL_STDIOSTREAM_HIDE_PROGRESS: c_uint = 4;
/// `INVALID_DOMID` (`~0`).
pub const INVALID_DOMID: u32 = !0;
/// `LIBXL_EVENTMASK_ALL`.
pub const EVENTMASK_ALL: u64 = !0;

/// libxl's error codes (`libxl_error`) that domfs tells apart.
pub const ERROR_VERSION: c_int = -2;
pub const ERROR_INVAL: c_int = -6;
pub const ERROR_GUEST_TIMEDOUT: c_int = -8;
pub const ERROR_TIMEDOUT: c_int = -9;
pub const ERROR_NOPARAVIRT: c_int = -10;
pub const ERROR_NOT_READY: c_int = -11;
pub const ERROR_BUFFERFULL: c_int = -13;
pub const ERROR_DOMAIN_NOTFOUND: c_int = -21;
pub const ERROR_ABORTED: c_int = -22;
pub const ERROR_NOTFOUND: c_int = -23;
pub const ERROR_DOMAIN_DESTROYED: c_int = -24;

/// The sizes of the structs domfs allocates for libxl (`libxl_domain_config`,
/// `libxl_domain_restore_params`) and of the array elements it walks
/// (`libxl_dominfo`), checked by the layout test.
pub const DOMAIN_CONFIG_SIZE: usize = 1288;
pub const RESTORE_PARAMS_SIZE: usize = 24;
pub const DEVICE_DISK_SIZE: usize = 144;
pub const DOMINFO_SIZE: usize = 120;
/// Offsets in `libxl_dominfo` of `uuid` (16 bytes) and `domid` (u32).
pub const DOMINFO_UUID: usize = 0;
pub const DOMINFO_DOMID: usize = 16;

/// `libxl_bitmap`: `size` is in bytes.
#[repr(C)]
pub struct Bitmap {
    pub size: u32,
    pub map: *mut u8,
}

/// `libxl_childproc_hooks`.
#[repr(C)]
pub struct ChildprocHooks {
    pub chldowner: c_int,
    pub fork_replacement: Option<unsafe extern "C" fn(*mut c_void) -> libc::pid_t>,
    pub reaped_callback: Option<unsafe extern "C" fn(libc::pid_t, c_int, *mut c_void) -> c_int>,
}

type DisasterFn = unsafe extern "C" fn(*mut c_void, c_int, *const c_char, c_int);

/// `libxl_event_hooks`.
#[repr(C)]
pub struct EventHooks {
    pub event_occurs_mask: u64,
    pub event_occurs: Option<unsafe extern "C" fn(*mut c_void, *mut c_void)>,
    pub disaster: Option<DisasterFn>,
}

/// One struct's size and field offsets, for the layout test.
pub struct Layout {
    pub name: &'static str,
    pub size: usize,
    pub fields: &'static [(&'static str, usize)],
}

pub const LAYOUTS: &[Layout] = &[
    Layout {
        name: "libxl_domain_config",
        size: DOMAIN_CONFIG_SIZE,
        fields: &[],
    },
    Layout {
        name: "libxl_domain_restore_params",
        size: RESTORE_PARAMS_SIZE,
        fields: &[],
    },
    Layout {
        name: "libxl_device_disk",
        size: DEVICE_DISK_SIZE,
        fields: &[],
    },
    Layout {
        name: "libxl_dominfo",
        size: DOMINFO_SIZE,
        fields: &[("uuid", DOMINFO_UUID), ("domid", DOMINFO_DOMID)],
    },
    Layout {
        name: "libxl_bitmap",
        size: std::mem::size_of::<Bitmap>(),
        fields: &[
            ("size", std::mem::offset_of!(Bitmap, size)),
            ("map", std::mem::offset_of!(Bitmap, map)),
        ],
    },
    Layout {
        name: "libxl_childproc_hooks",
        size: std::mem::size_of::<ChildprocHooks>(),
        fields: &[
            ("chldowner", std::mem::offset_of!(ChildprocHooks, chldowner)),
            (
                "fork_replacement",
                std::mem::offset_of!(ChildprocHooks, fork_replacement),
            ),
            (
                "reaped_callback",
                std::mem::offset_of!(ChildprocHooks, reaped_callback),
            ),
        ],
    },
    Layout {
        name: "libxl_event_hooks",
        size: std::mem::size_of::<EventHooks>(),
        fields: &[
            (
                "event_occurs_mask",
                std::mem::offset_of!(EventHooks, event_occurs_mask),
            ),
            (
                "event_occurs",
                std::mem::offset_of!(EventHooks, event_occurs),
            ),
            ("disaster", std::mem::offset_of!(EventHooks, disaster)),
        ],
    },
];

/// The constants above under their C names, for the layout test.
pub const CONSTANTS: &[(&str, i64)] = &[
    ("LIBXL_VERSION", LIBXL_VERSION as i64),
    (
        "libxl_sigchld_owner_libxl_always_selective_reap",
        SIGCHLD_OWNER_ALWAYS_SELECTIVE_REAP as i64,
    ),
    ("XTL_DEBUG", XTL_DEBUG as i64),
    ("XTL_INFO", XTL_INFO as i64),
    (
        "XTL_STDIOSTREAM_HIDE_PROGRESS",
        XTL_STDIOSTREAM_HIDE_PROGRESS as i64,
    ),
    ("INVALID_DOMID", INVALID_DOMID as i64),
    ("ERROR_VERSION", ERROR_VERSION as i64),
    ("ERROR_INVAL", ERROR_INVAL as i64),
    ("ERROR_GUEST_TIMEDOUT", ERROR_GUEST_TIMEDOUT as i64),
    ("ERROR_TIMEDOUT", ERROR_TIMEDOUT as i64),
    ("ERROR_NOPARAVIRT", ERROR_NOPARAVIRT as i64),
    ("ERROR_NOT_READY", ERROR_NOT_READY as i64),
    ("ERROR_BUFFERFULL", ERROR_BUFFERFULL as i64),
    ("ERROR_DOMAIN_NOTFOUND", ERROR_DOMAIN_NOTFOUND as i64),
    ("ERROR_ABORTED", ERROR_ABORTED as i64),
    ("ERROR_NOTFOUND", ERROR_NOTFOUND as i64),
    ("ERROR_DOMAIN_DESTROYED", ERROR_DOMAIN_DESTROYED as i64),
];

type CtxPtr = *mut c_void;
type Null = *const c_void;

/// The entry points used, as C declares them in Xen 4.17's headers.
struct Fns {
    ctx_alloc: unsafe extern "C" fn(*mut CtxPtr, c_int, c_uint, *mut c_void) -> c_int,
    ctx_free: unsafe extern "C" fn(CtxPtr) -> c_int,
    childproc_setmode: unsafe extern "C" fn(CtxPtr, *const ChildprocHooks, *mut c_void),
    register_callbacks: unsafe extern "C" fn(CtxPtr, *const EventHooks, *mut c_void),
    config_init: unsafe extern "C" fn(*mut c_void),
    config_dispose: unsafe extern "C" fn(*mut c_void),
    config_from_json: unsafe extern "C" fn(CtxPtr, *mut c_void, *const c_char) -> c_int,
    restore_params_init: unsafe extern "C" fn(*mut c_void),
    restore_params_dispose: unsafe extern "C" fn(*mut c_void),
    restore_params_from_json: unsafe extern "C" fn(CtxPtr, *mut c_void, *const c_char) -> c_int,
    create_new: unsafe extern "C" fn(CtxPtr, *mut c_void, *mut u32, Null, Null) -> c_int,
    create_restore: unsafe extern "C" fn(
        CtxPtr,
        *mut c_void,
        *mut u32,
        c_int,
        c_int,
        *const c_void,
        Null,
        Null,
    ) -> c_int,
    destroy: unsafe extern "C" fn(CtxPtr, u32, Null) -> c_int,
    shutdown: unsafe extern "C" fn(CtxPtr, u32, Null) -> c_int,
    reboot: unsafe extern "C" fn(CtxPtr, u32, Null) -> c_int,
    pause: unsafe extern "C" fn(CtxPtr, u32, Null) -> c_int,
    unpause: unsafe extern "C" fn(CtxPtr, u32, Null) -> c_int,
    suspend: unsafe extern "C" fn(CtxPtr, u32, c_int, c_int, Null) -> c_int,
    set_memory_target: unsafe extern "C" fn(CtxPtr, u32, i64, c_int, c_int) -> c_int,
    set_vcpuonline: unsafe extern "C" fn(CtxPtr, u32, *mut Bitmap, Null) -> c_int,
    evenable_domain_death: unsafe extern "C" fn(CtxPtr, u32, u64, *mut *mut c_void) -> c_int,
    evdisable_domain_death: unsafe extern "C" fn(CtxPtr, *mut c_void),
    event_check: unsafe extern "C" fn(CtxPtr, *mut *mut c_void, u64, Null, *mut c_void) -> c_int,
    beforepoll: unsafe extern "C" fn(
        CtxPtr,
        *mut c_int,
        *mut libc::pollfd,
        *mut c_int,
        libc::timeval,
    ) -> c_int,
    afterpoll: unsafe extern "C" fn(CtxPtr, c_int, *const libc::pollfd, libc::timeval),
    core_dump: unsafe extern "C" fn(CtxPtr, u32, *const c_char, Null) -> c_int,
    disk_init: unsafe extern "C" fn(*mut c_void),
    disk_dispose: unsafe extern "C" fn(*mut c_void),
    disk_from_json: unsafe extern "C" fn(CtxPtr, *mut c_void, *const c_char) -> c_int,
    disk_add: unsafe extern "C" fn(CtxPtr, u32, *mut c_void, Null) -> c_int,
    disk_remove: unsafe extern "C" fn(CtxPtr, u32, *mut c_void, Null) -> c_int,
    vdev_to_disk: unsafe extern "C" fn(CtxPtr, u32, *const c_char, *mut c_void) -> c_int,
    event_free: unsafe extern "C" fn(CtxPtr, *mut c_void),
    event_to_json: unsafe extern "C" fn(CtxPtr, *mut c_void) -> *mut c_char,
    list_domain: unsafe extern "C" fn(CtxPtr, *mut c_int) -> *mut u8,
    dominfo_list_free: unsafe extern "C" fn(*mut u8, c_int),
    create_logger: unsafe extern "C" fn(*mut libc::FILE, c_int, c_uint) -> *mut c_void,
    logger_destroy: unsafe extern "C" fn(*mut c_void),
}

/// The loaded libraries and their entry points. The `Library` values keep
/// the code the pointers in `fns` lead to mapped; they are dropped last.
pub struct Libxl {
    fns: Fns,
    _light: Library,
    _toollog: Library,
}

/// Resolves one symbol as the function type of the field it fills.
macro_rules! symbol {
    ($lib:expr, $file:expr, $name:literal) => {{
        // SAFETY: the field's type is the C declaration of `$name` in Xen
        // 4.17's headers (libxl.h, libxl_event.h, _libxl_types.h,
        // xentoollog.h), for the library of exactly that version (its
        // versioned file name), so calling through it is a call of that
        // function with its own signature.
        let s = unsafe { $lib.get(concat!($name, "\0").as_bytes()) };
        *s.map_err(|e| format!("{}: no {}: {e}", $file, $name))?
    }};
}

impl Libxl {
    /// Opens libxenlight 4.17 and libxentoollog, and resolves every entry
    /// point the driver calls; an error names the file and what is missing.
    pub fn load() -> Result<Libxl, String> {
        // SAFETY: loading runs the libraries' initialisers; libxenlight's
        // and libxentoollog's only set up their own static data (no
        // threads, no signal handlers: libxl installs its SIGCHLD handler
        // from libxl_childproc_setmode, not at load time).
        let light = unsafe { Library::new(LIBXENLIGHT) }
            .map_err(|e| format!("cannot load {LIBXENLIGHT}: {e}"))?;
        // SAFETY: as above.
        let toollog = unsafe { Library::new(LIBXENTOOLLOG) }
            .map_err(|e| format!("cannot load {LIBXENTOOLLOG}: {e}"))?;
        let (l, t) = (&light, &toollog);
        let (lf, tf) = (LIBXENLIGHT, LIBXENTOOLLOG);
        let fns = Fns {
            ctx_alloc: symbol!(l, lf, "libxl_ctx_alloc"),
            ctx_free: symbol!(l, lf, "libxl_ctx_free"),
            childproc_setmode: symbol!(l, lf, "libxl_childproc_setmode"),
            register_callbacks: symbol!(l, lf, "libxl_event_register_callbacks"),
            config_init: symbol!(l, lf, "libxl_domain_config_init"),
            config_dispose: symbol!(l, lf, "libxl_domain_config_dispose"),
            config_from_json: symbol!(l, lf, "libxl_domain_config_from_json"),
            restore_params_init: symbol!(l, lf, "libxl_domain_restore_params_init"),
            restore_params_dispose: symbol!(l, lf, "libxl_domain_restore_params_dispose"),
            restore_params_from_json: symbol!(l, lf, "libxl_domain_restore_params_from_json"),
            create_new: symbol!(l, lf, "libxl_domain_create_new"),
            create_restore: symbol!(l, lf, "libxl_domain_create_restore"),
            destroy: symbol!(l, lf, "libxl_domain_destroy"),
            shutdown: symbol!(l, lf, "libxl_domain_shutdown"),
            reboot: symbol!(l, lf, "libxl_domain_reboot"),
            pause: symbol!(l, lf, "libxl_domain_pause"),
            unpause: symbol!(l, lf, "libxl_domain_unpause"),
            suspend: symbol!(l, lf, "libxl_domain_suspend"),
            set_memory_target: symbol!(l, lf, "libxl_set_memory_target"),
            set_vcpuonline: symbol!(l, lf, "libxl_set_vcpuonline"),
            evenable_domain_death: symbol!(l, lf, "libxl_evenable_domain_death"),
            evdisable_domain_death: symbol!(l, lf, "libxl_evdisable_domain_death"),
            event_check: symbol!(l, lf, "libxl_event_check"),
            beforepoll: symbol!(l, lf, "libxl_osevent_beforepoll"),
            afterpoll: symbol!(l, lf, "libxl_osevent_afterpoll"),
            core_dump: symbol!(l, lf, "libxl_domain_core_dump"),
            disk_init: symbol!(l, lf, "libxl_device_disk_init"),
            disk_dispose: symbol!(l, lf, "libxl_device_disk_dispose"),
            disk_from_json: symbol!(l, lf, "libxl_device_disk_from_json"),
            disk_add: symbol!(l, lf, "libxl_device_disk_add"),
            disk_remove: symbol!(l, lf, "libxl_device_disk_remove"),
            vdev_to_disk: symbol!(l, lf, "libxl_vdev_to_device_disk"),
            event_free: symbol!(l, lf, "libxl_event_free"),
            event_to_json: symbol!(l, lf, "libxl_event_to_json"),
            list_domain: symbol!(l, lf, "libxl_list_domain"),
            dominfo_list_free: symbol!(l, lf, "libxl_dominfo_list_free"),
            create_logger: symbol!(t, tf, "xtl_createlogger_stdiostream"),
            logger_destroy: symbol!(t, tf, "xtl_logger_destroy"),
        };
        Ok(Libxl {
            fns,
            _light: light,
            _toollog: toollog,
        })
    }
}

/// A libxl error code (`ERROR_*`, negative).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code(pub c_int);

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.0 {
            ERROR_VERSION => "ERROR_VERSION",
            ERROR_INVAL => "ERROR_INVAL",
            ERROR_GUEST_TIMEDOUT => "ERROR_GUEST_TIMEDOUT",
            ERROR_TIMEDOUT => "ERROR_TIMEDOUT",
            ERROR_NOPARAVIRT => "ERROR_NOPARAVIRT",
            ERROR_NOT_READY => "ERROR_NOT_READY",
            ERROR_BUFFERFULL => "ERROR_BUFFERFULL",
            ERROR_DOMAIN_NOTFOUND => "ERROR_DOMAIN_NOTFOUND",
            ERROR_ABORTED => "ERROR_ABORTED",
            ERROR_NOTFOUND => "ERROR_NOTFOUND",
            ERROR_DOMAIN_DESTROYED => "ERROR_DOMAIN_DESTROYED",
            -3 => "ERROR_FAIL",
            _ => return write!(f, "libxl error {}", self.0),
        };
        write!(f, "{name} ({})", self.0)
    }
}

fn check(rc: c_int) -> Result<(), Code> {
    if rc == 0 {
        Ok(())
    } else {
        Err(Code(rc))
    }
}

/// What libxl's `disaster` hook reported, if it was called: from then on
/// libxl may fail every call, and the driver says so instead of trying.
struct Disaster {
    happened: AtomicBool,
    message: Mutex<String>,
}

/// Called by libxl instead of `exit(-1)` when it cannot go on delivering
/// events. It may not call libxl; it only records and logs.
unsafe extern "C" fn on_disaster(user: *mut c_void, kind: c_int, msg: *const c_char, errno: c_int) {
    let text = if msg.is_null() {
        String::from("(no message)")
    } else {
        // SAFETY: libxl passes a NUL-terminated message that lives for the
        // call (libxl__event_disaster's `msg`), or NULL, handled above.
        unsafe { CStr::from_ptr(msg) }
            .to_string_lossy()
            .into_owned()
    };
    log::error!("libxl: disaster (event type {kind}, errno {errno}): {text}");
    if !user.is_null() {
        // SAFETY: `user` is the `Disaster` boxed in the `Ctx` that registered
        // this hook, which outlives the context (it is dropped after
        // libxl_ctx_free, the last moment libxl may call back).
        let d = unsafe { &*(user as *const Disaster) };
        d.happened.store(true, Ordering::Release);
        *crate::sync::lock(&d.message) = text;
    }
}

/// One libxl context for the whole daemon, with its logger and the hook
/// tables libxl keeps pointers to.
pub struct Ctx {
    lib: Libxl,
    errors: std::sync::Arc<Mutex<Recent>>,
    ctx: CtxPtr,
    logger: *mut c_void,
    file: *mut libc::FILE,
    // Kept alive for libxl, which keeps these pointers (never read here).
    _childproc: Box<ChildprocHooks>,
    _events: Box<EventHooks>,
    disaster: Box<Disaster>,
}

// SAFETY: libxl.h (4.17): "struct libxl_ctx* is threadsafe"; the logger is
// only used by libxl under that context; the FILE is written only by
// the logger (stdio locks it). Nothing here is tied to the creating thread.
unsafe impl Send for Ctx {}
// SAFETY: as for Send: every method takes `&self` and libxl serialises
// what needs it with the context's own lock.
unsafe impl Sync for Ctx {}

/// A libxl struct domfs allocates (`libxl_domain_config`,
/// `libxl_device_disk`, `libxl_domain_restore_params`): initialised by
/// libxl's `_init` when made, filled by libxl only, and disposed by its
/// `_dispose` on drop.
struct Owned<'a> {
    mem: Box<[u64]>,
    dispose: unsafe extern "C" fn(*mut c_void),
    _lib: std::marker::PhantomData<&'a Libxl>,
}

impl<'a> Owned<'a> {
    /// `size` must be the struct's size from the layout test, and `init`
    /// and `dispose` that struct's own functions of `_lib`.
    fn new(
        _lib: &'a Libxl,
        size: usize,
        init: unsafe extern "C" fn(*mut c_void),
        dispose: unsafe extern "C" fn(*mut c_void),
    ) -> Owned<'a> {
        let mut mem = vec![0u64; size.div_ceil(8)].into_boxed_slice();
        // SAFETY: `mem` is `size` bytes, 8-aligned (the struct's size and
        // alignment, checked by the layout test); init writes only within it.
        unsafe { init(mem.as_mut_ptr().cast()) };
        Owned {
            mem,
            dispose,
            _lib: std::marker::PhantomData,
        }
    }
    fn ptr(&mut self) -> *mut c_void {
        self.mem.as_mut_ptr().cast()
    }
}

impl Drop for Owned<'_> {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, filled by libxl only; dispose frees
        // what libxl allocated in it, once, while the library is loaded
        // (the borrow of `Libxl`).
        unsafe { (self.dispose)(self.ptr()) };
    }
}

/// A domain-death event generator (`libxl_evgen_domain_death`). Ended by
/// [`Ctx::stop_watching`], which consumes it, so it cannot be ended twice.
pub struct DeathWatch(*mut c_void);

// SAFETY: the handle is an opaque token of a thread-safe context, usable
// from any thread.
unsafe impl Send for DeathWatch {}

impl Ctx {
    /// Creates the daemon's context: a logger whose lines go to domfs's log
    /// (through a pipe read by a thread of its own), SIGCHLD handling as
    /// libvirt does it, and a disaster hook so libxl never exits domfs.
    /// Call once, after any daemonising fork, and only in dom0.
    pub fn new(lib: Libxl, debug: bool) -> Result<Ctx, String> {
        let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| format!("a pipe for libxl's log: {e}"))?;
        let errors = std::sync::Arc::new(Mutex::new(Recent::default()));
        let kept = errors.clone();
        std::thread::Builder::new()
            .name("libxl-log".into())
            .spawn(move || forward_log(rd, &kept))
            .map_err(|e| format!("starting libxl's log thread: {e}"))?;
        let wfd = std::os::fd::IntoRawFd::into_raw_fd(wr);
        // SAFETY: `wfd` is an open descriptor this function owns (from
        // into_raw_fd); fdopen takes it over on success.
        let file = unsafe { libc::fdopen(wfd, c"w".as_ptr()) };
        if file.is_null() {
            // SAFETY: fdopen failed, so the descriptor is still ours.
            drop(unsafe { OwnedFd::from_raw_fd(wfd) });
            return Err("fdopen for libxl's log failed".into());
        }
        let level = if debug { XTL_DEBUG } else { XTL_INFO };
        // SAFETY: `file` is a valid FILE* kept open until after the logger
        // is destroyed (Drop).
        let logger = unsafe { (lib.fns.create_logger)(file, level, XTL_STDIOSTREAM_HIDE_PROGRESS) };
        if logger.is_null() {
            // SAFETY: `file` came from fdopen above and is closed once.
            unsafe { libc::fclose(file) };
            return Err("xtl_createlogger_stdiostream failed".into());
        }
        let mut ctx: CtxPtr = std::ptr::null_mut();
        // SAFETY: `ctx` is a valid out-pointer; `logger` a live
        // xentoollog_logger (a stdiostream logger starts with one).
        let rc = unsafe { (lib.fns.ctx_alloc)(&mut ctx, LIBXL_VERSION, 0, logger) };
        if rc != 0 || ctx.is_null() {
            // SAFETY: the logger and file were made above and are not
            // used by anything else; destroyed and closed once.
            unsafe {
                (lib.fns.logger_destroy)(logger);
                libc::fclose(file);
            }
            return Err(format!(
                "libxl_ctx_alloc failed: {} (is xenstored running? libxl needs it)",
                Code(rc)
            ));
        }
        let childproc = Box::new(ChildprocHooks {
            chldowner: SIGCHLD_OWNER_ALWAYS_SELECTIVE_REAP,
            fork_replacement: None,
            reaped_callback: None,
        });
        let disaster = Box::new(Disaster {
            happened: AtomicBool::new(false),
            message: Mutex::new(String::new()),
        });
        let events = Box::new(EventHooks {
            event_occurs_mask: 0,
            event_occurs: None,
            disaster: Some(on_disaster),
        });
        let user = (&*disaster as *const Disaster).cast_mut().cast::<c_void>();
        // SAFETY: a fresh context with no child and no event generator yet
        // (setmode "may not be called when libxl might have any child
        // processes", register_callbacks not "while any event-generation
        // facilities are enabled"); both tables and `user` are boxed and
        // kept in the returned Ctx, so they outlive the context.
        unsafe {
            (lib.fns.childproc_setmode)(ctx, &*childproc, std::ptr::null_mut());
            (lib.fns.register_callbacks)(ctx, &*events, user);
        }
        Ok(Ctx {
            lib,
            errors,
            ctx,
            logger,
            file,
            _childproc: childproc,
            _events: events,
            disaster,
        })
    }

    /// How many error lines libxl has logged so far.
    pub fn errors_logged(&self) -> u64 {
        crate::sync::lock(&self.errors).seq
    }

    /// The error lines libxl logged after the first `since` (the reason
    /// behind a failed call, which libxl gives only to its log). Lines come
    /// through a pipe, so this waits up to `grace` for the first.
    pub fn errors_since(&self, since: u64, grace: std::time::Duration) -> Vec<String> {
        let until = std::time::Instant::now() + grace;
        loop {
            let got: Vec<String> = crate::sync::lock(&self.errors)
                .lines
                .iter()
                .filter(|(n, _)| *n > since)
                .map(|(_, l)| l.clone())
                .collect();
            if !got.is_empty() || std::time::Instant::now() >= until {
                return got;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// What libxl's disaster hook said, once it was called.
    pub fn disaster(&self) -> Option<String> {
        self.disaster
            .happened
            .load(Ordering::Acquire)
            .then(|| crate::sync::lock(&self.disaster.message).clone())
    }

    /// Parses `json` into a `libxl_domain_config` with libxl's own parser,
    /// the check that libxl accepts what domfs wrote.
    fn config<'a>(&'a self, json: &CStr) -> Result<Owned<'a>, Code> {
        let f = &self.lib.fns;
        let mut cfg = Owned::new(
            &self.lib,
            DOMAIN_CONFIG_SIZE,
            f.config_init,
            f.config_dispose,
        );
        // SAFETY: the context is live; `cfg` an initialised config; `json`
        // NUL-terminated and alive for the call.
        check(unsafe { (self.lib.fns.config_from_json)(self.ctx, cfg.ptr(), json.as_ptr()) })?;
        Ok(cfg)
    }

    /// Whether libxl's parser takes `json` as a domain configuration.
    pub fn parse_config(&self, json: &CStr) -> Result<(), Code> {
        self.config(json).map(drop)
    }

    /// Builds a domain from `json` (`libxl_domain_create_new`, synchronous)
    /// and returns its id; libxl leaves it paused. On failure the id of a
    /// domain libxl could not clean up itself comes with the error.
    pub fn create(&self, json: &CStr) -> Result<u32, (Code, Option<u32>)> {
        let mut cfg = self.config(json).map_err(|c| (c, None))?;
        let mut domid = INVALID_DOMID;
        // SAFETY: live context, initialised config, valid out-pointer; NULL
        // ao_how (synchronous) and NULL progress callback are allowed.
        let rc = unsafe {
            (self.lib.fns.create_new)(
                self.ctx,
                cfg.ptr(),
                &mut domid,
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        created(rc, domid)
    }

    /// Restores a domain from libxl's stream on `fd` (positioned after any
    /// header), with the configuration `json` and the stream version.
    pub fn restore(
        &self,
        json: &CStr,
        fd: &impl AsRawFd,
        stream_version: u32,
    ) -> Result<u32, (Code, Option<u32>)> {
        let mut cfg = self.config(json).map_err(|c| (c, None))?;
        let f = &self.lib.fns;
        let mut params = Owned::new(
            &self.lib,
            RESTORE_PARAMS_SIZE,
            f.restore_params_init,
            f.restore_params_dispose,
        );
        let pjson = CString::new(format!("{{\"stream_version\": {stream_version}}}"))
            .map_err(|_| (Code(ERROR_INVAL), None))?;
        // SAFETY: live context; `params` initialised; `pjson`
        // NUL-terminated; from_json fills only the struct.
        let rc = unsafe { (f.restore_params_from_json)(self.ctx, params.ptr(), pjson.as_ptr()) };
        check(rc).map_err(|c| (c, None))?;
        let mut domid = INVALID_DOMID;
        // SAFETY: live context, initialised config and params, valid
        // out-pointer; `fd` is open for the whole (synchronous) call; -1
        // for send_back_fd means none (not a COLO restore).
        let rc = unsafe {
            (self.lib.fns.create_restore)(
                self.ctx,
                cfg.ptr(),
                &mut domid,
                fd.as_raw_fd(),
                -1,
                params.ptr(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        created(rc, domid)
    }

    pub fn destroy(&self, domid: u32) -> Result<(), Code> {
        // SAFETY: live context; NULL ao_how runs it synchronously.
        check(unsafe { (self.lib.fns.destroy)(self.ctx, domid, std::ptr::null()) })
    }
    pub fn shutdown(&self, domid: u32) -> Result<(), Code> {
        // SAFETY: as for destroy.
        check(unsafe { (self.lib.fns.shutdown)(self.ctx, domid, std::ptr::null()) })
    }
    pub fn reboot(&self, domid: u32) -> Result<(), Code> {
        // SAFETY: as for destroy.
        check(unsafe { (self.lib.fns.reboot)(self.ctx, domid, std::ptr::null()) })
    }
    pub fn pause(&self, domid: u32) -> Result<(), Code> {
        // SAFETY: as for destroy.
        check(unsafe { (self.lib.fns.pause)(self.ctx, domid, std::ptr::null()) })
    }
    pub fn unpause(&self, domid: u32) -> Result<(), Code> {
        // SAFETY: as for destroy.
        check(unsafe { (self.lib.fns.unpause)(self.ctx, domid, std::ptr::null()) })
    }

    /// Writes the domain's state as libxl's stream to `fd` (at its current
    /// offset) and leaves the domain suspended; the caller destroys it.
    pub fn suspend(&self, domid: u32, fd: &impl AsRawFd) -> Result<(), Code> {
        // SAFETY: live context; `fd` open for the whole synchronous call;
        // flags 0 (not live, no debug).
        check(unsafe {
            (self.lib.fns.suspend)(self.ctx, domid, fd.as_raw_fd(), 0, std::ptr::null())
        })
    }

    /// Sets the balloon target (KiB, absolute, and enforced as xl does).
    pub fn set_memory_target(&self, domid: u32, kib: u64) -> Result<(), Code> {
        let kib = i64::try_from(kib).map_err(|_| Code(ERROR_INVAL))?;
        // SAFETY: live context; plain values.
        check(unsafe { (self.lib.fns.set_memory_target)(self.ctx, domid, kib, 0, 1) })
    }

    /// Sets which vCPUs are online: the first `online` of `max`.
    pub fn set_vcpus_online(&self, domid: u32, online: u32, max: u32) -> Result<(), Code> {
        if online > max || max == 0 {
            return Err(Code(ERROR_INVAL));
        }
        let mut bytes = vec![0u8; (max as usize).div_ceil(8)];
        for i in 0..online as usize {
            bytes[i / 8] |= 1 << (i % 8);
        }
        let mut map = Bitmap {
            size: u32::try_from(bytes.len()).map_err(|_| Code(ERROR_INVAL))?,
            map: bytes.as_mut_ptr(),
        };
        // SAFETY: live context; `map` describes `bytes` (size in bytes, as
        // libxl_bitmap's `size` is), which outlives the synchronous call;
        // libxl only reads it.
        check(unsafe { (self.lib.fns.set_vcpuonline)(self.ctx, domid, &mut map, std::ptr::null()) })
    }

    /// Asks for DOMAIN_SHUTDOWN and DOMAIN_DEATH events of `domid`.
    pub fn watch_death(&self, domid: u32) -> Result<DeathWatch, Code> {
        let mut evgen: *mut c_void = std::ptr::null_mut();
        // SAFETY: live context; valid out-pointer; the user value is the
        // domid (a plain number libxl hands back in the event).
        check(unsafe {
            (self.lib.fns.evenable_domain_death)(self.ctx, domid, u64::from(domid), &mut evgen)
        })?;
        Ok(DeathWatch(evgen))
    }

    pub fn stop_watching(&self, w: DeathWatch) {
        // SAFETY: `w` came from watch_death on this context (the only way
        // to make one) and is consumed, so it is disabled exactly once.
        unsafe { (self.lib.fns.evdisable_domain_death)(self.ctx, w.0) };
    }

    /// An event libxl has already queued, as libxl's JSON; None when there
    /// is none (it never waits: events are made by `after_poll` and by the
    /// loops of synchronous calls).
    pub fn check_event(&self) -> Result<Option<String>, Code> {
        let mut ev: *mut c_void = std::ptr::null_mut();
        // SAFETY: live context; valid out-pointer; no predicate (NULL).
        let rc = unsafe {
            (self.lib.fns.event_check)(
                self.ctx,
                &mut ev,
                EVENTMASK_ALL,
                std::ptr::null(),
                std::ptr::null_mut(),
            )
        };
        if rc == ERROR_NOT_READY {
            return Ok(None);
        }
        check(rc)?;
        if ev.is_null() {
            return Err(Code(-3));
        }
        // SAFETY: `ev` is the event libxl just handed over; to_json reads
        // it and returns a malloc'd string or NULL.
        let json = unsafe { (self.lib.fns.event_to_json)(self.ctx, ev) };
        let text = take_string(json);
        // SAFETY: the event is ours (returned by event_check) and freed once.
        unsafe { (self.lib.fns.event_free)(self.ctx, ev) };
        text.map(Some).ok_or(Code(-3))
    }

    /// The descriptors libxl wants polled and how long it may wait (ms,
    /// negative: no limit of its own), for the application's poll loop
    /// (`libxl_osevent_beforepoll`). Only one thread may run this loop.
    pub fn before_poll(
        &self,
        fds: &mut Vec<libc::pollfd>,
        timeout_ms: &mut c_int,
    ) -> Result<(), Code> {
        loop {
            let room = c_int::try_from(fds.capacity()).map_err(|_| Code(ERROR_BUFFERFULL))?;
            let mut n = room;
            fds.clear();
            // SAFETY: live context; `fds` has room for `room` pollfds, which
            // libxl fills only when they fit (else BUFFERFULL and a count);
            // `n` and `timeout_ms` are valid in/out values.
            let rc = unsafe {
                (self.lib.fns.beforepoll)(self.ctx, &mut n, fds.as_mut_ptr(), timeout_ms, now())
            };
            match rc {
                0 => {
                    let used = usize::try_from(n).map_err(|_| Code(ERROR_BUFFERFULL))?;
                    if used > fds.capacity() {
                        return Err(Code(ERROR_BUFFERFULL));
                    }
                    // SAFETY: libxl initialised the first `used` entries
                    // (at most the capacity, checked above).
                    unsafe { fds.set_len(used) };
                    return Ok(());
                }
                ERROR_BUFFERFULL if n > room => {
                    fds.reserve(usize::try_from(n).map_err(|_| Code(ERROR_BUFFERFULL))?)
                }
                rc => return Err(Code(rc)),
            }
        }
    }

    /// Hands libxl what poll found on the descriptors `before_poll` gave
    /// (`libxl_osevent_afterpoll`); the events it makes are then there for
    /// `check_event`.
    pub fn after_poll(&self, fds: &[libc::pollfd]) {
        let Ok(n) = c_int::try_from(fds.len()) else {
            return;
        };
        // SAFETY: live context; `fds` are the entries from the latest
        // before_poll, as poll(2) updated them, and stay alive for the call.
        unsafe { (self.lib.fns.afterpoll)(self.ctx, n, fds.as_ptr(), now()) };
    }

    /// Writes the domain's memory as a core file (`libxl_domain_core_dump`).
    pub fn core_dump(&self, domid: u32, path: &CStr) -> Result<(), Code> {
        // SAFETY: live context; `path` NUL-terminated and alive for the
        // synchronous call (NULL ao_how).
        check(unsafe { (self.lib.fns.core_dump)(self.ctx, domid, path.as_ptr(), std::ptr::null()) })
    }

    fn disk(&self) -> Owned<'_> {
        let f = &self.lib.fns;
        Owned::new(&self.lib, DEVICE_DISK_SIZE, f.disk_init, f.disk_dispose)
    }

    /// Adds the disk `json` describes (libxl's own JSON form of
    /// `libxl_device_disk`) to a running domain, hotplug script included
    /// (`libxl_device_disk_add`, synchronous).
    pub fn disk_add(&self, domid: u32, json: &CStr) -> Result<(), Code> {
        let mut disk = self.disk();
        // SAFETY: live context; `disk` initialised; `json` NUL-terminated.
        check(unsafe { (self.lib.fns.disk_from_json)(self.ctx, disk.ptr(), json.as_ptr()) })?;
        // SAFETY: live context; `disk` filled by libxl's parser; NULL
        // ao_how makes the call synchronous, so `disk` outlives it.
        check(unsafe { (self.lib.fns.disk_add)(self.ctx, domid, disk.ptr(), std::ptr::null()) })
    }

    /// Removes a running domain's disk by its virtual device name, as libxl
    /// finds it in xenstore (`libxl_vdev_to_device_disk`, then
    /// `libxl_device_disk_remove`). `Err(None)` when the domain has no such
    /// disk.
    pub fn disk_remove(&self, domid: u32, vdev: &CStr) -> Result<(), Option<Code>> {
        let mut disk = self.disk();
        // SAFETY: live context; `vdev` NUL-terminated; `disk` initialised,
        // filled only by libxl.
        let rc = unsafe { (self.lib.fns.vdev_to_disk)(self.ctx, domid, vdev.as_ptr(), disk.ptr()) };
        if rc != 0 {
            return Err(None);
        }
        // SAFETY: live context; `disk` filled by libxl; synchronous call.
        check(unsafe { (self.lib.fns.disk_remove)(self.ctx, domid, disk.ptr(), std::ptr::null()) })
            .map_err(Some)
    }

    /// Every domain's id and UUID (`libxl_list_domain`).
    pub fn list_domains(&self) -> Result<Vec<(u32, [u8; 16])>, Code> {
        let mut n: c_int = 0;
        // SAFETY: live context; valid out-pointer.
        let list = unsafe { (self.lib.fns.list_domain)(self.ctx, &mut n) };
        if list.is_null() {
            return Err(Code(-3));
        }
        let count = usize::try_from(n).unwrap_or(0);
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            let mut uuid = [0u8; 16];
            let mut domid = [0u8; 4];
            // SAFETY: libxl returned `n` consecutive libxl_dominfo of
            // DOMINFO_SIZE bytes each; uuid (16 bytes) and domid (u32) lie
            // at the offsets the layout test checks, inside each element.
            unsafe {
                let el = list.add(i * DOMINFO_SIZE);
                std::ptr::copy_nonoverlapping(el.add(DOMINFO_UUID), uuid.as_mut_ptr(), 16);
                std::ptr::copy_nonoverlapping(el.add(DOMINFO_DOMID), domid.as_mut_ptr(), 4);
            }
            out.push((u32::from_ne_bytes(domid), uuid));
        }
        // SAFETY: the list and its length from libxl_list_domain, freed once.
        unsafe { (self.lib.fns.dominfo_list_free)(list, n) };
        Ok(out)
    }
}

/// poll(2) over descriptors libxl gave and the caller's own.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: c_int) -> std::io::Result<usize> {
    let n = libc::nfds_t::try_from(fds.len())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `fds` is a valid, exclusively borrowed slice of `n` pollfds;
    // poll only writes their `revents`.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), n, timeout_ms) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(rc as usize)
}

/// The time of day, as libxl's poll hooks take it.
fn now() -> libc::timeval {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    libc::timeval {
        tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_usec: libc::suseconds_t::from(d.subsec_micros() as i32),
    }
}

fn created(rc: c_int, domid: u32) -> Result<u32, (Code, Option<u32>)> {
    match rc {
        0 if domid != INVALID_DOMID => Ok(domid),
        0 => Err((Code(-3), None)),
        // libxl destroys what a failed create built, except after
        // ERROR_ABORTED (libxl_create.c, domcreate_complete).
        ERROR_ABORTED => Err((Code(rc), (domid != INVALID_DOMID).then_some(domid))),
        _ => Err((Code(rc), None)),
    }
}

/// Takes over a malloc'd C string: copies it out and frees it.
fn take_string(p: *mut c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: a NUL-terminated string libxl allocated with malloc.
    let s = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
    // SAFETY: allocated with malloc by libxl (libxl__yajl_gen's result
    // is strdup'd), not used after this.
    unsafe { libc::free(p.cast()) };
    Some(s)
}

impl Drop for Ctx {
    fn drop(&mut self) {
        // SAFETY: the context, logger and file were made in `new` and are
        // freed once, in that order (the logger must outlive the context,
        // the file the logger); the hook boxes are dropped after this.
        unsafe {
            (self.lib.fns.ctx_free)(self.ctx);
            (self.lib.fns.logger_destroy)(self.logger);
            libc::fclose(self.file);
        }
    }
}

/// The last error lines libxl logged, numbered.
#[derive(Default)]
struct Recent {
    seq: u64,
    lines: std::collections::VecDeque<(u64, String)>,
}

/// How many of libxl's error lines are kept for error messages.
const RECENT_ERRORS: usize = 8;

/// Copies libxl's log lines into domfs's log, at the level each names
/// (`libxl: error: ...`), keeping the last error lines for messages.
fn forward_log(rd: OwnedFd, errors: &Mutex<Recent>) {
    let reader = BufReader::new(std::fs::File::from(rd));
    for line in reader.lines() {
        let Ok(line) = line else { break };
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        let lower = line.to_ascii_lowercase();
        if lower.contains(": critical: ") || lower.contains(": error: ") {
            log::error!("{line}");
            let mut r = crate::sync::lock(errors);
            r.seq += 1;
            let n = r.seq;
            r.lines.push_back((n, line.chars().take(400).collect()));
            if r.lines.len() > RECENT_ERRORS {
                r.lines.pop_front();
            }
        } else if lower.contains(": warning: ") {
            log::warn!("{line}");
        } else if lower.contains(": debug: ") || lower.contains(": verbose: ") {
            log::debug!("{line}");
        } else {
            log::info!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_library_loads_with_every_entry_point_where_installed() {
        match Libxl::load() {
            Ok(_) => {}
            Err(e) if e.contains("cannot load") => {
                eprintln!("skipped: {e}");
            }
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn codes_are_named() {
        assert_eq!(Code(ERROR_INVAL).to_string(), "ERROR_INVAL (-6)");
        assert_eq!(Code(-99).to_string(), "libxl error -99");
    }
}
