//! Splits an expression into tokens, each tagged with its 1-based character position so that
//! errors can point at the offending spot ("unexpected ')' at position 5").

use std::fmt;

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// A number literal such as `2`, `1.5`, `.5` or `6.02e23`.
    Num(f64),
    /// `+`
    Plus,
    /// `-` (binary or unary)
    Minus,
    /// `*` or `×`
    Star,
    /// `/` or `÷`
    Slash,
    /// `%` (remainder)
    Percent,
    /// `^` or `**` (power)
    Caret,
    /// `(`
    LParen,
    /// `)`
    RParen,
}

/// A token and where it starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Token {
    /// What the token is.
    pub kind: Kind,
    /// 1-based character position of its first character.
    pub pos: usize,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Num(n) => write!(f, "number {n}"),
            Kind::Plus => f.write_str("'+'"),
            Kind::Minus => f.write_str("'-'"),
            Kind::Star => f.write_str("'*'"),
            Kind::Slash => f.write_str("'/'"),
            Kind::Percent => f.write_str("'%'"),
            Kind::Caret => f.write_str("'^'"),
            Kind::LParen => f.write_str("'('"),
            Kind::RParen => f.write_str("')'"),
        }
    }
}

/// Tokenizes `input`, or reports the first character that cannot start a token.
pub fn tokenize(input: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let pos = i + 1;
        let single = match c {
            '+' => Some(Kind::Plus),
            // U+2212 is the typographic minus sign models sometimes copy from text.
            '-' | '\u{2212}' => Some(Kind::Minus),
            '*' if chars.get(i + 1) == Some(&'*') => {
                i += 1;
                Some(Kind::Caret)
            }
            '*' | '×' => Some(Kind::Star),
            '/' | '÷' => Some(Kind::Slash),
            '%' => Some(Kind::Percent),
            '^' => Some(Kind::Caret),
            '(' => Some(Kind::LParen),
            ')' => Some(Kind::RParen),
            _ => None,
        };
        if let Some(kind) = single {
            tokens.push(Token { kind, pos });
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            let (value, len) = number(&chars[i..], pos)?;
            tokens.push(Token {
                kind: Kind::Num(value),
                pos,
            });
            i += len;
        } else {
            return Err(format!("unexpected character '{c}' at position {pos}"));
        }
    }
    Ok(tokens)
}

/// Reads the number literal at the start of `chars`: digits with at most one '.', then an
/// optional exponent (`e`, optional sign, digits). Returns its value and length in characters.
fn number(chars: &[char], pos: usize) -> Result<(f64, usize), String> {
    let mut len = chars
        .iter()
        .take_while(|c| c.is_ascii_digit() || **c == '.')
        .count();
    let mantissa: String = chars[..len].iter().collect();
    if mantissa.matches('.').count() > 1 || mantissa == "." {
        return Err(format!("invalid number '{mantissa}' at position {pos}"));
    }
    // An exponent only counts when digits follow, so "2e" is reported as a stray 'e'.
    if matches!(chars.get(len), Some('e' | 'E')) {
        let sign = usize::from(matches!(chars.get(len + 1), Some('+' | '-')));
        let digits = chars[(len + 1 + sign).min(chars.len())..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits > 0 {
            len += 1 + sign + digits;
        }
    }
    let text: String = chars[..len].iter().collect();
    let value: f64 = text
        .parse()
        .map_err(|_| format!("invalid number '{text}' at position {pos}"))?;
    if !value.is_finite() {
        return Err(format!("number '{text}' at position {pos} is too large"));
    }
    Ok((value, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(input: &str) -> Vec<Kind> {
        tokenize(input)
            .unwrap()
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    #[test]
    fn numbers() {
        assert_eq!(kinds("1.5"), vec![Kind::Num(1.5)]);
        assert_eq!(kinds(".5"), vec![Kind::Num(0.5)]);
        assert_eq!(kinds("5."), vec![Kind::Num(5.0)]);
        assert_eq!(kinds("6.02e23"), vec![Kind::Num(6.02e23)]);
        assert_eq!(kinds("1E-3"), vec![Kind::Num(0.001)]);
        assert_eq!(kinds("007"), vec![Kind::Num(7.0)]);
    }

    #[test]
    fn operators_and_positions() {
        let tokens = tokenize(" 2 ** 3×4÷(1−1)").unwrap();
        let positions: Vec<usize> = tokens.iter().map(|t| t.pos).collect();
        assert_eq!(positions, vec![2, 4, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
        assert_eq!(tokens[1].kind, Kind::Caret);
        assert_eq!(tokens[3].kind, Kind::Star);
        assert_eq!(tokens[5].kind, Kind::Slash);
        assert_eq!(tokens[8].kind, Kind::Minus);
    }

    #[test]
    fn errors() {
        assert_eq!(
            tokenize("1.2.3").unwrap_err(),
            "invalid number '1.2.3' at position 1"
        );
        assert_eq!(
            tokenize("2 + .").unwrap_err(),
            "invalid number '.' at position 5"
        );
        assert_eq!(
            tokenize("2 + x").unwrap_err(),
            "unexpected character 'x' at position 5"
        );
        assert_eq!(
            tokenize("2e").unwrap_err(),
            "unexpected character 'e' at position 2"
        );
        assert_eq!(
            tokenize("1e999").unwrap_err(),
            "number '1e999' at position 1 is too large"
        );
        assert!(tokenize("1,000").unwrap_err().contains("','"));
    }

    #[test]
    fn empty_input_has_no_tokens() {
        assert!(tokenize("   ").unwrap().is_empty());
    }
}
