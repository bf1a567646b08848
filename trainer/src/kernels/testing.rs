//! Test support shared by the custom ops: each is checked against the composed candle ops it
//! replaces, in value and in gradient.

use candle_core::{Tensor, Var};

/// Whether two float slices are equal bit for bit (the kernels that promise the bits of what
/// they replace are tested with this, not with a tolerance).
pub(crate) fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Largest absolute difference between two tensors of the same shape.
pub(crate) fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.max_all())
        .and_then(|d| d.to_dtype(candle_core::DType::F64))
        .and_then(|d| d.to_scalar::<f64>())
        .expect("difference of two tensors")
}

/// Asserts that `ours` equals `reference` within `value_tol`, and that the loss
/// `sum(out * weight)` gives every variable in `vars` the same gradient through both, within
/// `grad_tol`.
pub(crate) fn assert_same_values_and_gradients(
    ours: Tensor,
    reference: Tensor,
    weight: &Tensor,
    vars: &[&Var],
    value_tol: f64,
    grad_tol: f64,
) {
    let d = max_abs_diff(&ours, &reference);
    assert!(d < value_tol, "values differ by {d}");
    let loss = |out: Tensor| {
        (out * weight)
            .and_then(|t| t.sum_all())
            .and_then(|t| t.backward())
            .expect("backward")
    };
    let (g1, g2) = (loss(ours), loss(reference));
    for v in vars {
        let (a, b) = (
            g1.get(v.as_tensor()).expect("gradient through ours"),
            g2.get(v.as_tensor())
                .expect("gradient through the reference"),
        );
        let d = max_abs_diff(a, b);
        assert!(d < grad_tol, "gradients differ by {d}");
    }
}
