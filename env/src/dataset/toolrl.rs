//! ToolRL samples: `id`, `system` (instructions and the tool list), `user` (the dialogue so far)
//! and `output` (the expected completion), as in ToolRL's SFT and RL splits. The tools are
//! descriptions only; nothing executes. The expected completion is kept as text and parsed on
//! demand ([`ToolRlSample::ground_truth`]), from the answer after the reasoning: some SFT
//! completions mention `<tool_call>` inside their reasoning, which a whole-text reading would
//! take for the call block (ToolRL's RL split keeps its reasoning a placeholder, so there the two
//! readings agree).

use super::json::Fields;
use super::DatasetError;
use crate::reward::{GroundTruth, GroundTruthError};

/// One ToolRL sample.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolRlSample {
    /// Unique id, e.g. `test-0`.
    pub id: String,
    /// The system prompt: instructions and the available tools.
    pub system: String,
    /// The user message: the dialogue history up to the turn to generate.
    pub user: String,
    /// The expected completion, as text.
    pub output: String,
}

impl ToolRlSample {
    /// The expected completion parsed for the reward: the part after the last `</think>` (the
    /// whole text if there is none), so that the reasoning's prose cannot supply the call block
    /// or the expected shape. An error where its `<tool_call>` block has a line that is not JSON.
    pub fn ground_truth(&self) -> Result<GroundTruth, GroundTruthError> {
        GroundTruth::parse(self.answer())
    }

    /// The expected completion after its reasoning (after the last `</think>`), or all of it.
    pub fn answer(&self) -> &str {
        self.output
            .rfind("</think>")
            .map_or(self.output.as_str(), |i| {
                &self.output[i + "</think>".len()..]
            })
    }
}

pub(super) fn parse(f: &Fields<'_>) -> Result<ToolRlSample, DatasetError> {
    let id = f.nonblank("id")?;
    let system = f.string("system")?;
    let user = f.string("user")?;
    let output = f.string("output")?;
    Ok(ToolRlSample {
        id,
        system,
        user,
        output,
    })
}
