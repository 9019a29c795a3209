//! Wake-ups by key, for requests that wait for something to change (a device's read-model
//! row, a tenant's events): each key has a `watch` channel while someone waits on it; the
//! value sent says how far the thing got (adapters decide what it means), and only the
//! waiters of a key that changed are woken. Adapters fill it from their change signals
//! (Postgres notifications); a missed wake-up costs only latency, since waiters also re-read
//! on a timer.

use std::collections::HashMap;
use std::hash::Hash;

use tokio::sync::watch;

/// Waiters by key. An entry lives while someone waits; entries nobody holds any more are
/// swept when the map has doubled since the last sweep.
pub struct WakeUps<K> {
    by_key: HashMap<K, watch::Sender<u64>>,
    swept_at_len: usize,
}

impl<K> Default for WakeUps<K> {
    fn default() -> Self {
        Self {
            by_key: HashMap::new(),
            swept_at_len: 0,
        }
    }
}

impl<K: Hash + Eq> WakeUps<K> {
    /// A receiver for `key`'s wake-ups. (The initial value is never seen: a receiver only
    /// looks at values sent after it subscribed.)
    pub fn watch(&mut self, key: K) -> watch::Receiver<u64> {
        if self.by_key.len() > 2 * self.swept_at_len.max(512) {
            self.by_key.retain(|_, tx| tx.receiver_count() > 0);
            self.swept_at_len = self.by_key.len();
        }
        self.by_key
            .entry(key)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Wakes `key`'s waiters with `value`, if any wait.
    pub fn wake(&mut self, key: &K, value: u64) {
        if let Some(tx) = self.by_key.get(key) {
            if tx.receiver_count() == 0 {
                self.by_key.remove(key);
            } else {
                tx.send_replace(value);
            }
        }
    }

    /// Wakes every waiter with `value` (e.g. after the signals were interrupted: anything may
    /// have changed meanwhile).
    pub fn wake_all(&mut self, value: u64) {
        self.by_key.retain(|_, tx| tx.receiver_count() > 0);
        for tx in self.by_key.values() {
            tx.send_replace(value);
        }
    }

    /// Whether anyone waits on `key`.
    pub fn is_watched(&self, key: &K) -> bool {
        self.by_key.contains_key(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_waiters_of_a_woken_key_wake_and_abandoned_entries_go() {
        let mut wake_ups = WakeUps::default();
        let mut on_a = wake_ups.watch("a");
        let on_b = wake_ups.watch("b");
        wake_ups.wake(&"a", 2);
        assert!(on_a.has_changed().unwrap());
        assert_eq!(*on_a.borrow_and_update(), 2);
        assert!(!on_b.has_changed().unwrap());
        drop(on_b);
        wake_ups.wake(&"b", 1);
        assert!(!wake_ups.is_watched(&"b"), "nobody waits for b any more");
        wake_ups.wake_all(9);
        assert_eq!(*on_a.borrow_and_update(), 9);
        let on_b = wake_ups.watch("b");
        assert!(!on_b.has_changed().unwrap());
    }
}
