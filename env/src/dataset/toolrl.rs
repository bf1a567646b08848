//! ToolRL samples: `id`, `system` (instructions and the tool list), `user` (the dialogue so far)
//! and `output` (the expected completion), as in ToolRL's SFT and RL splits. The tools are
//! descriptions only; nothing executes. The expected completion is parsed once at load time, so a
//! ground truth the reward cannot read is a load error naming its line rather than a silent zero.

use super::json::Fields;
use super::DatasetError;
use crate::reward::GroundTruth;

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
    /// The expected completion, parsed for the reward.
    pub ground_truth: GroundTruth,
}

pub(super) fn parse(f: &Fields<'_>) -> Result<ToolRlSample, DatasetError> {
    let id = f.nonblank("id")?;
    let system = f.string("system")?;
    let user = f.string("user")?;
    let output = f.string("output")?;
    let ground_truth = GroundTruth::parse(&output).map_err(|e| f.error("output", e.to_string()))?;
    Ok(ToolRlSample {
        id,
        system,
        user,
        output,
        ground_truth,
    })
}
