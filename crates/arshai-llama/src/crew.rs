//! Threads that share the matrix products and the attention of one forward pass.
//!
//! A forward pass with more than one thread starts its helpers (scoped threads, joined
//! when the pass ends) and publishes each product, and each layer's attention, as a
//! [`Product`]: weight rows (or a row's key/value head group) cut in chunks that every
//! thread, the calling one included, claims from one atomic counter.
//! Nothing is assigned to a thread in advance, so a helper that the OS has not scheduled
//! (the cores busy with other work) costs nothing but its absence: the calling thread
//! takes the chunks it leaves, and a pass is never slower than on one thread by more than
//! the chunk a descheduled helper holds.
//!
//! Between products a helper spins for at most [`SPIN`] (the gaps inside a pass are a few
//! microseconds; a futex wake-up would cost as much as a small product), then sleeps on a
//! condition variable until the next product or the end of the pass. The calling thread
//! waits for claimed chunks the same way, spinning briefly and then yielding its core.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use super::kernels::{Heads, Kernels, TILE_ROWS};
use super::quant::{Activations, QMatrix};

/// How long an idle thread spins before it sleeps or yields.
const SPIN: Duration = Duration::from_micros(50);
/// Chunks per thread in a product (more chunks balance better when a thread is slow).
const CHUNKS_PER_THREAD: usize = 4;

/// What the threads of one forward pass share.
pub(crate) struct Crew<'w> {
    kernels: Kernels,
    threads: usize,
    board: Mutex<Board<'w>>,
    posted: Condvar,
    /// Products published so far (read without the lock while spinning).
    epoch: AtomicU64,
}

struct Board<'w> {
    current: Option<Arc<Product<'w>>>,
    finished: bool,
    sleeping: usize,
}

/// One piece of shared work in progress: a product or a layer's attention.
struct Product<'w> {
    work: Work<'w>,
    chunks: usize,
    claimed: AtomicUsize,
    done: AtomicUsize,
    /// The result, row-major; each chunk writes its part.
    out: Mutex<Vec<f32>>,
}

enum Work<'w> {
    /// `x · weightsᵀ` (`x.rows() × weights.rows`), a chunk being `chunk_rows` weight rows.
    Matmul {
        weights: &'w QMatrix,
        x: Activations,
        chunk_rows: usize,
    },
    /// Each row's attention (`rows × hidden`), a chunk being one row. In a lock only so the
    /// caller can take its buffers back once every chunk is done (the helpers only read).
    Attention(RwLock<Attention>),
}

/// A layer's attention for every row of a pass, owning what it reads while it is shared
/// (the caller moves the buffers in and takes them back).
#[derive(Default)]
pub(crate) struct Attention {
    pub(crate) heads: Option<Heads>,
    /// The rows' Q, K and V (`rows × qkv_dim`; Q first in each row).
    pub(crate) qkv: Vec<f32>,
    pub(crate) qkv_dim: usize,
    /// Each sequence's keys and values at this layer (`positions × kv_dim`).
    pub(crate) caches: Vec<(Vec<f32>, Vec<f32>)>,
    /// Each row's sequence (an index into `caches`) and the positions it sees.
    pub(crate) rows: Vec<(usize, usize)>,
}

impl Attention {
    /// Chunks of the work: each row's heads, one key/value head's group at a time.
    pub(crate) fn parts(&self) -> usize {
        self.rows.len() * self.heads.map_or(0, |heads| heads.n_kv_head)
    }

    /// Row `row`'s attention for every head into `out` (`hidden` values).
    pub(crate) fn row(&self, kernels: Kernels, row: usize, scores: &mut Vec<f32>, out: &mut [f32]) {
        if let Some(heads) = self.heads {
            self.attend(kernels, row, 0..heads.n_head, scores, out);
        }
    }

    /// Part `part` (see [`Attention::parts`]) into `out` (its heads' values); returns where
    /// they go in the `rows × hidden` result.
    fn part(
        &self,
        kernels: Kernels,
        part: usize,
        scores: &mut Vec<f32>,
        out: &mut Vec<f32>,
    ) -> usize {
        let Some(heads) = self.heads else { return 0 };
        let group = heads.n_head / heads.n_kv_head;
        let (row, kv_head) = (part / heads.n_kv_head, part % heads.n_kv_head);
        let only = kv_head * group..(kv_head + 1) * group;
        out.clear();
        out.resize(group * heads.head_dim, 0.0);
        let at = row * heads.n_head * heads.head_dim + only.start * heads.head_dim;
        self.attend(kernels, row, only, scores, out);
        at
    }

    fn attend(
        &self,
        kernels: Kernels,
        row: usize,
        only: Range<usize>,
        scores: &mut Vec<f32>,
        out: &mut [f32],
    ) {
        let Some(heads) = self.heads else { return };
        let hidden = heads.n_head * heads.head_dim;
        let (sequence, positions) = self.rows[row];
        let visible = positions * heads.n_kv_head * heads.head_dim;
        let (keys, values) = &self.caches[sequence];
        kernels.attend(
            heads,
            only,
            &self.qkv[row * self.qkv_dim..row * self.qkv_dim + hidden],
            &keys[..visible],
            &values[..visible],
            scores,
            out,
        );
    }
}

/// A thread's buffers, reused from chunk to chunk.
#[derive(Default)]
struct Scratch {
    values: Vec<f32>,
    scores: Vec<f32>,
}

