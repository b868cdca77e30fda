//! The hashing threads: a fixed set of OS threads, apart from the async
//! runtime, that run password hashes from one bounded queue.
//!
//! - At most `queue_limit` hashes wait; past that a caller is refused at once.
//! - A hash that waited longer than `wait_limit` is not started: its caller
//!   gets [`HashingError::Busy`], so a flood turns into fast 503s rather than
//!   minutes of latency. A hash whose caller has gone is skipped.
//! - Each thread keeps its argon2 working memory ([`Scratch`]) between hashes
//!   and gives it back after [`KEEP_MEMORY_FOR`] without work: allocating and
//!   faulting in ~19 MiB per hash cost about a fifth of a verification. The
//!   memory is wiped when given back: it holds values derived from the last
//!   password hashed.
//! - Dropping the pool stops its threads once the queue is empty.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use argon2::Block;
use tokio::sync::oneshot;
use zeroize::Zeroize;

use super::HashingError;
use crate::metrics::HashTimings;

/// How long an idle hashing thread keeps its working memory.
pub const KEEP_MEMORY_FOR: Duration = Duration::from_secs(2);

/// argon2 working memory owned by one hashing thread.
#[derive(Default)]
pub struct Scratch {
    blocks: Vec<Block>,
}

impl Scratch {
    /// `count` blocks of memory, grown (never shrunk) as needed; their content
    /// is whatever the last hash left, which argon2 overwrites before reading.
    pub fn blocks(&mut self, count: usize) -> Result<&mut [Block], HashingError> {
        if self.blocks.len() < count {
            self.release();
            self.blocks.try_reserve_exact(count).map_err(|_| {
                HashingError::Failed(format!("cannot allocate {count} KiB for argon2"))
            })?;
            self.blocks.resize(count, Block::default());
        }
        Ok(&mut self.blocks[..count])
    }

    fn is_empty(&self) -> bool {
        self.blocks.capacity() == 0
    }

    fn release(&mut self) {
        self.blocks.zeroize();
        self.blocks = Vec::new();
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.blocks.zeroize();
    }
}

/// A queued hash; called with no scratch memory when it waited too long.
type Task = Box<dyn FnOnce(Option<&mut Scratch>) + Send>;

struct Job {
    queued_at: Instant,
    task: Task,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    work_ready: Condvar,
}

impl Shared {
    /// The queue is only touched briefly and never while hashing, so a panic
    /// cannot leave it half-changed: a poisoned lock is still consistent.
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub struct Pool {
    shared: Arc<Shared>,
    queue_limit: usize,
    timings: HashTimings,
}

impl Pool {
    pub fn start(
        threads: usize,
        queue_limit: usize,
        wait_limit: Duration,
    ) -> Result<Self, HashingError> {
        let shared = Arc::new(Shared::default());
        let pool = Self {
            shared: Arc::clone(&shared),
            queue_limit,
            timings: HashTimings::default(),
        };
        for index in 0..threads.max(1) {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("latchkey-hash-{index}"))
                .spawn(move || work(&shared, wait_limit))
                .map_err(|error| {
                    HashingError::Failed(format!("cannot start a hashing thread: {error}"))
                })?;
        }
        Ok(pool)
    }

    /// Records each hash's wait for a thread and its time on it.
    pub fn observe(&mut self, timings: HashTimings) {
        self.timings = timings;
    }

    /// Hashes waiting for a thread now.
    pub fn waiting(&self) -> usize {
        self.shared.lock().jobs.len()
    }

    /// Runs `work` on a hashing thread, inside the caller's tracing span.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Scratch) -> T + Send + 'static,
    ) -> Result<T, HashingError> {
        let (sender, receiver) = oneshot::channel();
        let span = tracing::Span::current();
        let timings = self.timings.clone();
        let queued_at = Instant::now();
        let task: Task = Box::new(move |scratch| {
            if sender.is_closed() {
                return; // the request was abandoned while it waited
            }
            let started = Instant::now();
            timings
                .wait
                .record(started.duration_since(queued_at).as_secs_f64());
            let outcome = match scratch {
                Some(scratch) => {
                    let output = span.in_scope(|| work(scratch));
                    timings.work.record(started.elapsed().as_secs_f64());
                    Ok(output)
                }
                None => Err(HashingError::Busy),
            };
            // The caller may have gone meanwhile; then nobody needs the answer.
            let _ = sender.send(outcome);
        });
        {
            let mut queue = self.shared.lock();
            if queue.jobs.len() >= self.queue_limit {
                return Err(HashingError::Busy);
            }
            queue.jobs.push_back(Job {
                queued_at: Instant::now(),
                task,
            });
        }
        self.shared.work_ready.notify_one();
        receiver
            .await
            .map_err(|_| HashingError::Failed("the hashing task panicked".to_owned()))?
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.work_ready.notify_all();
    }
}

