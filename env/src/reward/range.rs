//! Reward ranges `[lo, hi]` and how the variants move them with the training step.
//!
//! The arithmetic follows the reference operation by operation (same operand order), so the
//! floating-point results are bit-identical to it.

use super::variant::Variant;

/// The lowest and highest value one reward component can take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    /// Value for the worst outcome.
    pub lo: f64,
    /// Value for the best outcome.
    pub hi: f64,
}

impl Range {
    /// `[lo, hi]`.
    pub const fn new(lo: f64, hi: f64) -> Self {
        Self { lo, hi }
    }

    /// Maps a fraction of the best outcome onto the range: `(hi - lo) * score / max + lo`.
    pub fn scale(self, score: f64, max: f64) -> f64 {
        (self.hi - self.lo) * score / max + self.lo
    }
}

/// Base format range of the paper.
pub const FORMAT: Range = Range::new(0.0, 1.0);
/// Base correctness range of the paper.
pub const CORRECTNESS: Range = Range::new(-3.0, 3.0);
/// Correctness range under `equalmax`.
pub const CORRECTNESS_EQUALMAX: Range = Range::new(-1.0, 1.0);
/// Range of the length term.
pub const LENGTH: Range = Range::new(0.0, 1.0);
/// The step at which `twostage` switches.
pub const TWOSTAGE_BOUNDARY: u64 = 30;
/// Steps over which `schedule` moves the ranges (the reference's training length). A trainer
/// that compresses the schedule onto a shorter run maps its steps onto these.
pub const SCHEDULE_STEPS: u64 = 150;

/// The format range at `step`.
pub fn format_range(v: &Variant, step: u64) -> Range {
    let mut r = FORMAT;
    if v.twostage && step >= TWOSTAGE_BOUNDARY {
        r = Range::new(r.lo / 2.0, r.hi / 2.0);
    }
    if v.schedule {
        let s = step as f64;
        let hi = 2.0 - (2.0 - r.hi) * s / SCHEDULE_STEPS as f64;
        let lo = -2.0 + (2.0 + r.lo) * s / SCHEDULE_STEPS as f64;
        r = Range::new(
            if lo > -1.0 { -1.0 } else { lo },
            if hi < 1.0 { 1.0 } else { hi },
        );
    }
    r
}

/// The correctness range at `step`.
pub fn correctness_range(v: &Variant, step: u64) -> Range {
    let mut r = if v.equalmax {
        CORRECTNESS_EQUALMAX
    } else {
        CORRECTNESS
    };
    if v.twostage && step < TWOSTAGE_BOUNDARY {
        r = Range::new(r.lo / 3.0, r.hi / 3.0);
    }
    if v.schedule {
        let s = step as f64;
        let hi = (r.hi - 2.0) * s / SCHEDULE_STEPS as f64 + 2.0;
        let lo = (r.lo + 2.0) * s / SCHEDULE_STEPS as f64 - 2.0;
        r = Range::new(
            if lo < -3.0 { -3.0 } else { lo },
            if hi > 3.0 { 3.0 } else { hi },
        );
    }
    r
}

/// The number of think words that earns the full length reward at `step`.
pub fn length_cap(v: &Variant, step: u64) -> f64 {
    if v.schedlength {
        // Python: (640 - 384) * step / 105 + 384, an exact int product then true division.
        (256.0 * step as f64) / 105.0 + 384.0
    } else {
        512.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_moves_both_ranges() {
        let v = Variant {
            schedule: true,
            ..Variant::default()
        };
        assert_eq!(format_range(&v, 0), Range::new(-2.0, 2.0));
        assert_eq!(format_range(&v, 200), Range::new(-1.0, 1.0));
        assert_eq!(correctness_range(&v, 0), Range::new(-2.0, 2.0));
        assert_eq!(correctness_range(&v, 150), Range::new(-3.0, 3.0));
    }

    #[test]
    fn twostage_switches_at_30() {
        let v = Variant {
            twostage: true,
            ..Variant::default()
        };
        assert_eq!(correctness_range(&v, 29), Range::new(-1.0, 1.0));
        assert_eq!(correctness_range(&v, 30), CORRECTNESS);
        assert_eq!(format_range(&v, 29), FORMAT);
        assert_eq!(format_range(&v, 30), Range::new(0.0, 0.5));
    }
}
