//! Execution-aware rewards for multi-step episodes, beside ToolRL's single-turn rubric.
//!
//! ToolRL scores one turn against a reference turn. An episode that really executes tools can also
//! be judged by its outcome: did the final `<response>` give the expected answer, how many calls
//! ran without error, and how close each turn came to its reference turn. These are pure functions
//! over [`Episode`], each with a stable [`EpisodeReward::name`] to log it under.

use serde_json::Value;

use super::calls::GroundTruth;
use super::py::name_iou;
use super::rubric::Rubric;

/// What happened to one executed tool call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// The tool ran and returned a result.
    Ok,
    /// The call failed: invalid arguments, unknown tool, tool error, trap, limit exceeded.
    Error,
}

/// One line of a turn's `<tool_call>` block, as executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpisodeCall<'a> {
    /// Whether it ran.
    pub outcome: CallOutcome,
    /// The tool it named (`None` for a line that is not a call).
    pub name: Option<&'a str>,
}

/// One assistant turn of an episode.
#[derive(Debug, Clone, Copy)]
pub struct EpisodeTurn<'a> {
    /// The assistant text of the turn.
    pub text: &'a str,
    /// Each tool call line of the turn, in order.
    pub calls: &'a [EpisodeCall<'a>],
}

/// A finished episode.
#[derive(Debug, Clone, Copy)]
pub struct Episode<'a> {
    /// The assistant turns, in order; the last one holds the final answer.
    pub turns: &'a [EpisodeTurn<'a>],
    /// The expected final answer, when the task has one.
    pub expected_answer: Option<&'a str>,
    /// The reference solution's turns: turn `k` of the episode is compared with `reference[k]`
    /// where there is one, and the whole episode with all of them.
    pub reference: &'a [GroundTruth],
    /// The training step (the ToolRL ranges of some variants move with it).
    pub step: u64,
}

impl Episode<'_> {
    /// The content of the first `<response>` of the last turn, trimmed; `None` without one.
    pub fn final_response(&self) -> Option<&str> {
        response_of(self.turns.last()?.text)
    }
}

/// The content of the first `<response>…</response>` in `text`, trimmed (to the end if unclosed).
pub fn response_of(text: &str) -> Option<&str> {
    let start = text.find("<response>")? + "<response>".len();
    let rest = &text[start..];
    Some(
        rest.find("</response>")
            .map_or(rest, |end| &rest[..end])
            .trim(),
    )
}

/// A reward over a whole episode, logged under its name.
///
/// A reward that is a rate (successes over calls, correctness over reference turns) has nothing
/// to measure when its events did not happen: [`EpisodeReward::measure`] is then `None`, and
/// reports show the term as absent, while [`EpisodeReward::score`] still gives the training
/// signal a value (documented per reward).
pub trait EpisodeReward {
    /// The name to log the reward under.
    fn name(&self) -> &'static str;
    /// The reward of `episode` as a training signal: always a number.
    fn score(&self, episode: &Episode<'_>) -> f64;
    /// The reward as a measurement: `None` for a rate over zero events.
    fn measure(&self, episode: &Episode<'_>) -> Option<f64> {
        Some(self.score(episode))
    }
}

/// 1 if the final response equals the expected answer after trimming, else 0 (also 0 without a
/// final response or an expected answer).
#[derive(Debug, Clone, Copy, Default)]
pub struct AnswerExactMatch;

impl EpisodeReward for AnswerExactMatch {
    fn name(&self) -> &'static str {
        "answer_exact_match"
    }

    fn score(&self, episode: &Episode<'_>) -> f64 {
        match (episode.final_response(), episode.expected_answer) {
            (Some(got), Some(want)) => indicator(got == want.trim()),
            _ => 0.0,
        }
    }
}

/// 1 if the final response matches the expected answer after normalisation (see
/// [`answers_match`]), else 0.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnswerNormalizedMatch;

impl EpisodeReward for AnswerNormalizedMatch {
    fn name(&self) -> &'static str {
        "answer_normalized_match"
    }

    fn score(&self, episode: &Episode<'_>) -> f64 {
        match (episode.final_response(), episode.expected_answer) {
            (Some(got), Some(want)) => indicator(answers_match(got, want)),
            _ => 0.0,
        }
    }
}

/// The fraction of the episode's tool calls that executed without error. With no call it
/// measures nothing (`None`); as a training score it is then 1 (no call failed), so that
/// answering directly is not penalised by this term.
#[derive(Debug, Clone, Copy, Default)]
pub struct ToolSuccessRate;

