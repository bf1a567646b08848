//! Reading an assistant turn into its think text, tool calls and response.
//!
//! The reader is lenient and total: any text gives a [`Turn`], never an error or a panic. What is
//! wrong with the turn as a whole (an unclosed or repeated tag) is listed in [`Turn::issues`]; what
//! is wrong with a call stays beside that call, so the environment can run the good calls and send
//! each error back to the model. How strictly the *reward* judges the format is a separate matter
//! (see [`crate::reward::format`]).

use std::fmt;

use super::call::{parse_call, CallError, ToolCall};

/// A section tag of the TIR format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// `<think>…</think>`.
    Think,
    /// `<tool_call>…</tool_call>`.
    ToolCall,
    /// `<response>…</response>`.
    Response,
    /// `<obs>…</obs>` (written by the environment, not the model).
    Obs,
}

impl Tag {
    /// The tag's name, as written between the angle brackets.
    pub fn name(self) -> &'static str {
        match self {
            Self::Think => "think",
            Self::ToolCall => "tool_call",
            Self::Response => "response",
            Self::Obs => "obs",
        }
    }

    /// `<name>`.
    pub fn open(self) -> &'static str {
        match self {
            Self::Think => "<think>",
            Self::ToolCall => "<tool_call>",
            Self::Response => "<response>",
            Self::Obs => "<obs>",
        }
    }

    /// `</name>`.
    pub fn close(self) -> &'static str {
        match self {
            Self::Think => "</think>",
            Self::ToolCall => "</tool_call>",
            Self::Response => "</response>",
            Self::Obs => "</obs>",
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.open())
    }
}

/// Something wrong with the structure of a turn (as opposed to one of its calls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnIssue {
    /// An opening tag without its closing tag; the section runs to the end of the text.
    Unclosed(Tag),
    /// A second section of the same kind; only the first is read.
    Repeated(Tag),
    /// A closing tag with no opening tag before it.
    Unopened(Tag),
}

impl fmt::Display for TurnIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unclosed(t) => write!(f, "{} is not closed by {}", t.open(), t.close()),
            Self::Repeated(t) => write!(f, "more than one {} section; only the first is read", t),
            Self::Unopened(t) => write!(f, "{} appears without {} before it", t.close(), t.open()),
        }
    }
}

/// One non-blank line of the `<tool_call>` block and what it parsed to.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedCall {
    /// 1-based line of the turn.
    pub line: usize,
    /// The call, or why the line is not one.
    pub result: Result<ToolCall, CallError>,
}

/// An assistant turn, read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Turn {
    /// The reasoning between `<think>` and `</think>`, trimmed.
    pub think: Option<String>,
    /// Each non-blank line of the first `<tool_call>` block; `None` when the turn has no block.
    pub tool_calls: Option<Vec<ParsedCall>>,
    /// The answer between `<response>` and `</response>`, trimmed.
    pub response: Option<String>,
    /// Structural problems, in the order found.
    pub issues: Vec<TurnIssue>,
}

impl Turn {
    /// The well-formed calls, in order.
    pub fn calls(&self) -> impl Iterator<Item = &ToolCall> {
        self.parsed().filter_map(|c| c.result.as_ref().ok())
    }

    /// The lines of the block that are not calls, in order.
    pub fn call_errors(&self) -> impl Iterator<Item = &CallError> {
        self.parsed().filter_map(|c| c.result.as_ref().err())
    }

    fn parsed(&self) -> impl Iterator<Item = &ParsedCall> {
        self.tool_calls.iter().flatten()
    }
}

/// Reads an assistant turn. Never fails; see [`Turn::issues`] and [`Turn::call_errors`].
pub fn parse_turn(text: &str) -> Turn {
    let mut issues = Vec::new();
    let think = section(text, Tag::Think, &mut issues).map(|(_, s)| s.trim().to_owned());
    let tool_calls = section(text, Tag::ToolCall, &mut issues).map(|(at, s)| block(text, at, s));
    let response = section(text, Tag::Response, &mut issues).map(|(_, s)| s.trim().to_owned());
    Turn {
        think,
        tool_calls,
        response,
        issues,
    }
}

/// The content of the first `tag` section and its byte offset, noting structural issues.
fn section<'a>(text: &'a str, tag: Tag, issues: &mut Vec<TurnIssue>) -> Option<(usize, &'a str)> {
    let Some(open_at) = text.find(tag.open()) else {
        if text.contains(tag.close()) {
            issues.push(TurnIssue::Unopened(tag));
        }
        return None;
    };
    if text[..open_at].contains(tag.close()) {
        issues.push(TurnIssue::Unopened(tag));
    }
    let start = open_at + tag.open().len();
    let rest = &text[start..];
    let Some(len) = rest.find(tag.close()) else {
        issues.push(TurnIssue::Unclosed(tag));
        return Some((start, rest));
    };
    if rest[len..].contains(tag.open()) {
        issues.push(TurnIssue::Repeated(tag));
    }
    Some((start, &rest[..len]))
}

/// The calls of a block starting at byte `offset` of `text`.
fn block(text: &str, offset: usize, content: &str) -> Vec<ParsedCall> {
    let first_line = 1 + text[..offset].matches('\n').count();
    let mut calls = Vec::new();
    for (line, raw) in (first_line..).zip(content.split('\n')) {
        let trimmed = raw.trim_start();
        let indent = raw.len() - trimmed.len();
        let trimmed = trimmed.trim_end();
        if !trimmed.is_empty() {
            calls.push(ParsedCall {
                line,
                result: parse_call(trimmed, line, indent),
            });
        }
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_sections() {
        let t = parse_turn(
            "<think> plan </think>\n<tool_call>\n{\"name\": \"f\", \"parameters\": {}}\n\n  {\"name\": 1}\n</tool_call>\n<response> ok </response>",
        );
        assert_eq!(t.think.as_deref(), Some("plan"));
        assert_eq!(t.response.as_deref(), Some("ok"));
        assert!(t.issues.is_empty());
        let calls = t.tool_calls.as_ref().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].line, 3);
        assert_eq!(t.calls().next().unwrap().name, "f");
        assert_eq!(t.call_errors().next().unwrap().line(), 5);
    }

    #[test]
    fn notes_structural_issues() {
        let t = parse_turn("</think> a <think> b\n<tool_call>\n{}\n</tool_call><tool_call>");
        assert_eq!(
            t.issues,
            vec![
                TurnIssue::Unopened(Tag::Think),
                TurnIssue::Unclosed(Tag::Think),
                TurnIssue::Repeated(Tag::ToolCall),
            ]
        );
        assert_eq!(t.response, None);
        assert_eq!(parse_turn("plain words"), Turn::default());
    }
}