impl<'w> Crew<'w> {
    /// A crew of `threads` (the calling thread and `threads - 1` helpers that run
    /// [`Crew::help`]).
    pub(crate) fn new(kernels: Kernels, threads: usize) -> Self {
        Self {
            kernels,
            threads,
            board: Mutex::new(Board {
                current: None,
                finished: false,
                sleeping: 0,
            }),
            posted: Condvar::new(),
            epoch: AtomicU64::new(0),
        }
    }

    /// `out = x · weightsᵀ` (as [`Kernels::matmul`]), shared with the helpers. `x` is
    /// consumed (the helpers read it while the caller goes on).
    pub(crate) fn matmul(&self, weights: &'w QMatrix, x: Activations, out: &mut Vec<f32>) {
        let tiles = weights.rows.div_ceil(TILE_ROWS);
        let chunk_tiles = tiles.div_ceil(self.threads * CHUNKS_PER_THREAD).max(1);
        let chunk_rows = chunk_tiles * TILE_ROWS;
        let chunks = weights.rows.div_ceil(chunk_rows);
        let work = Work::Matmul {
            weights,
            x,
            chunk_rows,
        };
        self.share(work, chunks, out);
    }

    /// Every row's attention (as [`Attention::row`], in parts) into `out` (`rows × hidden`),
    /// shared with the helpers; `attention` is handed back as it was.
    pub(crate) fn attend(&self, attention: &mut Attention, out: &mut Vec<f32>) {
        let chunks = attention.parts();
        let work = Work::Attention(RwLock::new(std::mem::take(attention)));
        let product = self.share(work, chunks, out);
        if let Work::Attention(shared) = &product.work {
            // Every chunk is done, so no helper holds a read guard (a helper may still hold
            // the product itself for a moment).
            *attention =
                std::mem::take(&mut *shared.write().unwrap_or_else(PoisonError::into_inner));
        }
    }

    /// Publishes `work`, works on it, waits for every chunk, collects `out` and returns the
    /// finished product.
    fn share(&self, work: Work<'w>, chunks: usize, out: &mut Vec<f32>) -> Arc<Product<'w>> {
        let product = Arc::new(Product {
            work,
            chunks,
            claimed: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            out: Mutex::new(std::mem::take(out)),
        });
        {
            let mut board = self.lock();
            board.current = Some(Arc::clone(&product));
            self.epoch.fetch_add(1, Ordering::Release);
            if board.sleeping > 0 {
                self.posted.notify_all();
            }
        }
        let mut scratch = Scratch::default();
        product.work(self.kernels, &mut scratch);
        let started = Instant::now();
        while product.done.load(Ordering::Acquire) < product.chunks {
            if started.elapsed() < SPIN {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        self.lock().current = None;
        *out = std::mem::take(&mut *lock(&product.out));
        product
    }

    /// A helper's loop: works on each product as it is published, until [`Crew::finish`].
    pub(crate) fn help(&self) {
        let mut seen = 0;
        let mut scratch = Scratch::default();
        while let Some(product) = self.next(&mut seen) {
            product.work(self.kernels, &mut scratch);
        }
    }

    /// Ends the pass: every helper returns from [`Crew::help`].
    pub(crate) fn finish(&self) {
        self.lock().finished = true;
        self.posted.notify_all();
    }

    /// The next product after the `seen`-th, or `None` once the pass is finished.
    fn next(&self, seen: &mut u64) -> Option<Arc<Product<'w>>> {
        loop {
            let started = Instant::now();
            while self.epoch.load(Ordering::Acquire) == *seen && started.elapsed() < SPIN {
                std::hint::spin_loop();
            }
            let mut board = self.lock();
            while !board.finished && self.epoch.load(Ordering::Acquire) == *seen {
                board.sleeping += 1;
                board = self
                    .posted
                    .wait(board)
                    .unwrap_or_else(PoisonError::into_inner);
                board.sleeping -= 1;
            }
            if board.finished {
                return None;
            }
            *seen = self.epoch.load(Ordering::Acquire);
            // `None`: the caller already finished and collected it; wait for the next.
            if let Some(product) = board.current.clone() {
                return Some(product);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Board<'w>> {
        lock(&self.board)
    }
}

impl Product<'_> {
    /// Claims and computes chunks until none is left.
    fn work(&self, kernels: Kernels, scratch: &mut Scratch) {
        loop {
            let chunk = self.claimed.fetch_add(1, Ordering::Relaxed);
            if chunk >= self.chunks {
                return;
            }
            match &self.work {
                Work::Matmul {
                    weights,
                    x,
                    chunk_rows,
                } => {
                    let (n, total) = (x.rows(), weights.rows);
                    let start = chunk * chunk_rows;
                    let rows = start..(start + chunk_rows).min(total);
                    let width = rows.len();
                    let values = &mut scratch.values;
                    values.clear();
                    values.resize(n * width, 0.0);
                    kernels.matmul_rows(weights, rows, x, values);
                    let mut out = lock(&self.out);
                    for (m, part) in values.chunks_exact(width).enumerate() {
                        out[m * total + start..m * total + start + width].copy_from_slice(part);
                    }
                }
                Work::Attention(attention) => {
                    let attention = attention.read().unwrap_or_else(PoisonError::into_inner);
                    let values = &mut scratch.values;
                    let at = attention.part(kernels, chunk, &mut scratch.scores, values);
                    drop(attention);
                    lock(&self.out)[at..at + values.len()].copy_from_slice(values);
                }
            }
            // After the chunk's locks are released: the caller takes the buffers back once
            // every chunk is done.
            self.done.fetch_add(1, Ordering::Release);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
