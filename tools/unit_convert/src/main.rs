//! `unit_convert`: converts a value between units of length, mass, temperature or time, e.g.
//! `{"value": 5, "from": "km", "to": "mi"}` → `{"value": 3.10685596118667, ...}`.
//!
//! The binary only wires the tool function to the guest contract; the logic lives in the modules
//! so it is tested natively.

mod tool;
mod units;

fn main() {
    guest::run(tool::convert)
}
