//! Backpropagation reaches every weight and agrees with finite differences (tiny f64 models).

use candle_core::{DType, Device, Tensor, Var};
use trainer::{Architecture, Model, ModelConfig};

fn tiny(arch: Architecture, tied: bool) -> Model {
    let mut config = ModelConfig::tiny(arch);
    config.tie_word_embeddings = tied;
    // std 0.02 makes a tiny model nearly uniform and its gradients tiny; std 0.3 keeps every
    // path of the network (attention, rotary, norms) numerically visible to the check.
    let weights = trainer::model::random_weights(&config, 42)
        .unwrap()
        .into_iter()
        .map(|(name, t)| {
            let t = if name.contains("norm") {
                t
            } else {
                (t * 15.0).unwrap()
            };
            (name, t)
        })
        .collect();
    Model::from_weights(config, weights, DType::F64, &Device::Cpu).unwrap()
}

/// A scalar that depends on every weight: weighted sum of the token log-probabilities of a
/// padded batch (the padding mask path is exercised too).
fn loss(model: &Model) -> Tensor {
    let ids = Tensor::new(
        &[[0u32, 5, 7, 1, 30, 2], [3, 9, 9, 27, 4, 11]],
        &Device::Cpu,
    )
    .unwrap();
    let mask = vec![vec![false, true, true, true, true, true], vec![true; 6]];
    let lp = model.token_logprobs(&ids, Some(&mask), 3).unwrap();
    let weights = Tensor::new(
        &[[0.0f64, 1.0, -0.5, 2.0, 0.3], [1.0, 0.7, -1.2, 0.4, 0.9]],
        &Device::Cpu,
    )
    .unwrap();
    (lp * weights).unwrap().sum_all().unwrap()
}

fn scalar(t: &Tensor) -> f64 {
    t.to_scalar::<f64>().unwrap()
}

#[test]
fn every_parameter_gets_a_nonzero_gradient() {
    for (arch, tied) in [(Architecture::Llama, true), (Architecture::Qwen2, false)] {
        let model = tiny(arch, tied);
        let grads = loss(&model).backward().unwrap();
        let vars = model.varmap().data().lock().unwrap();
        for (name, var) in vars.iter() {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{arch:?}: no gradient for {name}"));
            let norm = scalar(&g.sqr().unwrap().sum_all().unwrap());
            assert!(
                norm > 0.0 && norm.is_finite(),
                "{arch:?}: gradient of {name} has norm {norm}"
            );
        }
    }
}

fn perturbed(var: &Var, index: usize, delta: f64) -> Tensor {
    let shape = var.as_tensor().shape().clone();
    let mut data = var
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    data[index] += delta;
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}

#[test]
fn gradients_match_finite_differences() {
    for (arch, tied) in [(Architecture::Llama, true), (Architecture::Qwen2, false)] {
        let model = tiny(arch, tied);
        let grads = loss(&model).backward().unwrap();
        let vars: Vec<(String, Var)> = {
            let map = model.varmap().data().lock().unwrap();
            let mut v: Vec<_> = map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        let eps = 1e-6;
        let mut checked = 0;
        let mut visible = 0;
        for (name, var) in &vars {
            let grad = grads
                .get(var.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            let original = var.as_tensor().copy().unwrap();
            let n = grad.len();
            // A few spread-out elements per tensor keep the test fast.
            for index in [0, n / 3, (2 * n) / 3, n - 1] {
                var.set(&perturbed(var, index, eps)).unwrap();
                let plus = scalar(&loss(&model));
                var.set(&original).unwrap();
                var.set(&perturbed(var, index, -eps)).unwrap();
                let minus = scalar(&loss(&model));
                var.set(&original).unwrap();
                let numeric = (plus - minus) / (2.0 * eps);
                let analytic = grad[index];
                let tol = 1e-6 + 1e-4 * numeric.abs().max(analytic.abs());
                assert!(
                    (numeric - analytic).abs() <= tol,
                    "{arch:?} {name}[{index}]: analytic {analytic:e} vs numeric {numeric:e}"
                );
                checked += 1;
                if numeric.abs() > 1e-4 {
                    visible += 1;
                }
            }
        }
        assert!(checked >= vars.len() * 4);
        // Guard against a vacuous check where every derivative is ~0 and only tolerances pass.
        assert!(
            visible * 10 >= checked * 8,
            "{arch:?}: only {visible}/{checked} derivatives are visible"
        );
    }
}
