//! State shared by a simulator's handlers.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

/// Locks `mutex`, poisoned or not: a panic in one handler must not take every later request
/// down with it.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A value replaced whole on each change: what was read before a change (an answer being
/// written, an export created earlier) keeps the value it read.
pub struct Snapshot<T> {
    current: RwLock<Arc<T>>,
}

impl<T: Clone> Snapshot<T> {
    pub fn new(value: T) -> Self {
        Self { current: RwLock::new(Arc::new(value)) }
    }

    /// The value now; later changes do not alter it.
    pub fn current(&self) -> Arc<T> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Applies `change` to a copy of the value, which then replaces it. Changes run one at a
    /// time.
    pub fn change<R>(&self, change: impl FnOnce(&mut T) -> R) -> R {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let mut changed = T::clone(&current);
        let result = change(&mut changed);
        *current = Arc::new(changed);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_leaves_earlier_snapshots_alone() {
        let snapshot = Snapshot::new(vec![1]);
        let before = snapshot.current();
        let length = snapshot.change(|value| {
            value.push(2);
            value.len()
        });
        assert_eq!(length, 2);
        assert_eq!(*before, [1]);
        assert_eq!(*snapshot.current(), [1, 2]);
    }

    #[test]
    fn a_poisoned_mutex_still_locks() {
        let mutex = Arc::new(Mutex::new(1));
        let poisoner = Arc::clone(&mutex);
        let _ = std::thread::spawn(move || {
            let _guard = lock(&poisoner);
            panic!("a handler panics holding the lock");
        })
        .join();
        assert!(mutex.is_poisoned());
        assert_eq!(*lock(&mutex), 1);
    }
}
