//! The worker's object store: outputs too large to return inline, kept until the keeper
//! fetches or drops them.

use std::collections::HashMap;

use bytes::Bytes;

/// Outputs above the inline limit, kept for fetching, oldest evicted first beyond a byte cap.
/// There is no distributed reference counting (Ray has it): eviction plus lineage
/// re-execution bound memory instead.
pub(crate) struct ObjectStore {
    map: HashMap<(u64, u32), Bytes>,
    order: std::collections::VecDeque<(u64, u32)>,
    bytes: u64,
    cap: u64,
}

impl ObjectStore {
    pub(crate) fn new(cap: u64) -> Self {
        Self {
            map: HashMap::new(),
            order: Default::default(),
            bytes: 0,
            cap,
        }
    }
    pub(crate) fn get(&self, k: &(u64, u32)) -> Option<&Bytes> {
        self.map.get(k)
    }
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
    pub(crate) fn insert(&mut self, k: (u64, u32), v: Bytes) {
        self.bytes += v.len() as u64;
        if let Some(old) = self.map.insert(k, v) {
            self.bytes -= old.len() as u64;
        } else {
            self.order.push_back(k);
        }
        while self.bytes > self.cap {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(b) = self.map.remove(&oldest) {
                self.bytes -= b.len() as u64;
            }
        }
    }
    pub(crate) fn remove(&mut self, k: (u64, u32)) {
        if let Some(b) = self.map.remove(&k) {
            self.bytes -= b.len() as u64;
            self.order.retain(|x| *x != k);
        }
    }
}

#[cfg(test)]
mod store_tests {
    use super::*;

    #[test]
    fn object_store_evicts_oldest_beyond_cap() {
        let mut s = ObjectStore::new(10);
        s.insert((1, 0), Bytes::from_static(b"aaaa"));
        s.insert((2, 0), Bytes::from_static(b"bbbb"));
        s.insert((3, 0), Bytes::from_static(b"cccc"));
        assert!(s.get(&(1, 0)).is_none());
        assert!(s.get(&(3, 0)).is_some());
        assert_eq!(s.bytes, 8);
        s.remove((2, 0));
        assert_eq!((s.len(), s.bytes), (1, 4));
    }
}
