//! The named reward variants of the ToolRL paper (its ablations), parsed from `name+name+…`.
//!
//! Each name is one switch of the reference implementation (an environment variable there);
//! `default` switches nothing on. `hungarian` is ours, not the paper's: optimal instead of greedy
//! matching of predicted to ground-truth calls.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// The switches a variant expression turns on. `Variant::default()` is the paper's main reward.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Variant {
    /// `coarse`: anything short of an exact match of the call list gets the lowest correctness.
    pub coarse: bool,
    /// `refined`: name and key lists must be equal to score, no partial overlap credit.
    pub refined: bool,
    /// `intermediate`: a call scores 1 only when equal to the ground-truth call as a whole.
    pub intermediate: bool,
    /// `equalmax`: correctness on [-1, 1] instead of [-3, 3].
    pub equalmax: bool,
    /// `twostage`: correctness range / 3 before step 30, format range / 2 from step 30 on.
    pub twostage: bool,
    /// `schedule`: format range shrinks from [-2, 2] and correctness range grows to [-3, 3] over
    /// 150 steps.
    pub schedule: bool,
    /// `length`: adds the think-length term.
    pub length: bool,
    /// `schedlength`: the length term with a cap that grows with the step (implies `length`).
    pub schedlength: bool,
    /// `hungarian`: optimal assignment of predicted to ground-truth calls. Not in the paper.
    pub hungarian: bool,
}

/// Every name a variant expression may use, in the order of the spec's table.
pub const VARIANT_NAMES: &[&str] = &[
    "default",
    "coarse",
    "refined",
    "intermediate",
    "equalmax",
    "twostage",
    "schedule",
    "length",
    "schedlength",
    "hungarian",
];

/// A variant expression that names something we do not know.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown reward variant name(s) {} in {expression:?}; known: {}", quoted(.unknown), VARIANT_NAMES.join(", "))]
pub struct UnknownVariant {
    /// The whole expression as given.
    pub expression: String,
    /// Each part of it that is not a known name (an empty part shows as `""`).
    pub unknown: Vec<String>,
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl FromStr for Variant {
    type Err = UnknownVariant;

    /// Parses `name+name+…`; surrounding spaces around a name are ignored, names are exact
    /// (lower case).
    fn from_str(expression: &str) -> Result<Self, Self::Err> {
        let mut v = Variant::default();
        let mut unknown = Vec::new();
        for name in expression.split('+').map(str::trim) {
            match name {
                "default" => {}
                "coarse" => v.coarse = true,
                "refined" => v.refined = true,
                "intermediate" => v.intermediate = true,
                "equalmax" => v.equalmax = true,
                "twostage" => v.twostage = true,
                "schedule" => v.schedule = true,
                "length" => v.length = true,
                "schedlength" => v.schedlength = true,
                "hungarian" => v.hungarian = true,
                other => unknown.push(other.to_owned()),
            }
        }
        if unknown.is_empty() {
            Ok(v)
        } else {
            Err(UnknownVariant {
                expression: expression.to_owned(),
                unknown,
            })
        }
    }
}

impl fmt::Display for Variant {
    /// The canonical expression: switched-on names in table order, or `default`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flags = [
            self.coarse,
            self.refined,
            self.intermediate,
            self.equalmax,
            self.twostage,
            self.schedule,
            self.length,
            self.schedlength,
            self.hungarian,
        ];
        let on: Vec<&str> = VARIANT_NAMES[1..]
            .iter()
            .zip(flags)
            .filter_map(|(name, on)| on.then_some(*name))
            .collect();
        if on.is_empty() {
            f.write_str("default")
        } else {
            f.write_str(&on.join("+"))
        }
    }
}

impl Variant {
    /// Whether the length term is part of the total.
    pub fn with_length(&self) -> bool {
        self.length || self.schedlength
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let v: Variant = "refined+length".parse().unwrap();
        assert!(v.refined && v.length && !v.coarse);
        assert_eq!(v.to_string(), "refined+length");
        assert_eq!("default".parse::<Variant>().unwrap(), Variant::default());
        assert_eq!(Variant::default().to_string(), "default");
        assert!("default+schedlength"
            .parse::<Variant>()
            .unwrap()
            .with_length());
    }

    #[test]
    fn unknown_names_are_named() {
        let err = "refined+fancy+".parse::<Variant>().unwrap_err();
        assert_eq!(err.unknown, vec!["fancy".to_owned(), String::new()]);
        let msg = err.to_string();
        assert!(
            msg.contains("\"fancy\"") && msg.contains("known: default, coarse"),
            "{msg}"
        );
    }
}
