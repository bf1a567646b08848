//! `calculator`: evaluates an arithmetic expression, e.g. `{"expression": "2+3*4"}` → `{"value": 14}`.
//!
//! The binary only wires the tool function to the guest contract; the logic lives in the modules
//! so it is tested natively.

mod eval;
mod lexer;
mod tool;

fn main() {
    guest::run(tool::calculate)
}
