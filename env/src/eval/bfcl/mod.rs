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
pub mod score;
pub mod value;

pub use checker::{ast_check, Language, Verdict};
pub use decode::{decode_calls, decode_tool_calls};
pub use score::{aggregates, prompt_functions, score_entry};
