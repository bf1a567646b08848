//! Recursive-descent evaluation of a token list, with the usual precedence:
//!
//! ```text
//! expr    := term (('+' | '-') term)*
//! term    := unary (('*' | '/' | '%') unary)*
//! unary   := ('-' | '+') unary | power
//! power   := primary ('^' unary)?        right-associative; binds tighter than unary minus
//! primary := number | '(' expr ')'
//! ```
//!
//! so `-2^2` is -4 and `2^-1` is 0.5, as in mathematics. Every recursion passes through `unary`,
//! which bounds the depth, so no input can exhaust the stack. Every operation checks its result:
//! division by zero and non-finite results are errors, never `inf` or `NaN` values.

use crate::lexer::{Kind, Token};

/// Deepest nesting of parentheses, unary signs and powers accepted.
pub const MAX_DEPTH: usize = 200;

/// Evaluates `tokens`; `len` is the expression's length in characters, used to place
/// "unexpected end" errors just after it.
pub fn evaluate(tokens: &[Token], len: usize) -> Result<f64, String> {
    if tokens.is_empty() {
        return Err("empty expression".to_string());
    }
    let mut parser = Parser {
        tokens,
        next: 0,
        depth: 0,
        end: len + 1,
    };
    let value = parser.expr()?;
    match parser.peek() {
        None => Ok(value),
        Some(t) if t.kind == Kind::RParen => Err(format!(
            "unexpected ')' at position {} (no matching '(')",
            t.pos
        )),
        Some(t) => Err(format!(
            "unexpected {} at position {} (expected an operator or the end)",
            t.kind, t.pos
        )),
    }
}

struct Parser<'a> {
    tokens: &'a [Token],
    next: usize,
    depth: usize,
    end: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<Token> {
        self.tokens.get(self.next).copied()
    }

    /// Consumes the next token if it is one of `kinds`.
    fn eat(&mut self, kinds: &[Kind]) -> Option<Token> {
        let token = self.peek().filter(|t| kinds.contains(&t.kind))?;
        self.next += 1;
        Some(token)
    }

    fn expr(&mut self) -> Result<f64, String> {
        let mut value = self.term()?;
        while let Some(op) = self.eat(&[Kind::Plus, Kind::Minus]) {
            let rhs = self.term()?;
            let result = if op.kind == Kind::Plus {
                value + rhs
            } else {
                value - rhs
            };
            value = finite(result, op)?;
        }
        Ok(value)
    }

    fn term(&mut self) -> Result<f64, String> {
        let mut value = self.unary()?;
        while let Some(op) = self.eat(&[Kind::Star, Kind::Slash, Kind::Percent]) {
            let rhs = self.unary()?;
            let result = match op.kind {
                Kind::Star => value * rhs,
                _ if rhs == 0.0 => {
                    let what = if op.kind == Kind::Slash {
                        "division"
                    } else {
                        "modulo"
                    };
                    return Err(format!("{what} by zero at position {}", op.pos));
                }
                Kind::Slash => value / rhs,
                _ => value % rhs,
            };
            value = finite(result, op)?;
        }
        Ok(value)
    }

    fn unary(&mut self) -> Result<f64, String> {
        if self.depth >= MAX_DEPTH {
            let pos = self.peek().map_or(self.end, |t| t.pos);
            return Err(format!(
                "expression nested too deeply at position {pos} (limit {MAX_DEPTH})"
            ));
        }
        self.depth += 1;
        let result = if self.eat(&[Kind::Minus]).is_some() {
            self.unary().map(|v| -v)
        } else if self.eat(&[Kind::Plus]).is_some() {
            self.unary()
        } else {
            self.power()
        };
        self.depth -= 1;
        result
    }

    fn power(&mut self) -> Result<f64, String> {
        let base = self.primary()?;
        let Some(op) = self.eat(&[Kind::Caret]) else {
            return Ok(base);
        };
        let exponent = self.unary()?;
        if base == 0.0 && exponent < 0.0 {
            return Err(format!(
                "division by zero at position {}: 0 to a negative power",
                op.pos
            ));
        }
        finite(base.powf(exponent), op)
    }

    fn primary(&mut self) -> Result<f64, String> {
        let Some(token) = self.peek() else {
            return Err(format!(
                "unexpected end of expression at position {} (expected a number or '(')",
                self.end
            ));
        };
        self.next += 1;
        match token.kind {
            Kind::Num(value) => Ok(value),
            Kind::LParen => {
                let value = self.expr()?;
                if self.eat(&[Kind::RParen]).is_some() {
                    return Ok(value);
                }
                let found = match self.peek() {
                    Some(t) => format!("{} at position {}", t.kind, t.pos),
                    None => format!("end of expression at position {}", self.end),
                };
                Err(format!(
                    "unexpected {found} (expected ')' to close the '(' at position {})",
                    token.pos
                ))
            }
            other => Err(format!(
                "unexpected {other} at position {} (expected a number or '(')",
                token.pos
            )),
        }
    }
}