impl EpisodeReward for ToolSuccessRate {
    fn name(&self) -> &'static str {
        "tool_success_rate"
    }

    fn score(&self, episode: &Episode<'_>) -> f64 {
        self.measure(episode).unwrap_or(1.0)
    }

    fn measure(&self, episode: &Episode<'_>) -> Option<f64> {
        let outcomes = episode.turns.iter().flat_map(|t| t.calls);
        let (ok, all) = outcomes.fold((0usize, 0usize), |(ok, all), o| {
            (ok + usize::from(o.outcome == CallOutcome::Ok), all + 1)
        });
        (all > 0).then(|| ok as f64 / all as f64)
    }
}

/// ToolRL correctness of each turn that has a reference turn, averaged over those turns. With
/// none it measures nothing (`None`) and scores 0.
#[derive(Debug, Clone, Default)]
pub struct MeanTurnCorrectness {
    /// The rubric whose correctness term is averaged.
    pub rubric: Rubric,
}

impl EpisodeReward for MeanTurnCorrectness {
    fn name(&self) -> &'static str {
        "mean_turn_correctness"
    }

    fn score(&self, episode: &Episode<'_>) -> f64 {
        self.measure(episode).unwrap_or(0.0)
    }

    fn measure(&self, episode: &Episode<'_>) -> Option<f64> {
        let scores: Vec<f64> = episode
            .turns
            .iter()
            .zip(episode.reference)
            .map(|(t, truth)| self.rubric.correctness(t.text, truth, episode.step))
            .collect();
        (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64)
    }
}

/// The fraction of turns written in one of the TIR shapes (`<think>` then `<tool_call>`,
/// `<response>` or both, as the format reward's patterns define them). With no turn it
/// measures nothing and scores 0. The format signal of a multi-turn episode, where each turn
/// may call tools or answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct MeanTurnFormat;

impl EpisodeReward for MeanTurnFormat {
    fn name(&self) -> &'static str {
        "mean_turn_format"
    }

    fn score(&self, episode: &Episode<'_>) -> f64 {
        self.measure(episode).unwrap_or(0.0)
    }

    fn measure(&self, episode: &Episode<'_>) -> Option<f64> {
        use super::format::Shape;
        if episode.turns.is_empty() {
            return None;
        }
        let shapes = [Shape::ToolCall, Shape::Response, Shape::ToolCallAndResponse];
        let good = episode
            .turns
            .iter()
            .filter(|t| shapes.iter().any(|s| s.accepts(t.text)))
            .count();
        Some(good as f64 / episode.turns.len() as f64)
    }
}

/// ToolRL's tool-name term (r_name: the multiset IoU of the names called and the names
/// expected) taken over the whole episode: every call line of every turn against every call of
/// the reference solution, turn boundaries ignored. A line that is not a call counts as a name
/// that matches nothing. Without a reference it measures nothing and scores 0.
///
/// Why an episode term: an outcome reward gives a group whose episodes all answer wrongly no
/// signal, and a task that needs two tools (search, then convert) is mostly answered wrongly
/// after the first; this term still tells the episode that made the second call from the one
/// that answered before it, and it cannot be raised by calling more than the task needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct ToolNameMatch;

impl EpisodeReward for ToolNameMatch {
    fn name(&self) -> &'static str {
        "tool_name_match"
    }

    fn score(&self, episode: &Episode<'_>) -> f64 {
        self.measure(episode).unwrap_or(0.0)
    }

    fn measure(&self, episode: &Episode<'_>) -> Option<f64> {
        if episode.reference.is_empty() {
            return None;
        }
        let expected: Vec<Value> = episode
            .reference
            .iter()
            .flat_map(|g| g.calls.iter().flatten())
            .filter_map(|c| c.get("name").filter(|n| n.is_string()).cloned())
            .collect();
        // Null for a line that is not a call: the expected names are all strings.
        let made: Vec<Value> = episode
            .turns
            .iter()
            .flat_map(|t| t.calls)
            .map(|c| c.name.map_or(Value::Null, |n| Value::String(n.to_string())))
            .collect();
        let expected: Vec<&Value> = expected.iter().collect();
        let made: Vec<&Value> = made.iter().collect();
        // Strings and nulls only, so Python's Counter cannot raise here.
        name_iou(&expected, &made, false).ok()
    }
}

