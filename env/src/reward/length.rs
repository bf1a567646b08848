//! The length reward: longer reasoning earns more, up to a cap of think words.

use super::py::{py_round2, py_word_count};
use super::range::Range;

/// The think text the reference measures: after the *last* `<think>`, up to the next `</think>`
/// (or the end); `None` unless both tags occur somewhere in the text.
pub fn think_text(text: &str) -> Option<&str> {
    if !text.contains("</think>") {
        return None;
    }
    let after = &text[text.rfind("<think>")? + "<think>".len()..];
    Some(after.find("</think>").map_or(after, |end| &after[..end]))
}

/// `min(1, round(words / cap, 2))` on the range; `lo` without both think tags.
pub fn length_reward(text: &str, cap: f64, r: Range) -> f64 {
    let Some(think) = think_text(text) else {
        return r.lo;
    };
    let mut fraction = py_round2(py_word_count(think) as f64 / cap);
    if fraction > 1.0 {
        fraction = 1.0;
    }
    fraction * (r.hi - r.lo) + r.lo
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: Range = Range::new(0.0, 1.0);

    #[test]
    fn measures_the_last_think() {
        assert_eq!(
            think_text("<think>a</think><think> b c </think>"),
            Some(" b c ")
        );
        assert_eq!(think_text("</think><think> open"), Some(" open"));
        assert_eq!(think_text("<think> open"), None);
        assert_eq!(length_reward("<think> a b c </think>", 512.0, R), 0.01);
        assert_eq!(
            length_reward(&format!("<think>{}</think>", "w ".repeat(64)), 512.0, R),
            0.12
        );
        assert_eq!(
            length_reward(&format!("<think>{}</think>", "w ".repeat(900)), 512.0, R),
            1.0
        );
        assert_eq!(length_reward("no tags", 512.0, R), 0.0);
    }
}
