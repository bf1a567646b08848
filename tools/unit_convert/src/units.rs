//! The unit table: every supported unit, its category, how it maps to the category's base unit,
//! and the names a caller may use for it.

use std::fmt;

/// A kind of quantity; only units of the same category convert into each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// Base unit: metre.
    Length,
    /// Base unit: kilogram.
    Mass,
    /// Base unit: degree Celsius (not kelvin: the common C <-> F conversions then subtract the
    /// small offset 32 rather than 459.67, which keeps more digits).
    Temperature,
    /// Base unit: second.
    Time,
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Category::Length => "length",
            Category::Mass => "mass",
            Category::Temperature => "temperature",
            Category::Time => "time",
        })
    }
}

/// One unit: `base = (value + offset) * num / den`. The offset is non-zero only for
/// temperatures; `num / den` is kept as a ratio so that 5/9 and 9/5 stay exact until used.
#[derive(Debug, PartialEq)]
pub struct Unit {
    /// The canonical symbol reported back to the caller.
    pub symbol: &'static str,
    /// What the unit measures.
    pub category: Category,
    offset: f64,
    num: f64,
    den: f64,
    /// Other accepted names, normalized (the symbol itself is always accepted).
    aliases: &'static [&'static str],
}

impl Unit {
    /// Converts `value` in this unit to the category's base unit.
    pub fn to_base(&self, value: f64) -> f64 {
        (value + self.offset) * self.num / self.den
    }

    /// Converts `base`, in the category's base unit, to this unit.
    pub fn in_unit(&self, base: f64) -> f64 {
        let scaled = base * self.den / self.num;
        let value = scaled - self.offset;
        // Subtracting the offset cancels digits: -459.67 F -> K would give -5.7e-14, not 0.
        if self.offset != 0.0 && value.abs() <= 1e-12 * scaled.abs() {
            0.0
        } else {
            value
        }
    }
}

const fn unit(
    symbol: &'static str,
    category: Category,
    factor: f64,
    aliases: &'static [&'static str],
) -> Unit {
    Unit {
        symbol,
        category,
        offset: 0.0,
        num: factor,
        den: 1.0,
        aliases,
    }
}

use Category::{Length, Mass, Temperature, Time};

/// Absolute zero in the temperature base unit (degrees Celsius).
pub const ABSOLUTE_ZERO_C: f64 = -273.15;

/// Every supported unit, grouped by category in the order error messages list them.
/// Exact definitions: international yard and pound (1959), 1 nmi = 1852 m, 1 st = 14 lb,
/// 1 year = 365 days.
#[rustfmt::skip]
pub const UNITS: &[Unit] = &[
    unit("m", Length, 1.0, &["meter", "meters", "metre", "metres"]),
    unit("km", Length, 1000.0, &["kms", "kilometer", "kilometers", "kilometre", "kilometres"]),
    unit("cm", Length, 0.01, &["centimeter", "centimeters", "centimetre", "centimetres"]),
    unit("mm", Length, 0.001, &["millimeter", "millimeters", "millimetre", "millimetres"]),
    unit("mi", Length, 1609.344, &["mile", "miles"]),
    unit("yd", Length, 0.9144, &["yds", "yard", "yards"]),
    unit("ft", Length, 0.3048, &["foot", "feet"]),
    unit("in", Length, 0.0254, &["inch", "inches"]),
    unit("nmi", Length, 1852.0, &["nautical mile", "nautical miles"]),
    unit("kg", Mass, 1.0, &["kgs", "kilo", "kilos", "kilogram", "kilograms", "kilogramme", "kilogrammes"]),
    unit("g", Mass, 0.001, &["gram", "grams", "gramme", "grammes"]),
    unit("mg", Mass, 1e-6, &["milligram", "milligrams", "milligramme", "milligrammes"]),
    unit("lb", Mass, 0.453_592_37, &["lbs", "pound", "pounds"]),
    unit("oz", Mass, 0.028_349_523_125, &["ounce", "ounces"]),
    unit("t", Mass, 1000.0, &["tonne", "tonnes", "metric ton", "metric tons", "metric tonne", "metric tonnes"]),
    unit("st", Mass, 6.350_293_18, &["stone", "stones"]),
    Unit { symbol: "C", category: Temperature, offset: 0.0, num: 1.0, den: 1.0,
        aliases: &["celsius", "centigrade", "degree celsius", "degrees celsius", "deg c", "degc"] },
    Unit { symbol: "F", category: Temperature, offset: -32.0, num: 5.0, den: 9.0,
        aliases: &["fahrenheit", "degree fahrenheit", "degrees fahrenheit", "deg f", "degf"] },
    Unit { symbol: "K", category: Temperature, offset: ABSOLUTE_ZERO_C, num: 1.0, den: 1.0,
        aliases: &["kelvin", "kelvins", "degree kelvin", "degrees kelvin"] },
    unit("s", Time, 1.0, &["sec", "secs", "second", "seconds"]),
    unit("ms", Time, 0.001, &["msec", "millisecond", "milliseconds"]),
    unit("min", Time, 60.0, &["mins", "minute", "minutes"]),
    unit("h", Time, 3600.0, &["hr", "hrs", "hour", "hours"]),
    unit("day", Time, 86_400.0, &["d", "days"]),
    unit("week", Time, 604_800.0, &["wk", "wks", "weeks"]),
    unit("year", Time, 31_536_000.0, &["y", "yr", "yrs", "years"]),
];

