//! Loading the corpus: a JSON Lines file with one `{"id", "title", "text"}` document per line.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// One searchable document.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Doc {
    /// Stable identifier, e.g. `"planet-mars"`.
    pub id: String,
    /// Short title, e.g. `"Mars"`.
    pub title: String,
    /// The document's text, a few sentences.
    pub text: String,
}

/// Reads every document from the JSON Lines file at `path` (blank lines are skipped).
pub fn load(path: &Path) -> Result<Vec<Doc>, String> {
    let content = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "the search corpus is not available (cannot read {}: {e})",
            path.display()
        )
    })?;
    content
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line)
                .map_err(|e| format!("the search corpus is malformed at line {}: {e}", i + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// The corpus shipped with the tool.
    const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/corpus.jsonl");

    #[test]
    fn shipped_corpus_is_well_formed() {
        let docs = load(Path::new(SHIPPED)).unwrap();
        assert!(docs.len() >= 55, "{} documents", docs.len());
        let ids: HashSet<&str> = docs.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids.len(), docs.len(), "ids must be unique");
        for doc in &docs {
            assert!(
                doc.id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{}",
                doc.id
            );
            assert!(!doc.title.is_empty() && !doc.text.is_empty(), "{}", doc.id);
            assert!(doc.text.len() < 400, "{} is too long", doc.id);
        }
    }

    #[test]
    fn missing_file_is_a_clear_error() {
        let err = load(Path::new("/nonexistent/corpus.jsonl")).unwrap_err();
        assert!(err.starts_with(
            "the search corpus is not available (cannot read /nonexistent/corpus.jsonl"
        ));
    }

    #[test]
    fn malformed_line_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.jsonl");
        std::fs::write(
            &path,
            "{\"id\":\"a\",\"title\":\"A\",\"text\":\"x\"}\n\n{oops\n",
        )
        .unwrap();
        let err = load(&path).unwrap_err();
        assert!(
            err.starts_with("the search corpus is malformed at line 3"),
            "{err}"
        );
    }
}
