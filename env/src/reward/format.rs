//! The format reward: does the completion have the shape the ground truth has?
//!
//! The reference uses `re.search(r"^<think>.*?</think>\n…$", text, re.DOTALL)`. Every pattern is a
//! run of literals joined by `.*?`, anchored at both ends, so it matches iff the text starts with the
//! first literal, the middle literals occur in order after it (the leftmost occurrence of each is
//! always a safe choice) and the last literal ends where `$` may match. Checking that directly is
//! exact and needs no regex engine.
//!
//! Python's `$` without `re.MULTILINE` matches at the very end *or just before a final `\n`*; we
//! keep that, so `"<think>…</think>\n"` passes `^<think>.*?</think>$` as it does in the reference.

use super::range::Range;

/// Which parts the ground truth's completion has, hence which shape the format reward expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `<think>` then `<response>`.
    Response,
    /// `<think>` then a `<tool_call>` block.
    ToolCall,
    /// `<think>`, a `<tool_call>` block, then `<response>`.
    ToolCallAndResponse,
    /// `<think>` only.
    ThinkOnly,
}

impl Shape {
    /// The shape a ground truth asks for: does it contain `<tool_call>`, `<response>`, both?
    pub fn of_ground_truth(ground_truth: &str) -> Self {
        Self::from_flags(
            ground_truth.contains("<tool_call>"),
            ground_truth.contains("<response>"),
        )
    }

    /// The shape for a ground truth with (or without) a tool call and a response.
    pub fn from_flags(tool_call: bool, response: bool) -> Self {
        match (tool_call, response) {
            (false, true) => Self::Response,
            (true, false) => Self::ToolCall,
            (true, true) => Self::ToolCallAndResponse,
            (false, false) => Self::ThinkOnly,
        }
    }

    /// The literals of the whole-text pattern, in order (each pair joined by `.*?`).
    fn literals(self) -> &'static [&'static str] {
        match self {
            Self::Response => &["<think>", "</think>\n<response>", "</response>"],
            Self::ToolCall => &["<think>", "</think>\n<tool_call>\n", "\n</tool_call>"],
            Self::ToolCallAndResponse => &[
                "<think>",
                "</think>\n<tool_call>\n",
                "\n</tool_call>\n<response>",
                "</response>",
            ],
            Self::ThinkOnly => &["<think>", "</think>"],
        }
    }

    /// Tags that must occur exactly once in the text.
    fn unique_tags(self) -> &'static [&'static str] {
        match self {
            Self::Response => &["<response>", "</response>"],
            Self::ToolCall => &["<tool_call>", "</tool_call>"],
            Self::ToolCallAndResponse => {
                &["<tool_call>", "</tool_call>", "<response>", "</response>"]
            }
            Self::ThinkOnly => &[],
        }
    }

    /// Whether `text` has this shape: the anchored pattern matches and each tag that must be
    /// unique occurs exactly once.
    pub fn accepts(self, text: &str) -> bool {
        anchored_match(text, self.literals())
            && self
                .unique_tags()
                .iter()
                .all(|tag| text.matches(tag).take(2).count() == 1)
    }
}

/// Whether `^L0.*?L1.*?….*?Ln$` (with `.` matching newlines, Python's `$`) matches `text`.
fn anchored_match(text: &str, literals: &[&str]) -> bool {
    let Some((first, rest)) = literals.split_first() else {
        return text.is_empty();
    };
    let Some(mut tail) = text.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return tail.is_empty() || tail == "\n";
    };
    for lit in middle {
        match tail.find(lit) {
            Some(at) => tail = &tail[at + lit.len()..],
            None => return false,
        }
    }
    tail.ends_with(last) || tail.strip_suffix('\n').is_some_and(|t| t.ends_with(last))
}

/// `hi` if `text` has the shape, else `lo`.
pub fn format_reward(text: &str, shape: Shape, range: Range) -> f64 {
    if shape.accepts(text) {
        range.hi
    } else {
        range.lo
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_call_shape() {
        let s = Shape::ToolCall;
        assert!(s.accepts("<think> a </think>\n<tool_call>\n{}\n</tool_call>"));
        // The middle `.*?` may be empty, but the two newlines around it are distinct.
        assert!(s.accepts("<think></think>\n<tool_call>\n\n</tool_call>"));
        assert!(!s.accepts("<think></think>\n<tool_call>\n</tool_call>"));
        assert!(!s.accepts("<think> a </think><tool_call>\n{}\n</tool_call>"));
        assert!(!s.accepts("x<think> a </think>\n<tool_call>\n{}\n</tool_call>"));
        // `.*?` spans anything, a second </think> included.
        assert!(s.accepts("<think> a </think> b </think>\n<tool_call>\n{}\n</tool_call>"));
        // Python's `$` also matches before a final newline.
        assert!(s.accepts("<think> a </think>\n<tool_call>\n{}\n</tool_call>\n"));
        assert!(!s.accepts("<think> a </think>\n<tool_call>\n{}\n</tool_call>\n\n"));
        // Two blocks: the pattern matches, the uniqueness check does not.
        assert!(!s.accepts(
            "<think> a </think>\n<tool_call>\n{}\n</tool_call>\n<tool_call>\n{}\n</tool_call>"
        ));
    }

    #[test]
    fn other_shapes() {
        assert!(Shape::ThinkOnly.accepts("<think>only</think>"));
        assert!(Shape::ThinkOnly.accepts("<think></think>"));
        assert!(!Shape::ThinkOnly.accepts("<think>"));
        assert!(!Shape::ThinkOnly.accepts("<think></think> x"));
        assert!(Shape::Response.accepts("<think> a </think>\n<response> b </response>"));
        assert!(!Shape::Response.accepts("<think> a </think>\n<response> b"));
        let both = "<think> a </think>\n<tool_call>\n{}\n</tool_call>\n<response> b </response>";
        assert!(Shape::ToolCallAndResponse.accepts(both));
        assert!(!Shape::ToolCall.accepts(both));
        assert_eq!(Shape::of_ground_truth("<response>"), Shape::Response);
        assert_eq!(Shape::of_ground_truth("x"), Shape::ThinkOnly);
    }
}