/// One hashing thread: take jobs in order; with none, wait, and give the
/// working memory back after a while without work.
fn work(shared: &Shared, wait_limit: Duration) {
    let mut scratch = Scratch::default();
    let mut queue = shared.lock();
    loop {
        if let Some(job) = queue.jobs.pop_front() {
            drop(queue);
            let fresh = job.queued_at.elapsed() <= wait_limit;
            let task = job.task;
            let outcome =
                std::panic::catch_unwind(AssertUnwindSafe(|| task(fresh.then_some(&mut scratch))));
            if outcome.is_err() {
                scratch.release();
            }
            queue = shared.lock();
        } else if queue.closed {
            return;
        } else if scratch.is_empty() {
            queue = shared
                .work_ready
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
        } else {
            let (next, waited) = shared
                .work_ready
                .wait_timeout(queue, KEEP_MEMORY_FOR)
                .unwrap_or_else(PoisonError::into_inner);
            queue = next;
            if waited.timed_out() && queue.jobs.is_empty() {
                scratch.release();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use tokio::task::JoinHandle;

    use super::*;

    /// Occupies the pool's only thread until the returned sender is dropped.
    async fn occupy(pool: &Arc<Pool>) -> std::sync::mpsc::Sender<()> {
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let (started, running) = oneshot::channel();
        let blocker = Arc::clone(pool);
        tokio::spawn(async move {
            blocker
                .run(move |_| {
                    let _ = started.send(());
                    let _ = hold.recv();
                })
                .await
        });
        running.await.unwrap();
        release
    }

    /// Queues a job that only records that it ran.
    fn queue_recorder(pool: &Arc<Pool>) -> (JoinHandle<Result<(), HashingError>>, Arc<AtomicBool>) {
        let ran = Arc::new(AtomicBool::new(false));
        let (pool, flag) = (Arc::clone(pool), Arc::clone(&ran));
        let job =
            tokio::spawn(
                async move { pool.run(move |_| flag.store(true, Ordering::SeqCst)).await },
            );
        (job, ran)
    }

    #[tokio::test]
    async fn work_runs_on_a_hashing_thread_with_memory() {
        let pool = Pool::start(1, 4, Duration::from_secs(5)).unwrap();
        let (name, blocks) = pool
            .run(|scratch| {
                let blocks = scratch.blocks(8).unwrap().len();
                (std::thread::current().name().map(str::to_owned), blocks)
            })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("latchkey-hash-0"));
        assert_eq!(blocks, 8);
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy_at_once() {
        let pool = Arc::new(Pool::start(1, 1, Duration::from_secs(5)).unwrap());
        let release = occupy(&pool).await;
        let queued = {
            let pool = Arc::clone(&pool);
            tokio::spawn(async move { pool.run(|_| 7).await })
        };
        while pool.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(pool.run(|_| 8).await, Err(HashingError::Busy)));
        drop(release);
        assert_eq!(queued.await.unwrap().unwrap(), 7);
        assert_eq!(pool.waiting(), 0);
    }

    #[tokio::test]
    async fn a_job_that_waited_too_long_is_not_started() {
        let pool = Arc::new(Pool::start(1, 4, Duration::from_millis(20)).unwrap());
        let release = occupy(&pool).await;
        let (late, ran) = queue_recorder(&pool);
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(release);
        assert!(matches!(late.await.unwrap(), Err(HashingError::Busy)));
        assert!(!ran.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_job_whose_caller_has_gone_is_skipped() {
        let pool = Arc::new(Pool::start(1, 4, Duration::from_secs(5)).unwrap());
        let release = occupy(&pool).await;
        let (abandoned, ran) = queue_recorder(&pool);
        while pool.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        abandoned.abort();
        assert!(abandoned.await.unwrap_err().is_cancelled());
        drop(release);
        // Jobs run in order, so the abandoned one has been taken by then.
        assert_eq!(pool.run(|_| 1).await.unwrap(), 1);
        assert!(!ran.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_panicking_job_fails_alone_and_the_thread_goes_on() {
        let pool = Pool::start(1, 4, Duration::from_secs(5)).unwrap();
        let failed = pool.run(|_| -> u8 { panic!("boom") }).await;
        assert!(matches!(failed, Err(HashingError::Failed(_))));
        assert_eq!(pool.run(|_| 3).await.unwrap(), 3);
    }

    #[test]
    fn scratch_memory_grows_and_is_given_back() {
        let mut scratch = Scratch::default();
        assert_eq!(scratch.blocks(16).unwrap().len(), 16);
        assert_eq!(scratch.blocks(4).unwrap().len(), 4);
        assert!(!scratch.is_empty());
        scratch.release();
        assert!(scratch.is_empty());
        assert!(matches!(
            scratch.blocks(usize::MAX / 2048),
            Err(HashingError::Failed(_))
        ));
    }
}
