//! A policy that replays canned turns: the way to test rollouts without a model.

use super::{Policy, PolicyError, PolicyTurn, TurnRequest};
use crate::chat::Role;

/// Replays `turns[k]` as the k-th assistant turn of every episode (k = the number of assistant
/// messages already in the conversation), or per-episode scripts with [`ScriptedPolicy::per_episode`].
#[derive(Debug, Clone)]
pub struct ScriptedPolicy {
    scripts: Vec<Vec<String>>,
}

impl ScriptedPolicy {
    /// The same script for every episode.
    pub fn new(turns: Vec<String>) -> Self {
        ScriptedPolicy {
            scripts: vec![turns],
        }
    }

    /// Episode `e` replays `scripts[e % scripts.len()]`.
    pub fn per_episode(scripts: Vec<Vec<String>>) -> Self {
        ScriptedPolicy { scripts }
    }
}

impl Policy for ScriptedPolicy {
    fn name(&self) -> String {
        "scripted".to_string()
    }

    async fn next_turn(&self, request: TurnRequest<'_>) -> Result<PolicyTurn, PolicyError> {
        let turn = request
            .messages
            .iter()
            .filter(|m| m.role == Role::Assistant)
            .count();
        let script = match self.scripts.len() {
            0 => None,
            n => self.scripts.get((request.episode % n as u64) as usize),
        };
        let text = script
            .and_then(|s| s.get(turn))
            .ok_or(PolicyError::Exhausted {
                episode: request.episode,
                turn,
            })?;
        Ok(PolicyTurn {
            text: text.clone(),
            ..PolicyTurn::default()
        })
    }
}
