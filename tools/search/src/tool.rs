//! The tool's entry point: validates the arguments, ranks the corpus and shapes the results
//! (score > 0 only, by score then id, scores rounded to 4 decimals).

use crate::bm25::scores;
use crate::corpus;
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::Path;

/// Longest query accepted, in characters.
pub const MAX_QUERY: usize = 1000;
/// Results returned when `top_k` is absent.
pub const DEFAULT_TOP_K: u64 = 3;
/// Most results one call may ask for.
pub const MAX_TOP_K: u64 = 10;

/// Arguments, as described by `schemas/tools/search.json`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Keywords to look for.
    pub query: String,
    /// How many results at most (1..=10, default 3). A float so that `3.0`, which JSON Schema
    /// calls an integer, is accepted too.
    #[serde(default)]
    pub top_k: Option<f64>,
}

/// Searches the corpus at `corpus_path` and returns `{"results": [...]}`.
pub fn search(corpus_path: &Path, args: Args) -> Result<Value, String> {
    let top_k = top_k(args.top_k)?;
    let chars = args.query.chars().count();
    if chars > MAX_QUERY {
        return Err(format!(
            "query too long ({chars} characters, limit {MAX_QUERY})"
        ));
    }
    let docs = corpus::load(corpus_path)?;
    let mut ranked: Vec<(f64, usize)> = scores(&docs, &args.query)
        .into_iter()
        .map(|s| (s * 10_000.0).round() / 10_000.0)
        .enumerate()
        .filter(|(_, s)| *s > 0.0)
        .map(|(i, s)| (s, i))
        .collect();
    ranked.sort_by(|(sa, a), (sb, b)| sb.total_cmp(sa).then_with(|| docs[*a].id.cmp(&docs[*b].id)));
    let results: Vec<Value> = ranked
        .into_iter()
        .take(top_k)
        .map(|(score, i)| {
            let d = &docs[i];
            json!({ "id": d.id, "title": d.title, "text": d.text, "score": score })
        })
        .collect();
    Ok(json!({ "results": results }))
}

fn top_k(requested: Option<f64>) -> Result<usize, String> {
    let Some(k) = requested else {
        return Ok(DEFAULT_TOP_K as usize);
    };
    if k.fract() != 0.0 || k < 1.0 || k > MAX_TOP_K as f64 {
        return Err(format!(
            "top_k must be a whole number from 1 to {MAX_TOP_K}, got {k}"
        ));
    }
    Ok(k as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/corpus.jsonl");

    fn run(args: Value) -> Result<Value, String> {
        let args: Args = serde_json::from_value(args).map_err(|e| format!("decode: {e}"))?;
        search(Path::new(SHIPPED), args)
    }

    fn ids(args: Value) -> Vec<String> {
        let out = run(args).unwrap();
        out["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    fn first(query: &str) -> String {
        ids(json!({"query": query}))
            .into_iter()
            .next()
            .unwrap_or_default()
    }

    #[test]
    fn named_entity_ranks_first() {
        assert_eq!(first("How many moons does Mars have?"), "planet-mars");
        assert_eq!(first("Jupiter diameter"), "planet-jupiter");
        assert_eq!(first("distance of Neptune from the Sun"), "planet-neptune");
        assert_eq!(
            first("How tall is the Eiffel Tower?"),
            "building-eiffel-tower"
        );
        assert_eq!(first("length of the Danube river"), "river-danube");
        assert_eq!(first("capital of Kenya"), "country-kenya");
        assert_eq!(first("atomic number of gold"), "element-gold");
        assert_eq!(
            first("When was Acme Widgets founded?"),
            "company-acme-widgets"
        );
        assert_eq!(first("Kestrel X2 drone weight"), "company-zephyr-aerial");
    }

    #[test]
    fn ambiguous_names_find_both_senses() {
        let found = ids(json!({"query": "mercury", "top_k": 5}));
        assert!(found.contains(&"planet-mercury".to_string()), "{found:?}");
        assert!(found.contains(&"element-mercury".to_string()), "{found:?}");
        assert_eq!(first("mercury metal liquid"), "element-mercury");
        assert_eq!(first("planet mercury orbit"), "planet-mercury");
    }

    #[test]
    fn result_shape_and_order() {
        let out = run(json!({"query": "tallest building in the world", "top_k": 10})).unwrap();
        let results = out["results"].as_array().unwrap();
        assert!(!results.is_empty() && results.len() <= 10);
        let mut previous = f64::INFINITY;
        for r in results {
            let obj = r.as_object().unwrap();
            let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
            keys.sort();
            assert_eq!(keys, ["id", "score", "text", "title"]);
            let score = r["score"].as_f64().unwrap();
            assert!(score > 0.0 && score <= previous);
            assert_eq!((score * 10_000.0).round() / 10_000.0, score);
            previous = score;
        }
    }

    #[test]
    fn ties_break_by_id() {
        // Element documents share this phrase and have similar lengths, so scores may tie.
        let out = run(json!({"query": "atomic number", "top_k": 10})).unwrap();
        let results = out["results"].as_array().unwrap();
        for pair in results.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if a["score"] == b["score"] {
                assert!(a["id"].as_str() < b["id"].as_str());
            }
        }
    }

    #[test]
    fn no_matches_is_empty() {
        assert_eq!(run(json!({"query": ""})).unwrap(), json!({"results": []}));
        assert_eq!(
            run(json!({"query": "zyzzyva quux"})).unwrap(),
            json!({"results": []})
        );
        assert_eq!(
            run(json!({"query": "what is the"})).unwrap(),
            json!({"results": []})
        );
    }

    #[test]
    fn top_k_bounds() {
        assert_eq!(ids(json!({"query": "planet"})).len(), 3);
        assert_eq!(ids(json!({"query": "planet", "top_k": 1})).len(), 1);
        assert_eq!(ids(json!({"query": "planet", "top_k": 10})).len(), 9);
        assert_eq!(ids(json!({"query": "metres", "top_k": 10})).len(), 10);
        assert_eq!(ids(json!({"query": "planet", "top_k": 3.0})).len(), 3);
        for bad in [json!(0), json!(11), json!(-1), json!(2.5)] {
            let err = run(json!({"query": "planet", "top_k": bad})).unwrap_err();
            assert!(
                err.starts_with("top_k must be a whole number from 1 to 10"),
                "{err}"
            );
        }
    }

    #[test]
    fn long_query_is_refused() {
        let err = run(json!({"query": "a".repeat(MAX_QUERY + 1)})).unwrap_err();
        assert!(err.starts_with("query too long"));
    }

    #[test]
    fn missing_corpus_is_an_error() {
        let args = Args {
            query: "mars".into(),
            top_k: None,
        };
        let err = search(Path::new("/nonexistent/corpus.jsonl"), args).unwrap_err();
        assert!(err.contains("search corpus is not available"));
    }
}
