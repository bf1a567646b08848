//! BFCL, the Berkeley Function Calling Leaderboard, scored as bfcl-eval scores it.
//!
//! - [`value`]: Python's values and operators, which the checker's semantics are written in.
//! - [`convert`]: bfcl-eval's Java and JavaScript literal converters.
//! - [`checker`]: bfcl-eval's AST checker for the single-turn categories.
//! - [`decode`]: the model's calls out of its text (ToolRL's rule) or out of native tool calls.
//! - [`score`]: one entry's verdict by category (AST, relevance, irrelevance), the prompt's
//!   function docs, and BFCL v4's aggregates.

pub mod checker;
pub mod convert;
pub mod decode;
pub mod multi_turn;
pub mod score;
pub mod value;

pub use checker::{ast_check, Language, Verdict};

/// How a BFCL entry's functions reach the model and its calls come back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BfclStyle {
    /// As ToolRL ran BFCL: the docs in the TIR system prompt, the calls read from the text.
    #[default]
    Tir,
    /// Native tool calling: the docs as the request's OpenAI `tools`, the calls from the
    /// response's `tool_calls` (how a vLLM- or SGLang-served model is usually measured).
    Fc,
}

impl std::str::FromStr for BfclStyle {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tir" => Ok(BfclStyle::Tir),
            "fc" => Ok(BfclStyle::Fc),
            other => Err(format!("unknown BFCL style {other:?}: expected tir or fc")),
        }
    }
}
pub use decode::{decode_calls, decode_tool_calls};
pub use score::{aggregates, openai_tools, prompt_functions, score_entry};
