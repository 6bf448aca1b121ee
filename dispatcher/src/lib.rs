//! The worker pool: a bounded `crossbeam-channel` feeding a fixed number of named OS threads.
//!
//! This is where Skybroker draws its async/blocking boundary. HTTP handlers and the engine run
//! on tokio and only [`Dispatcher::try_submit`] (never a blocking send, which would stall a
//! runtime thread); every slow call to a cloud runs on one of these threads, so the number of
//! concurrent cloud calls is the configured worker count and a slow cloud cannot exhaust the
//! server. The crate knows nothing about OSB: a job is any `J`, run by one handler function.
//!
//! # Guarantees
//! - The queue is bounded: a full queue answers [`SubmitError::Full`] with the job handed back,
//!   so the caller decides (the controller keeps it pending in its store and retries).
//! - A panicking job is caught; the worker survives and the panic is counted.
//! - [`Dispatcher::shutdown`] stops accepting, lets each worker finish the job it is running,
//!   and hands back every job still queued, so nothing is silently dropped.

#![warn(missing_docs)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TrySendError};

/// Why a job was not accepted; the job comes back so it is never lost.
#[derive(Debug)]
pub enum SubmitError<J> {
    /// The queue is at capacity: back-pressure.
    Full(J),
    /// The dispatcher is shutting down.
    ShutDown(J),
}

impl<J> SubmitError<J> {
    /// The job that was not accepted.
    pub fn into_job(self) -> J {
        match self {
            SubmitError::Full(job) | SubmitError::ShutDown(job) => job,
        }
    }
}

/// Counters shared between the dispatcher and its workers.
#[derive(Debug, Default)]
struct Counters {
    /// Workers currently running a job.
    busy: AtomicUsize,
    /// Jobs that finished (including those that panicked).
    completed: AtomicU64,
    /// Jobs that panicked.
    panicked: AtomicU64,
    /// Submissions refused because the queue was full.
    rejected: AtomicU64,
    /// Set by shutdown: workers hand back what they receive instead of running it.
    stopping: AtomicBool,
}

/// A snapshot of the dispatcher's load, for logs, metrics and readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Jobs waiting in the queue.
    pub queue_depth: usize,
    /// Queue capacity.
    pub capacity: usize,
    /// Number of worker threads.
    pub workers: usize,
    /// Workers running a job right now.
    pub busy_workers: usize,
    /// Jobs finished since start.
    pub completed: u64,
    /// Jobs that panicked since start.
    pub panicked: u64,
    /// Submissions refused for a full queue since start.
    pub rejected: u64,
}

/// A fixed pool of worker threads behind a bounded queue.
pub struct Dispatcher<J: Send + 'static> {
    // Field order matters: the sender must be dropped (closing the channel) before the
    // join handles are joined, or idle workers would wait in `recv` forever.
    /// The producing side; `None` once shut down.
    sender: Mutex<Option<Sender<J>>>,
    /// A receiver kept to drain what is left at shutdown.
    receiver: Receiver<J>,
    /// Jobs workers received after shutdown began, to hand back.
    handed_back: Arc<Mutex<Vec<J>>>,
    /// Shared counters.
    counters: Arc<Counters>,
    /// Capacity of the queue.
    capacity: usize,
    /// The worker threads.
    workers: Mutex<Vec<JoinHandle<()>>>,
    /// Number of workers started.
    worker_count: usize,
}

impl<J: Send + 'static> std::fmt::Debug for Dispatcher<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("stats", &self.stats())
            .finish()
    }
}

