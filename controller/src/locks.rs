//! Per-instance mutual exclusion for read-decide-commit sequences.
//!
//! Every change to an instance or its bindings (a request's admission, an engine transition)
//! holds the instance's lock from reading the map to committing the store, so two requests for
//! one instance never both decide on the same old state (D-12: 16 concurrent provisions of one
//! id create exactly one instance). The locks are striped: a fixed array indexed by a hash of
//! the instance id, so memory stays bounded and nothing needs cleaning up; two instances that
//! share a stripe merely wait for each other briefly.

use tokio::sync::{Mutex, MutexGuard};

/// Number of stripes; plenty for the worker counts we run.
const STRIPES: usize = 512;

/// The striped locks.
#[derive(Debug)]
pub struct InstanceLocks {
    stripes: Vec<Mutex<()>>,
}

impl Default for InstanceLocks {
    fn default() -> Self {
        InstanceLocks {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }
}

impl InstanceLocks {
    /// Waits for and holds the lock of `instance_id`.
    pub async fn lock(&self, instance_id: &str) -> MutexGuard<'_, ()> {
        // FNV-1a: cheap and stable.
        let hash = instance_id.bytes().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
        });
        self.stripes[(hash % STRIPES as u64) as usize].lock().await
    }
}
