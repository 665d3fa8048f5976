//! The libxl driver: domains run through libxenlight (Xen 4.17), the
//! library `xl` and libvirt's own Xen driver use since xend was removed.
//! libxl takes a whole domain configuration as one JSON document
//! (`libxl_domain_config_from_json`), so the driver is a pure conversion
//! (`config`) plus, later, the transport that loads the library at run time.
//!
//! Like every driver it never sees the filesystem; the conversion module
//! must stay pure (no I/O, no library calls) so tests can drive it with
//! libvirt's own vectors.

pub mod config;
pub mod sys;