impl<J: Send + 'static> Dispatcher<J> {
    /// Starts `workers` threads named `{name}-{index}` that run `handler` on each job.
    ///
    /// # Panics
    /// If `workers` or `capacity` is zero, or a thread cannot be spawned.
    pub fn start<F>(name: &str, workers: usize, capacity: usize, handler: F) -> Self
    where
        F: Fn(J) + Send + Sync + 'static,
    {
        assert!(
            workers > 0 && capacity > 0,
            "a dispatcher needs workers and room"
        );
        let (sender, receiver) = crossbeam_channel::bounded::<J>(capacity);
        let handler = Arc::new(handler);
        let counters = Arc::new(Counters::default());
        let handed_back = Arc::new(Mutex::new(Vec::new()));
        let handles = (0..workers)
            .map(|index| {
                let receiver = receiver.clone();
                let handler = Arc::clone(&handler);
                let counters = Arc::clone(&counters);
                let handed_back = Arc::clone(&handed_back);
                std::thread::Builder::new()
                    .name(format!("{name}-{index}"))
                    .spawn(move || work(receiver, &*handler, &counters, &handed_back))
                    .expect("spawn a worker thread")
            })
            .collect();
        Dispatcher {
            sender: Mutex::new(Some(sender)),
            receiver,
            handed_back,
            counters,
            capacity,
            workers: Mutex::new(handles),
            worker_count: workers,
        }
    }

    /// Queues a job without blocking.
    pub fn try_submit(&self, job: J) -> Result<(), SubmitError<J>> {
        let sender = self.sender.lock().unwrap_or_else(|e| e.into_inner());
        let Some(sender) = sender.as_ref() else {
            return Err(SubmitError::ShutDown(job));
        };
        match sender.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(job)) => {
                self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                Err(SubmitError::Full(job))
            }
            Err(TrySendError::Disconnected(job)) => Err(SubmitError::ShutDown(job)),
        }
    }

    /// Whether the queue is at capacity right now (a submit would be refused unless a worker
    /// takes a job first): lets a producer with many jobs stop early.
    pub fn is_full(&self) -> bool {
        self.receiver.is_full()
    }

    /// How many jobs the queue takes right now before it is full: lets a producer with many
    /// jobs prepare a batch that fits and hand it over at once.
    pub fn room(&self) -> usize {
        self.capacity.saturating_sub(self.receiver.len())
    }

    /// The queue's capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The current load.
    pub fn stats(&self) -> Stats {
        Stats {
            queue_depth: self.receiver.len(),
            capacity: self.capacity,
            workers: self.worker_count,
            busy_workers: self.counters.busy.load(Ordering::Relaxed),
            completed: self.counters.completed.load(Ordering::Relaxed),
            panicked: self.counters.panicked.load(Ordering::Relaxed),
            rejected: self.counters.rejected.load(Ordering::Relaxed),
        }
    }

    /// Whether the pool accepts and runs jobs: not shut down, and its threads alive (the
    /// readiness probe asks; a worker never dies of a job, so a dead one means a bug).
    pub fn is_running(&self) -> bool {
        if self.counters.stopping.load(Ordering::SeqCst) {
            return false;
        }
        let workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        !workers.is_empty() && workers.iter().all(|worker| !worker.is_finished())
    }

    /// Stops accepting jobs, waits for every worker to finish the job it is running, and
    /// returns the jobs that were queued but never started.
    ///
    /// Blocks the calling thread: call it from outside the async runtime (or from
    /// `spawn_blocking`). Calling it twice returns nothing the second time.
    pub fn shutdown(&self) -> Vec<J> {
        self.counters.stopping.store(true, Ordering::SeqCst);
        // Dropping the sender closes the channel, so idle workers wake up and exit.
        drop(self.sender.lock().unwrap_or_else(|e| e.into_inner()).take());
        let handles = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|e| e.into_inner()));
        for handle in handles {
            // A worker never panics (jobs are caught), so a join error is not expected;
            // there is nothing more to clean up if one does.
            let _ = handle.join();
        }
        let mut rest =
            std::mem::take(&mut *self.handed_back.lock().unwrap_or_else(|e| e.into_inner()));
        rest.extend(self.receiver.try_iter());
        rest
    }
}

/// A worker's loop: run jobs until the channel closes or shutdown begins.
fn work<J, F: Fn(J) + ?Sized>(
    receiver: Receiver<J>,
    handler: &F,
    counters: &Counters,
    handed_back: &Mutex<Vec<J>>,
) {
    for job in receiver.iter() {
        if counters.stopping.load(Ordering::SeqCst) {
            handed_back
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(job);
            continue;
        }
        counters.busy.fetch_add(1, Ordering::Relaxed);
        // AssertUnwindSafe: the handler owns the job and shares nothing with this loop
        // except the counters, which are atomics and stay consistent across a panic.
        if catch_unwind(AssertUnwindSafe(|| handler(job))).is_err() {
            counters.panicked.fetch_add(1, Ordering::Relaxed);
            log::error!(
                "a job panicked on {}; the worker carries on",
                std::thread::current().name().unwrap_or("worker")
            );
        }
        counters.busy.fetch_sub(1, Ordering::Relaxed);
        counters.completed.fetch_add(1, Ordering::Relaxed);
    }
}

