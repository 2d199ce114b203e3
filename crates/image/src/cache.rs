//! A small bounded cache of decoded metadata or data blocks, shared by the
//! format readers (qcow2 clusters, VHD bitmaps, VMDK grain tables and
//! grains): at most `capacity` entries, evicted first in, first out, so
//! memory stays bounded whatever an image declares.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex};

/// Values by a `u64` key (a host offset or a table index).
pub(crate) struct FifoCache<V> {
    capacity: usize,
    inner: Mutex<Entries<V>>,
}

struct Entries<V> {
    order: VecDeque<u64>,
    values: HashMap<u64, Arc<V>>,
}

impl<V> FifoCache<V> {
    /// A cache holding at most `capacity` values (at least one).
    pub(crate) fn new(capacity: usize) -> FifoCache<V> {
        FifoCache {
            capacity: capacity.max(1),
            inner: Mutex::new(Entries {
                order: VecDeque::new(),
                values: HashMap::new(),
            }),
        }
    }

    /// The value under `key`, loaded (outside the lock) and kept when it is
    /// not cached. A failed load is not cached.
    pub(crate) fn get_or_load(
        &self,
        key: u64,
        load: impl FnOnce() -> io::Result<V>,
    ) -> io::Result<Arc<V>> {
        if let Some(v) = self.inner.lock().expect("cache").values.get(&key) {
            return Ok(Arc::clone(v));
        }
        let value = Arc::new(load()?);
        let mut e = self.inner.lock().expect("cache");
        if !e.values.contains_key(&key) {
            while e.order.len() >= self.capacity {
                if let Some(old) = e.order.pop_front() {
                    e.values.remove(&old);
                }
            }
            e.order.push_back(key);
            e.values.insert(key, Arc::clone(&value));
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_capacity_and_evicts_the_oldest() {
        let c = FifoCache::new(2);
        let loads = std::cell::Cell::new(0);
        let get = |k: u64| {
            *c.get_or_load(k, || {
                loads.set(loads.get() + 1);
                Ok(k * 10)
            })
            .unwrap()
        };
        assert_eq!(get(1), 10);
        assert_eq!(get(2), 20);
        assert_eq!(get(1), 10);
        assert_eq!(loads.get(), 2, "cached");
        get(3); // evicts 1
        get(1);
        assert_eq!(loads.get(), 4);
        assert!(c.get_or_load(9, || Err(io::Error::other("bad"))).is_err());
        assert_eq!(
            *c.get_or_load(9, || Ok(90)).unwrap(),
            90,
            "errors are not kept"
        );
    }
}
