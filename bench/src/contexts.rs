//! The last causal context the tool saw for each key, so that plain writes
//! replace the value the way a real client's overwrite does (a write with no
//! context supersedes nothing and would pile up siblings).

use std::collections::HashMap;
use std::sync::Mutex;

use http::HeaderValue;

const SHARDS: usize = 64;

/// Per-key contexts, sharded to keep workers from contending on one lock.
pub struct ContextCache {
    shards: Vec<Mutex<HashMap<u64, HeaderValue>>>,
}

impl Default for ContextCache {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl ContextCache {
    /// The context last recorded for `key`.
    pub fn get(&self, key: u64) -> Option<HeaderValue> {
        self.shard(key).get(&key).cloned()
    }

    /// Records the context a write of `key` returned. The value is copied:
    /// a header parsed from a response shares that response's whole read
    /// buffer, which would otherwise stay allocated per key.
    pub fn set(&self, key: u64, context: Option<HeaderValue>) {
        if let Some(owned) = context.and_then(|c| HeaderValue::from_bytes(c.as_bytes()).ok()) {
            self.shard(key).insert(key, owned);
        }
    }

    fn shard(&self, key: u64) -> std::sync::MutexGuard<'_, HashMap<u64, HeaderValue>> {
        self.shards[key as usize % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_latest_context_per_key() {
        let cache = ContextCache::default();
        assert_eq!(cache.get(7), None);
        cache.set(7, Some(HeaderValue::from_static("a")));
        cache.set(7, None);
        assert_eq!(cache.get(7), Some(HeaderValue::from_static("a")));
        cache.set(7, Some(HeaderValue::from_static("b")));
        cache.set(70, Some(HeaderValue::from_static("c")));
        assert_eq!(cache.get(7), Some(HeaderValue::from_static("b")));
        assert_eq!(cache.get(70), Some(HeaderValue::from_static("c")));
    }
}