/// Rejects the non-finite result of operator `op`.
fn finite(value: f64, op: Token) -> Result<f64, String> {
    if value.is_finite() {
        Ok(value)
    } else if value.is_nan() {
        Err(format!(
            "{} at position {} has no real result (e.g. a negative number to a fractional power)",
            op.kind, op.pos
        ))
    } else {
        Err(format!(
            "overflow: the result of {} at position {} is too large",
            op.kind, op.pos
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexer::tokenize;

    fn eval(input: &str) -> Result<f64, String> {
        evaluate(&tokenize(input)?, input.chars().count())
    }

    fn ok(input: &str) -> f64 {
        eval(input).unwrap_or_else(|e| panic!("{input}: {e}"))
    }

    #[test]
    fn precedence_and_associativity() {
        assert_eq!(ok("2+3*4"), 14.0);
        assert_eq!(ok("(2+3)*4"), 20.0);
        assert_eq!(ok("10-4-3"), 3.0);
        assert_eq!(ok("100/10/5"), 2.0);
        assert_eq!(ok("2^3^2"), 512.0);
        assert_eq!(ok("2*3^2"), 18.0);
        assert_eq!(ok("7 % 4 * 2"), 6.0);
        assert_eq!(ok("1 + 7 % 4"), 4.0);
    }

    #[test]
    fn unary_signs() {
        assert_eq!(ok("-2^2"), -4.0);
        assert_eq!(ok("(-2)^2"), 4.0);
        assert_eq!(ok("2^-1"), 0.5);
        assert_eq!(ok("--3"), 3.0);
        assert_eq!(ok("+3"), 3.0);
        assert_eq!(ok("2*-3"), -6.0);
        assert_eq!(ok("2 - -3"), 5.0);
        assert_eq!(ok("-(1+2)"), -3.0);
    }

    #[test]
    fn decimals_whitespace_and_modulo() {
        assert_eq!(ok(" 1.5 *\t2 "), 3.0);
        assert_eq!(ok(".5 + .25"), 0.75);
        assert_eq!(ok("-7 % 3"), -1.0);
        assert_eq!(ok("5.5 % 2"), 1.5);
        assert_eq!(ok("2 ** 10"), 1024.0);
    }

    #[test]
    fn syntax_errors_name_the_position() {
        assert_eq!(
            eval("2+3*)").unwrap_err(),
            "unexpected ')' at position 5 (expected a number or '(')"
        );
        assert_eq!(
            eval("(2+3))").unwrap_err(),
            "unexpected ')' at position 6 (no matching '(')"
        );
        assert_eq!(
            eval("(2+3").unwrap_err(),
            "unexpected end of expression at position 5 (expected ')' to close the '(' at position 1)"
        );
        assert_eq!(
            eval("2 3").unwrap_err(),
            "unexpected number 3 at position 3 (expected an operator or the end)"
        );
        assert_eq!(
            eval("2+").unwrap_err(),
            "unexpected end of expression at position 3 (expected a number or '(')"
        );
        assert_eq!(
            eval("2 (3)").unwrap_err(),
            "unexpected '(' at position 3 (expected an operator or the end)"
        );
        assert_eq!(
            eval("*2").unwrap_err(),
            "unexpected '*' at position 1 (expected a number or '(')"
        );
        assert_eq!(
            eval("()").unwrap_err().split(" (").next(),
            Some("unexpected ')' at position 2")
        );
        assert_eq!(eval("").unwrap_err(), "empty expression");
    }

    #[test]
    fn arithmetic_errors() {
        assert_eq!(eval("1/0").unwrap_err(), "division by zero at position 2");
        assert_eq!(
            eval("1/(2-2)").unwrap_err(),
            "division by zero at position 2"
        );
        assert_eq!(eval("5 % 0").unwrap_err(), "modulo by zero at position 3");
        assert!(eval("0^-1").unwrap_err().starts_with("division by zero"));
        assert_eq!(
            eval("10^400").unwrap_err(),
            "overflow: the result of '^' at position 3 is too large"
        );
        assert!(eval("1e308*10").unwrap_err().starts_with("overflow"));
        assert!(eval("(-8)^(1/3)").unwrap_err().contains("no real result"));
    }

    #[test]
    fn depth_is_bounded() {
        let ok_nested = "(".repeat(MAX_DEPTH - 1) + "1" + &")".repeat(MAX_DEPTH - 1);
        assert_eq!(ok(&ok_nested), 1.0);
        let deep = "(".repeat(MAX_DEPTH) + "1" + &")".repeat(MAX_DEPTH);
        assert!(eval(&deep).unwrap_err().contains("nested too deeply"));
        let minus = "-".repeat(10_000) + "1";
        assert!(eval(&minus).unwrap_err().contains("nested too deeply"));
        let powers = "2^".repeat(10_000) + "1";
        assert!(eval(&powers).unwrap_err().contains("nested too deeply"));
    }

    #[test]
    fn long_flat_chains_are_not_recursion() {
        let chain = "1+".repeat(50_000) + "1";
        assert_eq!(ok(&chain), 50_001.0);
    }
}
