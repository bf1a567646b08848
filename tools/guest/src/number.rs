//! Turns a finite `f64` into the JSON number a reader expects: integers without a fraction and
//! decimals without binary floating-point noise.

use serde_json::{Number, Value};

/// Largest magnitude up to which every integer is exactly representable in an `f64` (2^53).
const MAX_EXACT: f64 = 9_007_199_254_740_992.0;

/// Significant digits kept for non-integral results: enough for any practical answer, few
/// enough to turn `0.1 + 0.2` into `0.3` instead of `0.30000000000000004`.
const SIGNIFICANT: usize = 15;

/// Formats `value`: an exact integer within ±2^53 becomes a JSON integer (`14`, not `14.0`);
/// any other value is rounded to 15 significant digits (and becomes an integer if that makes it
/// one within ±2^53). Non-finite values are an error, as JSON cannot carry them.
pub fn to_json(value: f64) -> Result<Value, String> {
    if !value.is_finite() {
        return Err("the result is not a finite number".to_string());
    }
    let value = if value.fract() == 0.0 {
        value
    } else {
        round_significant(value)
    };
    if value.fract() == 0.0 && value.abs() <= MAX_EXACT {
        // Exact by the check above; `as` also folds -0.0 into 0.
        return Ok(Value::from(value as i64));
    }
    Number::from_f64(value)
        .map(Value::Number)
        .ok_or_else(|| "the result is not a finite number".to_string())
}

fn round_significant(value: f64) -> f64 {
    format!("{value:.prec$e}", prec = SIGNIFICANT - 1)
        .parse()
        .unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers() {
        assert_eq!(to_json(14.0).unwrap(), json!(14));
        assert_eq!(to_json(-3.0).unwrap(), json!(-3));
        assert_eq!(to_json(-0.0).unwrap().to_string(), "0");
        assert_eq!(
            to_json(MAX_EXACT).unwrap(),
            json!(9_007_199_254_740_992_i64)
        );
        assert_eq!(
            to_json(9_007_199_254_740_991.0).unwrap(),
            json!(9_007_199_254_740_991_i64)
        );
    }

    #[test]
    fn large_integers_stay_floats() {
        let v = to_json(2f64.powi(60)).unwrap();
        assert!(v.is_f64());
        assert_eq!(v.as_f64(), Some(2f64.powi(60)));
    }

    #[test]
    fn decimals_lose_float_noise() {
        assert_eq!(to_json(0.1 + 0.2).unwrap(), json!(0.3));
        assert_eq!(to_json(3.5).unwrap(), json!(3.5));
        assert_eq!(to_json(1.0 / 3.0).unwrap(), json!(0.333333333333333));
        assert_eq!(to_json(0.1 * 3.0 * 10.0).unwrap(), json!(3));
        assert_eq!(to_json(1e-20).unwrap(), json!(1e-20));
    }

    #[test]
    fn non_finite_is_an_error() {
        assert!(to_json(f64::INFINITY).is_err());
        assert!(to_json(f64::NAN).is_err());
    }
}