impl<J: Send + 'static> Drop for Dispatcher<J> {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// A job that blocks until released, so tests control when workers are busy.
    #[derive(Debug)]
    struct Gate(crossbeam_channel::Receiver<()>);

    fn gated(workers: usize, capacity: usize) -> (Dispatcher<(u32, Gate)>, mpsc::Receiver<u32>) {
        let (done_tx, done_rx) = mpsc::channel();
        let done_tx = Mutex::new(done_tx);
        let dispatcher =
            Dispatcher::start("test", workers, capacity, move |(n, gate): (u32, Gate)| {
                let _ = gate.0.recv();
                done_tx.lock().unwrap().send(n).unwrap();
            });
        (dispatcher, done_rx)
    }

    fn wait_until(mut condition: impl FnMut() -> bool) {
        for _ in 0..500 {
            if condition() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("condition not reached in 5 s");
    }

    #[test]
    fn capacity_is_bounded_and_full_hands_the_job_back() {
        let (dispatcher, _done) = gated(1, 2);
        let (release, gate) = crossbeam_channel::unbounded();
        dispatcher.try_submit((0, Gate(gate.clone()))).unwrap();
        wait_until(|| dispatcher.stats().busy_workers == 1);
        assert_eq!(dispatcher.room(), 2, "a running job leaves the queue");
        dispatcher.try_submit((1, Gate(gate.clone()))).unwrap();
        assert_eq!(dispatcher.room(), 1);
        dispatcher.try_submit((2, Gate(gate.clone()))).unwrap();
        assert_eq!(dispatcher.room(), 0);
        match dispatcher.try_submit((3, Gate(gate.clone()))) {
            Err(SubmitError::Full((3, _))) => {}
            other => panic!(
                "expected Full(3), got {:?}",
                other.map_err(|e| e.into_job().0)
            ),
        }
        let stats = dispatcher.stats();
        assert_eq!(
            (stats.queue_depth, stats.capacity, stats.rejected),
            (2, 2, 1)
        );
        for _ in 0..3 {
            release.send(()).unwrap();
        }
        wait_until(|| dispatcher.stats().completed == 3);
    }

    #[test]
    fn back_pressure_releases_as_workers_finish() {
        let (dispatcher, done) = gated(2, 1);
        let (release, gate) = crossbeam_channel::unbounded();
        let mut accepted = 0;
        let mut refused = 0;
        for n in 0..10 {
            match dispatcher.try_submit((n, Gate(gate.clone()))) {
                Ok(()) => accepted += 1,
                Err(SubmitError::Full(_)) => refused += 1,
                Err(SubmitError::ShutDown(_)) => unreachable!(),
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // Two running plus one queued.
        assert_eq!((accepted, refused), (3, 7));
        assert!(dispatcher.is_full());
        release.send(()).unwrap();
        done.recv_timeout(Duration::from_secs(5)).unwrap();
        wait_until(|| !dispatcher.is_full());
        wait_until(|| dispatcher.try_submit((99, Gate(gate.clone()))).is_ok());
        drop(release);
    }

    #[test]
    fn shutdown_finishes_running_jobs_and_hands_back_queued_ones() {
        let (dispatcher, done) = gated(2, 8);
        let (release, gate) = crossbeam_channel::unbounded();
        for n in 0..6 {
            dispatcher.try_submit((n, Gate(gate.clone()))).unwrap();
        }
        wait_until(|| dispatcher.stats().busy_workers == 2);
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(release); // lets the two running jobs finish
        });
        assert!(dispatcher.is_running());
        let handed_back: Vec<u32> = dispatcher.shutdown().into_iter().map(|(n, _)| n).collect();
        assert!(!dispatcher.is_running(), "a stopped pool is not running");
        releaser.join().unwrap();
        let finished: Vec<u32> = done.try_iter().collect();
        assert_eq!(finished.len(), 2, "the running jobs finish");
        assert_eq!(
            handed_back.len(),
            4,
            "queued jobs come back: {handed_back:?}"
        );
        let mut all: Vec<u32> = finished.into_iter().chain(handed_back).collect();
        all.sort();
        assert_eq!(all, [0, 1, 2, 3, 4, 5], "no job is lost or run twice");
        assert!(matches!(
            dispatcher.try_submit((7, Gate(gate))),
            Err(SubmitError::ShutDown(_))
        ));
    }

    #[test]
    fn a_panicking_job_does_not_kill_its_worker() {
        let (done_tx, done_rx) = mpsc::channel();
        let done_tx = Mutex::new(done_tx);
        let dispatcher = Dispatcher::start("panic", 1, 4, move |n: u32| {
            if n == 0 {
                panic!("job 0 panics on purpose");
            }
            done_tx.lock().unwrap().send(n).unwrap();
        });
        dispatcher.try_submit(0).unwrap();
        dispatcher.try_submit(1).unwrap();
        dispatcher.try_submit(2).unwrap();
        let got: Vec<u32> = (0..2)
            .map(|_| done_rx.recv_timeout(Duration::from_secs(5)).unwrap())
            .collect();
        assert_eq!(got, [1, 2], "the single worker survived the panic");
        assert_eq!(dispatcher.stats().panicked, 1);
    }

    #[test]
    fn workers_are_named() {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let dispatcher = Dispatcher::start("osb-worker", 1, 1, move |(): ()| {
            let name = std::thread::current().name().map(str::to_owned);
            tx.lock().unwrap().send(name).unwrap();
        });
        dispatcher.try_submit(()).unwrap();
        let name = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(name.as_deref(), Some("osb-worker-0"));
    }
}
