//! The tool's entry point: decodes the arguments, converts through the category's base unit and
//! shapes the result.

use crate::units::{lookup, Category, ABSOLUTE_ZERO_C};
use guest::number::to_json;
use serde::Deserialize;
use serde_json::{json, Value};

/// Arguments, as described by `schemas/tools/unit_convert.json`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The quantity to convert, in `from` units.
    pub value: f64,
    /// The unit of `value`: a symbol ("km") or name ("kilometers").
    pub from: String,
    /// The unit to convert to.
    pub to: String,
}

/// Converts `args.value` from `args.from` to `args.to`; returns the converted value, the
/// canonical symbols of both units and a one-line human-readable summary.
pub fn convert(args: Args) -> Result<Value, String> {
    let from = lookup(&args.from)?;
    let to = lookup(&args.to)?;
    if from.category != to.category {
        return Err(format!(
            "cannot convert {} ({}) to {} ({}): both units must measure the same kind of quantity",
            from.symbol, from.category, to.symbol, to.category
        ));
    }
    if !args.value.is_finite() {
        return Err("value must be a finite number".to_string());
    }
    let base = from.to_base(args.value);
    if !base.is_finite() {
        return Err(format!(
            "{} {} is too large to convert",
            to_json(args.value)?,
            from.symbol
        ));
    }
    // The tolerance lets -459.67 F, a rounding error below -273.15 C, through.
    if from.category == Category::Temperature && base < ABSOLUTE_ZERO_C - 1e-9 {
        return Err(format!(
            "{} {} is below absolute zero (-273.15 C, -459.67 F, 0 K)",
            to_json(args.value)?,
            from.symbol
        ));
    }
    let converted = to.in_unit(base);
    if !converted.is_finite() {
        return Err(format!(
            "the result of converting to {} is too large",
            to.symbol
        ));
    }
    let value = to_json(converted)?;
    let text = format!(
        "{} {} = {} {}",
        to_json(args.value)?,
        from.symbol,
        to_json(significant(converted, 6))?,
        to.symbol
    );
    Ok(json!({ "value": value, "from": from.symbol, "to": to.symbol, "text": text }))
}

/// Rounds to `digits` significant digits, for the readable summary only.
fn significant(value: f64, digits: usize) -> f64 {
    format!("{value:.prec$e}", prec = digits.saturating_sub(1))
        .parse()
        .unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(value: f64, from: &str, to: &str) -> Result<Value, String> {
        convert(Args {
            value,
            from: from.to_string(),
            to: to.to_string(),
        })
    }

    fn value(v: f64, from: &str, to: &str) -> f64 {
        conv(v, from, to).unwrap_or_else(|e| panic!("{from}->{to}: {e}"))["value"]
            .as_f64()
            .unwrap_or(f64::NAN)
    }

    #[test]
    fn result_shape() {
        assert_eq!(
            conv(5.0, "kilometers", "miles").unwrap(),
            json!({"value": 3.10685596118667, "from": "km", "to": "mi", "text": "5 km = 3.10686 mi"})
        );
        assert_eq!(
            conv(1.5, "km", "m").unwrap(),
            json!({"value": 1500, "from": "km", "to": "m", "text": "1.5 km = 1500 m"})
        );
    }

    #[test]
    fn length() {
        assert_eq!(value(1.0, "mi", "km"), 1.609344);
        assert_eq!(value(1.0, "ft", "in"), 12.0);
        assert_eq!(value(1.0, "yd", "ft"), 3.0);
        assert_eq!(value(1.0, "nmi", "m"), 1852.0);
        assert_eq!(value(330.0, "m", "ft"), 1082.67716535433);
        assert_eq!(value(1.0, "m", "cm"), 100.0);
        assert_eq!(value(25.4, "mm", "in"), 1.0);
    }

    #[test]
    fn mass() {
        assert_eq!(value(1.0, "lb", "oz"), 16.0);
        assert_eq!(value(1.0, "st", "lb"), 14.0);
        assert_eq!(value(1.0, "t", "kg"), 1000.0);
        assert_eq!(value(1.0, "g", "mg"), 1000.0);
        assert_eq!(value(1.0, "kg", "lb"), 2.20462262184878);
    }

    #[test]
    fn temperature_is_affine() {
        assert_eq!(value(100.0, "C", "F"), 212.0);
        assert_eq!(value(212.0, "F", "C"), 100.0);
        assert_eq!(value(-40.0, "C", "F"), -40.0);
        assert_eq!(value(0.0, "C", "K"), 273.15);
        assert_eq!(value(0.0, "K", "F"), -459.67);
        assert_eq!(value(98.6, "F", "C"), 37.0);
        assert_eq!(value(20.0, "C", "C"), 20.0);
        assert_eq!(value(-459.67, "F", "K"), 0.0);
        assert_eq!(value(-273.15, "C", "K"), 0.0);
        assert_eq!(value(32.0, "F", "C"), 0.0);
        assert_eq!(value(273.15, "K", "C"), 0.0);
        assert_eq!(value(0.0, "C", "F"), 32.0);
        assert_eq!(value(37.0, "C", "F"), 98.6);
        assert_eq!(value(300.0, "K", "F"), 80.33);
    }

    #[test]
    fn below_absolute_zero_is_an_error() {
        assert_eq!(
            conv(-300.0, "C", "K").unwrap_err(),
            "-300 C is below absolute zero (-273.15 C, -459.67 F, 0 K)"
        );
        assert!(conv(-1.0, "K", "C").is_err());
    }

    #[test]
    fn time() {
        assert_eq!(value(1.0, "h", "min"), 60.0);
        assert_eq!(value(1.0, "day", "h"), 24.0);
        assert_eq!(value(1.0, "week", "day"), 7.0);
        assert_eq!(value(1.0, "year", "day"), 365.0);
        assert_eq!(value(1500.0, "ms", "s"), 1.5);
    }

    #[test]
    fn negative_and_zero_values() {
        assert_eq!(value(-2.0, "km", "m"), -2000.0);
        assert_eq!(value(0.0, "mi", "ft"), 0.0);
    }

    #[test]
    fn cross_category_names_both() {
        assert_eq!(
            conv(1.0, "kg", "meters").unwrap_err(),
            "cannot convert kg (mass) to m (length): both units must measure the same kind of quantity"
        );
        assert!(conv(1.0, "C", "s")
            .unwrap_err()
            .contains("(temperature) to s (time)"));
    }

    #[test]
    fn unknown_unit() {
        let err = conv(1.0, "km", "furlong").unwrap_err();
        assert!(err.starts_with("unknown unit 'furlong'; known units:"));
    }

    #[test]
    fn overflow_is_an_error() {
        assert!(conv(1e308, "t", "mg").unwrap_err().contains("too large"));
    }

    #[test]
    fn args_decode_from_json() {
        let args: Args =
            serde_json::from_value(json!({"value": 5, "from": "km", "to": "mi"})).unwrap();
        assert_eq!(args.value, 5.0);
        assert!(
            serde_json::from_value::<Args>(json!({"value": "5", "from": "km", "to": "mi"}))
                .is_err()
        );
    }
}
