//! The one lock helper: locks that a panic elsewhere cannot make unusable.
//! Every critical section in domfs leaves its data consistent before it can
//! panic, so a poisoned lock's data is still good and is used as it is.

use std::sync::{Mutex, MutexGuard};

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
