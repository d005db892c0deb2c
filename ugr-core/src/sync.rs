//! The reader-writer lock behind the engine's live state: `std`'s where there is one (it
//! parks waiting threads and prefers writers), `spin`'s in `no_std` builds.
//!
//! A poisoned `std` lock is used as it is: the state it guards is only changed by code that
//! checks its whole input before the first write, so a panic cannot leave it half-updated.

#[cfg(feature = "std")]
mod imp {
    pub(crate) use std::sync::{RwLockReadGuard as ReadGuard, RwLockWriteGuard as WriteGuard};

    #[derive(Debug, Default)]
    pub(crate) struct Lock<T>(std::sync::RwLock<T>);

    impl<T> Lock<T> {
        pub(crate) fn new(value: T) -> Self {
            Lock(std::sync::RwLock::new(value))
        }
        pub(crate) fn read(&self) -> ReadGuard<'_, T> {
            self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner)
        }
        pub(crate) fn write(&self) -> WriteGuard<'_, T> {
            self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner)
        }
    }
}

#[cfg(not(feature = "std"))]
mod imp {
    pub(crate) use spin::{RwLockReadGuard as ReadGuard, RwLockWriteGuard as WriteGuard};

    #[derive(Debug, Default)]
    pub(crate) struct Lock<T>(spin::RwLock<T>);

    impl<T> Lock<T> {
        pub(crate) fn new(value: T) -> Self {
            Lock(spin::RwLock::new(value))
        }
        pub(crate) fn read(&self) -> ReadGuard<'_, T> {
            self.0.read()
        }
        pub(crate) fn write(&self) -> WriteGuard<'_, T> {
            self.0.write()
        }
    }
}

pub(crate) use imp::Lock;
