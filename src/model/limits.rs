//! The bounds a value written by a user must respect, written once for
//! every driver that enforces them. Pure: each answers the reason a value
//! is refused, for the caller to wrap in its error.

/// The smallest balloon target Xen guests are given (libvirt's xenstore
/// driver refused less, KiB): below it a guest cannot run its kernel.
pub const XEN_MIN_MEMORY_KIB: u64 = 4096;

/// Current memory may not exceed the maximum (libvirt's words).
pub fn memory_within(kib: u64, max_kib: u64) -> Result<(), String> {
    if kib > max_kib {
        return Err(format!(
            "cannot set memory higher than max memory ({kib} > {max_kib} KiB)"
        ));
    }
    Ok(())
}

/// A Xen guest's balloon target: at least the minimum, at most the maximum.
pub fn xen_memory_target(kib: u64, max_kib: u64) -> Result<(), String> {
    if kib < XEN_MIN_MEMORY_KIB {
        return Err(format!(
            "a memory target below {XEN_MIN_MEMORY_KIB} KiB is refused"
        ));
    }
    memory_within(kib, max_kib)
}

/// vCPUs in use: at least one (the front end checks), at most the maximum.
pub fn vcpus_within(count: u32, max: u32) -> Result<(), String> {
    if count > max {
        return Err(format!(
            "requested cpu amount exceeds maximum ({count} > {max})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert!(memory_within(2048, 2048).is_ok());
        assert!(memory_within(2049, 2048)
            .unwrap_err()
            .contains("2049 > 2048"));
        assert!(xen_memory_target(4095, 1 << 20)
            .unwrap_err()
            .contains("4096"));
        assert!(xen_memory_target(4096, 1 << 20).is_ok());
        assert!(xen_memory_target(8192, 4096).is_err());
        assert!(vcpus_within(2, 2).is_ok());
        assert!(vcpus_within(3, 2)
            .unwrap_err()
            .contains("exceeds maximum (3 > 2)"));
    }
}
