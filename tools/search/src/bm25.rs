//! Okapi BM25 ranking (k1 = 1.2, b = 0.75) of documents against a query. A document's title and
//! text are indexed together.

use crate::corpus::Doc;
use crate::text::terms;
use std::collections::HashMap;

const K1: f64 = 1.2;
const B: f64 = 0.75;

/// Scores every document for `query`, in corpus order. The idf is the non-negative variant
/// `ln(1 + (N - n + 0.5) / (n + 0.5))`, so a term in most documents still counts a little.
pub fn scores(docs: &[Doc], query: &str) -> Vec<f64> {
    let mut query_terms = terms(query);
    query_terms.sort();
    query_terms.dedup();
    if query_terms.is_empty() || docs.is_empty() {
        return vec![0.0; docs.len()];
    }
    let indexed: Vec<Vec<String>> = docs
        .iter()
        .map(|d| terms(&format!("{} {}", d.title, d.text)))
        .collect();
    let n = docs.len() as f64;
    let avg_len = (indexed.iter().map(Vec::len).sum::<usize>() as f64 / n).max(1.0);
    let idf: HashMap<&str, f64> = query_terms
        .iter()
        .map(|t| {
            let containing = indexed.iter().filter(|d| d.contains(t)).count() as f64;
            let idf = (1.0 + (n - containing + 0.5) / (containing + 0.5)).ln();
            (t.as_str(), idf)
        })
        .collect();
    indexed
        .iter()
        .map(|doc| {
            let norm = K1 * (1.0 - B + B * doc.len() as f64 / avg_len);
            query_terms
                .iter()
                .map(|t| {
                    let tf = doc.iter().filter(|w| *w == t).count() as f64;
                    idf[t.as_str()] * tf * (K1 + 1.0) / (tf + norm)
                })
                .sum()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: &str, text: &str) -> Doc {
        Doc {
            id: id.into(),
            title: String::new(),
            text: text.into(),
        }
    }

    #[test]
    fn matching_documents_score_higher() {
        let docs = [
            doc("a", "red apples and green pears"),
            doc("b", "blue sky"),
            doc("c", "apples apples apples"),
        ];
        let s = scores(&docs, "apples");
        assert!(s[1] == 0.0);
        assert!(s[2] > s[0] && s[0] > 0.0, "{s:?}");
    }

    #[test]
    fn rare_terms_weigh_more() {
        let docs = [
            doc("a", "common rare"),
            doc("b", "common word"),
            doc("c", "common thing"),
        ];
        let s = scores(&docs, "common rare");
        assert!(s[0] > s[1] && s[1] > 0.0, "{s:?}");
        assert_eq!(s[1], s[2]);
    }

    #[test]
    fn hand_computed_score() {
        // One document out of two matches once; both have length 2, so the length norm is k1.
        let docs = [doc("a", "x y"), doc("b", "z w")];
        let idf = (1.0f64 + 1.5 / 1.5).ln();
        let expected = idf * (K1 + 1.0) / (1.0 + K1);
        let s = scores(&docs, "x");
        assert!((s[0] - expected).abs() < 1e-12, "{s:?}");
    }

    #[test]
    fn empty_inputs() {
        assert!(scores(&[], "x").is_empty());
        assert_eq!(scores(&[doc("a", "x")], "the"), vec![0.0]);
    }
}