/// Longest unit name looked up (and echoed in errors); the longest alias is far shorter.
const MAX_NAME: usize = 64;

/// Finds the unit called `name`: a symbol or alias, case-insensitive, ignoring degree signs,
/// a trailing '.', and treating '_' and '-' as spaces ("°C", "Nautical_Miles", "in.").
pub fn lookup(name: &str) -> Result<&'static Unit, String> {
    if name.chars().count() > MAX_NAME {
        return Err(format!(
            "unknown unit (a name over {MAX_NAME} characters); known units: {}",
            known_units()
        ));
    }
    let normalized = normalize(name);
    UNITS
        .iter()
        .find(|u| {
            u.symbol.eq_ignore_ascii_case(&normalized) || u.aliases.contains(&normalized.as_str())
        })
        .ok_or_else(|| format!("unknown unit '{name}'; known units: {}", known_units()))
}

fn normalize(name: &str) -> String {
    let name = name.replace('℃', "c").replace('℉', "f");
    let cleaned: String = name
        .chars()
        .filter(|c| !matches!(c, '°' | 'º'))
        .map(|c| if c == '_' || c == '-' { ' ' } else { c })
        .collect();
    let words: Vec<&str> = cleaned.split_whitespace().collect();
    let joined = words.join(" ").to_lowercase();
    joined.strip_suffix('.').unwrap_or(&joined).to_string()
}

/// The symbols, by category: "length: m, km, ...; mass: kg, ...".
pub fn known_units() -> String {
    let mut out = String::new();
    for category in [Length, Mass, Temperature, Time] {
        if !out.is_empty() {
            out.push_str("; ");
        }
        let symbols: Vec<&str> = UNITS
            .iter()
            .filter(|u| u.category == category)
            .map(|u| u.symbol)
            .collect();
        out.push_str(&format!("{category}: {}", symbols.join(", ")));
    }
    out + " (full names such as \"kilometers\", \"pounds\" or \"celsius\" also work)"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn symbol(name: &str) -> &'static str {
        lookup(name)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .symbol
    }

    #[test]
    fn symbols_and_aliases() {
        assert_eq!(symbol("km"), "km");
        assert_eq!(symbol("Kilometers"), "km");
        assert_eq!(symbol("  KILOMETRES "), "km");
        assert_eq!(symbol("celsius"), "C");
        assert_eq!(symbol("°C"), "C");
        assert_eq!(symbol("℉"), "F");
        assert_eq!(symbol("Degrees Fahrenheit"), "F");
        assert_eq!(symbol("k"), "K");
        assert_eq!(symbol("pounds"), "lb");
        assert_eq!(symbol("LBS"), "lb");
        assert_eq!(symbol("nautical_miles"), "nmi");
        assert_eq!(symbol("Nautical-Mile"), "nmi");
        assert_eq!(symbol("in."), "in");
        assert_eq!(symbol("metric tons"), "t");
        assert_eq!(symbol("Hours"), "h");
        assert_eq!(symbol("years"), "year");
    }

    #[test]
    fn every_name_is_unique() {
        let mut names: Vec<String> = UNITS
            .iter()
            .flat_map(|u| {
                std::iter::once(u.symbol.to_lowercase())
                    .chain(u.aliases.iter().map(|a| a.to_string()))
            })
            .collect();
        let total = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), total);
        for name in &names {
            assert_eq!(&normalize(name), name, "alias must be normalized");
        }
    }

    #[test]
    fn unknown_lists_known_units() {
        let err = lookup("parsec").unwrap_err();
        assert!(err.starts_with("unknown unit 'parsec'; known units: length: m, km, cm"));
        assert!(err.contains("temperature: C, F, K"));
        assert!(err.contains("time: s, ms, min, h, day, week, year"));
        assert!(lookup("").is_err());
        assert!(!lookup(&"x".repeat(10_000)).unwrap_err().contains("xxx"));
        assert!(lookup("ton").is_err(), "short vs long ton is ambiguous");
    }
}
