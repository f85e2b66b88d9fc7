//! Locking that shrugs off poisoning: a task that panicked while holding a
//! lock does not take the node down with it, and the data behind the
//! node's locks (maps of connections and counters, plans replaced whole)
//! is valid at every step.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `mutex`, whether or not a panic poisoned it.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Read-locks `rwlock`, whether or not a panic poisoned it.
pub fn read<T>(rwlock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    rwlock.read().unwrap_or_else(|p| p.into_inner())
}

/// Write-locks `rwlock`, whether or not a panic poisoned it.
pub fn write<T>(rwlock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    rwlock.write().unwrap_or_else(|p| p.into_inner())
}
