//! Process-wide settings for tensor work: malloc's thresholds on glibc and a fixed thread count.
//!
//! Every candle op allocates its output afresh, and most activations of a training step are
//! 1-100 MB. By default glibc serves blocks that size with `mmap` and hands them back with
//! `munmap` on free, so each op faults its output in page by page: a third of the bench's
//! forward+backward time went to the kernel (55 s of system time in a 2-minute bench). So glibc
//! maps no block at all (`M_MMAP_MAX` 0: every block comes from the heap), never trims the heap,
//! and keeps one arena, which every thread shares (the compute runs on rayon's threads, which
//! would otherwise each get an arena of their own, whose large blocks glibc maps anyway). Freed
//! blocks are reused instead. Raising the mmap threshold to its 32 MiB maximum, as before, still
//! left a micro-batch's 40-100 MB blocks (MLP activations, logits chunks) mapped afresh: 1.3 M
//! page faults per SFT step, 5 GB zeroed; now 0.15 M per step after the first, at the same peak
//! RSS over three SFT steps (8.8 GB), and the whole default run's peak fell from 15.5 to 9.1 GB.
//!
//! candle asks for its thread count on every matmul, and unless `RAYON_NUM_THREADS` is set that
//! means parsing `/proc/cpuinfo` each time (5% of a decoding profile). Pinning the variable to the
//! count candle would pick makes the answer a lookup.
//!
//! Tensor work should run on one of rayon's threads ([`on_compute_pool`]): every parallel op
//! called from elsewhere is queued to the pool while the caller sleeps on a latch, and a decoding
//! step is ~300 such ops (2 context switches each, and a pool thread parked between them).

/// Applies the settings above. Call once, first thing in `main`, before other threads start (it
/// sets an environment variable) and before the big allocations; calling again is harmless.
/// Returns whether the allocator accepted its settings (always false off glibc).
pub fn tune_for_tensors() -> bool {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var(
            "RAYON_NUM_THREADS",
            candle_core::utils::get_num_threads().to_string(),
        );
    }
    tune_malloc()
}

/// Runs `f` on a thread of rayon's global pool, so the parallel ops inside it split their work
/// from there (one thread of the pool is the caller) instead of each waking the pool from
/// outside. Blocks the calling thread until `f` returns.
pub fn on_compute_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}

#[allow(unsafe_code)]
fn tune_malloc() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; glibc takes its arena lock for it,
        // and the values are in the documented ranges.
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX) == 1
                && libc::mallopt(libc::M_ARENA_MAX, 1) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn settings_apply() {
        let accepted = super::tune_for_tensors();
        assert_eq!(accepted, cfg!(all(target_os = "linux", target_env = "gnu")));
        let threads: usize = std::env::var("RAYON_NUM_THREADS").unwrap().parse().unwrap();
        assert!(threads >= 1);
    }
}
