//! Giving the GIL up around a sandbox call and taking it back without a sleep in the kernel.
//!
//! A call holds the GIL for a few microseconds (arguments in, the result out, the caller's own
//! loop) and runs ~10 µs without it. When two threads call at once, one often finishes its tool
//! call while the other holds the GIL; CPython then parks it on a condition variable, and the
//! wake-up costs more than the hold it waited for. So before asking for the GIL back, one caller
//! at a time spins while another caller of ours is known to hold it, and asks once that one has
//! let go — the adaptive spinning of futex locks. Spinning only delays the moment the GIL is
//! asked for, never skips asking, so exclusion is CPython's own; a holder that went on to other
//! Python work is taken as stale after [`MAX_SPIN`] and nobody spins on it any more.

use pyo3::Python;
use std::cell::Cell;
use std::hint::spin_loop;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long after taking the GIL a caller of ours is still expected to let go of it soon: a
/// tight loop of calls holds it for a few µs at a time; a kernel wake-up costs tens.
const MAX_SPIN: Duration = Duration::from_micros(25);

/// When (ns after the first call, plus one) a caller of ours last went to take the GIL back; 0
/// once it has let go again. Set just before asking for the GIL and cleared just after giving it
/// up, so that a spinner never asks while the holder is still on its way out.
static HELD_SINCE: AtomicU64 = AtomicU64::new(0);
/// One spinner at a time: with more calling threads than cores, the others wait in CPython as
/// before instead of taking the cores the holder needs.
static SPINNING: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// The mark this thread's last call set in [`HELD_SINCE`] (0: none).
    static MARK: Cell<u64> = const { Cell::new(0) };
}

fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64 + 1
}

/// Runs `f` without the GIL (as `py.detach`), then takes the GIL back as described above.
pub fn detach<T: Send>(py: Python<'_>, f: impl FnOnce() -> T + Send) -> T {
    let mark = MARK.with(|m| m.replace(0));
    let (out, mark) = py.detach(|| {
        if mark != 0 {
            // Only if nobody has marked since: a mark of another thread's is not ours to clear.
            let _ = HELD_SINCE.compare_exchange(mark, 0, Ordering::Release, Ordering::Relaxed);
        }
        let out = f();
        wait_for_holder();
        let mark = now_ns();
        HELD_SINCE.store(mark, Ordering::Release);
        (out, mark)
    });
    MARK.with(|m| m.set(mark));
    out
}

fn wait_for_holder() {
    if HELD_SINCE.load(Ordering::Acquire) == 0 || SPINNING.swap(true, Ordering::Acquire) {
        return;
    }
    let limit = MAX_SPIN.as_nanos() as u64;
    loop {
        let since = HELD_SINCE.load(Ordering::Acquire);
        if since == 0 || now_ns().saturating_sub(since) > limit {
            break;
        }
        for _ in 0..16 {
            spin_loop();
        }
    }
    SPINNING.store(false, Ordering::Release);
}
