//! `scripts/make-tasks.py` with the built `toolenv`: the committed task files are what the
//! generator builds, and another seed draws a fresh set of the same kinds and counts that loads
//! as a dataset (the generalisation check's held-out set).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use toolenv::dataset::{self, Dataset, Format};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn make_tasks(args: &[&str]) -> Output {
    Command::new("python3")
        .arg(repo().join("scripts/make-tasks.py"))
        .args(args)
        .env("TOOLENV", env!("CARGO_BIN_EXE_toolenv"))
        .output()
        .expect("run python3 scripts/make-tasks.py")
}

fn kinds(d: &Dataset) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for t in d.tasks() {
        *counts.entry(t.kind.name()).or_default() += 1;
    }
    counts
}

fn load(path: &Path) -> Dataset {
    dataset::load(path.to_str().unwrap(), Some(Format::Tasks)).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn committed_tasks_are_the_generators_and_another_seed_draws_a_fresh_set() {
    let check = make_tasks(&["--check"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("tasks");
    let fresh = make_tasks(&["--seed", "7", "--out", dir.to_str().unwrap()]);
    assert!(
        fresh.status.success(),
        "{}",
        String::from_utf8_lossy(&fresh.stderr)
    );
    for split in ["train", "test"] {
        let committed = load(&repo().join(format!("env/data/tasks/{split}.jsonl")));
        let drawn = load(&dir.join(format!("{split}.jsonl")));
        assert_eq!(kinds(&drawn), kinds(&committed), "{split}");
        let seen: HashSet<&str> = committed.tasks().map(|t| t.question.as_str()).collect();
        let new = drawn
            .tasks()
            .filter(|t| !seen.contains(t.question.as_str()))
            .count();
        // Arithmetic, conversions and stored values are drawn afresh; questions about the
        // 70-document search corpus may repeat.
        assert!(
            new * 2 > drawn.len(),
            "{split}: only {new} of {} questions are new",
            drawn.len()
        );
    }
    // The same seed draws the same set.
    let again = make_tasks(&["--seed", "7", "--out", dir.to_str().unwrap(), "--check"]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}
