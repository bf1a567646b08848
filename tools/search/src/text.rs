//! Tokenization, applied identically to documents and queries: lowercase, split on anything not
//! alphanumeric, drop stop words, and fold simple plurals ("moons" → "moon", "countries" →
//! "country") so that a query matches regardless of number.

/// Words too common to say anything about relevance, plus the letters left by "'s" and "n't".
const STOP_WORDS: &[&str] = &[
    "a", "about", "an", "and", "are", "as", "at", "be", "by", "did", "do", "does", "for", "from",
    "had", "has", "have", "how", "i", "in", "is", "it", "its", "many", "me", "much", "of", "on",
    "or", "s", "t", "tell", "that", "the", "their", "there", "this", "to", "was", "were", "what",
    "when", "where", "which", "who", "why", "with",
];

/// The search terms of `text`, in order (repeats kept: term frequency matters).
pub fn terms(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .filter(|word| !STOP_WORDS.contains(&word.as_str()))
        .map(stem)
        .collect()
}

/// Folds a plural to its singular, crudely: the same rule on both sides is what matters.
fn stem(word: String) -> String {
    let len = word.chars().count();
    if len > 4 && word.ends_with("ies") {
        format!("{}y", &word[..word.len() - 3])
    } else if len > 3 && word.ends_with('s') && !word.ends_with("ss") {
        word[..word.len() - 1].to_string()
    } else {
        word
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lowercases_and_drops_stop_words() {
        assert_eq!(terms("How many MOONS does Mars have?"), vec!["moon", "mar"]);
        assert_eq!(terms("Earth's moon"), vec!["earth", "moon"]);
        assert_eq!(terms("8,848.86 metres"), vec!["8", "848", "86", "metre"]);
    }

    #[test]
    fn plurals_fold() {
        assert_eq!(terms("countries country"), vec!["country", "country"]);
        assert_eq!(terms("glass gas bus"), vec!["glass", "gas", "bus"]);
        assert_eq!(terms("Brasília"), vec!["brasília"]);
    }

    #[test]
    fn nothing_left() {
        assert!(terms("").is_empty());
        assert!(terms("the of ... !!").is_empty());
    }
}
