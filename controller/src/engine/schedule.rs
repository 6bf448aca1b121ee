//! When each operation in flight is next due, and how long a poll waits.
//!
//! A queue keyed by due time (as kube-runtime's scheduler), not a sleep per operation and
//! not a scan over everything: a pass takes what is due, longest due first, and pays for
//! nothing else.

use std::collections::BTreeSet;
use std::sync::Arc;

use hashbrown::HashMap;
use skybroker_storage::UnixMillis;

/// Due-time index of operations in flight. Both maps share one allocation per id, so taking
/// an operation out touches its id once (the scanner's cost per job is mostly such memory
/// accesses).
#[derive(Debug, Default)]
pub struct Schedule {
    by_due: BTreeSet<(UnixMillis, Arc<str>)>,
    due_of: HashMap<Arc<str>, UnixMillis>,
}

impl Schedule {
    /// Makes `operation_id` due at `due`, moving it if it was scheduled already: an
    /// operation is never due twice.
    pub fn insert(&mut self, operation_id: &str, due: UnixMillis) {
        let id = match self.due_of.get_key_value(operation_id) {
            Some((id, &old)) => {
                let id = Arc::clone(id);
                self.by_due.remove(&(old, Arc::clone(&id)));
                id
            }
            None => Arc::from(operation_id),
        };
        self.due_of.insert(Arc::clone(&id), due);
        self.by_due.insert((due, id));
    }

    /// When `operation_id` is due, if it is scheduled.
    pub fn due(&self, operation_id: &str) -> Option<UnixMillis> {
        self.due_of.get(operation_id).copied()
    }

    /// How many operations are scheduled.
    pub fn len(&self) -> usize {
        self.due_of.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.due_of.is_empty()
    }

    /// The operation due first, if it is due by `now`, out of the index.
    pub fn pop_due(&mut self, now: UnixMillis) -> Option<Arc<str>> {
        let (at, _) = self.by_due.first()?;
        if *at > now {
            return None;
        }
        let (_, id) = self.by_due.pop_first()?;
        self.due_of.remove(&id);
        Some(id)
    }

    /// Up to `most` operations due by `now`, longest due first, taken out (one lock for a
    /// batch of the scanner's).
    pub fn pop_due_many(&mut self, now: UnixMillis, most: usize) -> Vec<Arc<str>> {
        let mut due = Vec::with_capacity(most.min(self.due_of.len()));
        while due.len() < most {
            let Some(id) = self.pop_due(now) else { break };
            due.push(id);
        }
        due
    }

    /// Those of `operation_ids` due by `now`, out of the index; the others stay.
    pub fn take_if_due(&mut self, operation_ids: Vec<String>, now: UnixMillis) -> Vec<Arc<str>> {
        operation_ids
            .into_iter()
            .filter_map(|id| {
                if self.due_of.get(id.as_str()).is_none_or(|due| *due > now) {
                    return None;
                }
                let (id, due) = self.due_of.remove_entry(id.as_str())?;
                self.by_due.remove(&(due, Arc::clone(&id)));
                Some(id)
            })
            .collect()
    }
}

/// The delay before the next poll: `interval_ms`, growing by half with every attempt, capped
/// at `max_ms`, then shortened by up to a quarter (jitter). Without the jitter, operations
/// accepted together (a burst of provisions, a restart) would stay in step for their whole
/// life: every poll of theirs due in the same pass, and sent to the cloud's API at once. The
/// jitter is drawn from the operation and attempt, so it needs no random source.
pub fn backoff(interval_ms: u64, max_ms: u64, operation_id: &str, attempts: u32) -> u64 {
    let grown = interval_ms as f64 * 1.5f64.powi(attempts.min(30) as i32 - 1);
    let delay = (grown as u64).clamp(1, max_ms.max(1));
    // FNV-1a over the id and the attempt count.
    let hash = operation_id
        .bytes()
        .chain(attempts.to_le_bytes())
        .fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
        });
    (delay - delay * (hash % 1024) / 4096).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_back_off_capped_and_spread() {
        let delays = |attempts| -> Vec<u64> {
            (0..1000)
                .map(|n| backoff(1_000, 30_000, &format!("op-{n}"), attempts))
                .collect()
        };
        for (attempts, full) in [(1, 1_000), (2, 1_500), (3, 2_250), (20, 30_000)] {
            let delays = delays(attempts);
            let (min, max) = (delays.iter().min().unwrap(), delays.iter().max().unwrap());
            assert!(
                *min >= full * 3 / 4 && *max <= full,
                "attempt {attempts}: {min}..{max} outside 3/4 of {full}..{full}"
            );
            // Spread over the quarter: operations accepted together drift apart.
            assert!(max - min > full / 5, "attempt {attempts}: {min}..{max}");
            let distinct: std::collections::HashSet<_> = delays.iter().collect();
            assert!(
                distinct.len() > 100,
                "attempt {attempts}: {}",
                distinct.len()
            );
        }
        // The same operation and attempt always wait the same.
        assert_eq!(
            backoff(1_000, 30_000, "op-1", 4),
            backoff(1_000, 30_000, "op-1", 4)
        );
    }

    #[test]
    fn the_schedule_hands_out_what_is_due_longest_due_first() {
        let mut schedule = Schedule::default();
        schedule.insert("b", 20);
        schedule.insert("a", 10);
        schedule.insert("c", 30);
        // Rescheduling moves an operation; it is never due twice.
        schedule.insert("c", 15);
        assert_eq!(schedule.pop_due(20).as_deref(), Some("a"));
        assert_eq!(schedule.pop_due(20).as_deref(), Some("c"));
        assert_eq!(schedule.pop_due(20).as_deref(), Some("b"));
        assert_eq!(schedule.pop_due(20), None);
        assert!(schedule.is_empty() && schedule.by_due.is_empty());
        for (id, due) in [("d", 40), ("e", 10), ("f", 30), ("g", 20)] {
            schedule.insert(id, due);
        }
        let ids = |due: Vec<Arc<str>>| due.iter().map(|id| id.to_string()).collect::<Vec<_>>();
        assert_eq!(ids(schedule.pop_due_many(30, 2)), ["e", "g"]);
        assert_eq!(ids(schedule.pop_due_many(30, 5)), ["f"]);
        assert_eq!(schedule.len(), 1);
    }

    #[test]
    fn chosen_due_operations_leave_the_schedule_and_the_rest_stay() {
        let mut schedule = Schedule::default();
        for (id, due) in [
            ("async-1", 5),
            ("sync-1", 8),
            ("async-2", 9),
            ("sync-2", 50),
        ] {
            schedule.insert(id, due);
        }
        let wanted = vec!["sync-1".to_owned(), "sync-2".to_owned(), "gone".to_owned()];
        // sync-2 is not due yet and "gone" is not scheduled: only sync-1 is taken.
        assert_eq!(schedule.take_if_due(wanted, 10), [Arc::from("sync-1")]);
        assert_eq!(schedule.pop_due(10).as_deref(), Some("async-1"));
        assert_eq!(schedule.pop_due(10).as_deref(), Some("async-2"));
        assert_eq!(schedule.pop_due(10), None);
        assert_eq!(schedule.due("sync-2"), Some(50));
        assert_eq!(schedule.by_due.len(), 1, "both maps agree");
    }
}