fn indicator(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// Relative tolerance for numeric answers.
const NUMERIC_TOLERANCE: f64 = 1e-6;

/// Whether two answers agree: as numbers within a relative tolerance of 1e-6 when both read as
/// numbers (thousands separators and a trailing period allowed), else as text after
/// [`normalize_answer`].
pub fn answers_match(got: &str, want: &str) -> bool {
    if let (Some(a), Some(b)) = (as_number(got), as_number(want)) {
        return (a - b).abs() <= NUMERIC_TOLERANCE * a.abs().max(b.abs()).max(1.0);
    }
    normalize_answer(got) == normalize_answer(want)
}

fn as_number(s: &str) -> Option<f64> {
    let s = s.trim().trim_end_matches('.').replace(',', "");
    s.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// The usual answer normalisation (SQuAD's): lower case, punctuation removed, the articles
/// "a", "an", "the" dropped, white space collapsed to single spaces.
pub fn normalize_answer(s: &str) -> String {
    let lowered: String = s
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_punctuation() { ' ' } else { c })
        .collect();
    lowered
        .split_whitespace()
        .filter(|w| !matches!(*w, "a" | "an" | "the"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        assert!(answers_match("The Eiffel Tower!", "eiffel  tower"));
        assert!(answers_match("1,000", "1000.0"));
        assert!(answers_match("3.1415927", "3.14159265"));
        assert!(!answers_match("3.14", "3.15"));
        assert!(!answers_match("Paris", "London"));
        assert_eq!(normalize_answer("  A cat's  toy. "), "cat s toy");
    }

    #[test]
    fn episode_rewards() {
        let truth = GroundTruth::parse(
            "<think></think>\n<tool_call>\n{\"name\": \"f\", \"parameters\": {}}\n</tool_call>",
        )
        .unwrap();
        let turns = [
            EpisodeTurn {
                text: "<think></think>\n<tool_call>\n{\"name\": \"f\", \"parameters\": {}}\n</tool_call>",
                calls: &[
                    EpisodeCall {
                        outcome: CallOutcome::Ok,
                        name: Some("f"),
                    },
                    EpisodeCall {
                        outcome: CallOutcome::Error,
                        name: None,
                    },
                ],
            },
            EpisodeTurn {
                text: "<think></think>\n<tool_call>\n{\"name\": \"g\"}\n</tool_call>",
                calls: &[EpisodeCall {
                    outcome: CallOutcome::Ok,
                    name: Some("g"),
                }],
            },
            EpisodeTurn {
                text: "<think> done </think>\n<response> The answer is 42 </response>",
                calls: &[],
            },
        ];
        let reference = [truth.clone(), truth.clone()];
        let episode = Episode {
            turns: &turns,
            expected_answer: Some("the answer is 42."),
            reference: &reference,
            step: 0,
        };
        assert_eq!(episode.final_response(), Some("The answer is 42"));
        assert_eq!(AnswerExactMatch.score(&episode), 0.0);
        assert_eq!(AnswerNormalizedMatch.score(&episode), 1.0);
        assert_eq!(ToolSuccessRate.score(&episode), 2.0 / 3.0);
        // Turn 1 exact (3), turn 2 wrong name (names 0, M 2 → -3).
        assert_eq!(MeanTurnCorrectness::default().score(&episode), 0.0);
        assert_eq!(
            MeanTurnCorrectness::default().name(),
            "mean_turn_correctness"
        );
        // Made f, (not a call), g against f, f: one f in common over four names.
        assert_eq!(ToolNameMatch.score(&episode), 0.25);
    }

    #[test]
    fn tool_names_over_the_episode() {
        let search = GroundTruth::parse(
            "<tool_call>\n{\"name\": \"search\", \"parameters\": {}}\n</tool_call>",
        )
        .unwrap();
        let convert = GroundTruth::parse(
            "<tool_call>\n{\"name\": \"unit_convert\", \"parameters\": {}}\n</tool_call>",
        )
        .unwrap();
        let reference = [search, convert];
        // An episode by the tools each turn called.
        let score = |called: &[&[&'static str]], reference: &[GroundTruth]| {
            let calls: Vec<Vec<EpisodeCall<'_>>> = called
                .iter()
                .map(|names| {
                    names
                        .iter()
                        .map(|n| EpisodeCall {
                            outcome: CallOutcome::Ok,
                            name: Some(n),
                        })
                        .collect()
                })
                .collect();
            let turns: Vec<EpisodeTurn<'_>> = calls
                .iter()
                .map(|calls| EpisodeTurn { text: "", calls })
                .collect();
            let episode = Episode {
                turns: &turns,
                expected_answer: None,
                reference,
                step: 0,
            };
            (
                ToolNameMatch.score(&episode),
                ToolNameMatch.measure(&episode),
            )
        };
        let both: &[&[&str]] = &[&["search"], &["unit_convert"], &[]];
        assert_eq!(score(both, &reference), (1.0, Some(1.0)));
        // In one turn, or in the other order: turn boundaries and order do not count.
        assert_eq!(score(&[&["unit_convert", "search"]], &reference).0, 1.0);
        // Answering after the search: half the names.
        assert_eq!(score(&[&["search"], &[]], &reference).0, 0.5);
        // Calling more than the task needs lowers it.
        let spam: &[&[&str]] = &[&["search", "search", "unit_convert"]];
        assert_eq!(score(spam, &reference).0, 2.0 / 3.0);
        // No call at all, and no reference.
        assert_eq!(score(&[&[]], &reference), (0.0, Some(0.0)));
        assert_eq!(score(both, &[]), (0.0, None));
    }
}
