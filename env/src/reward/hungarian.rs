//! Optimal assignment (Hungarian / Kuhn–Munkres) of predicted calls to ground-truth calls.
//!
//! A departure from the paper, used only when asked for: the reference pairs greedily, ground-truth
//! call by ground-truth call, which can give a call's best candidate away to an earlier call that
//! needed it less. Sizes are a handful of calls, so the O(n³) textbook form is plenty.

/// Pairs `(row, column, weight)` maximising the total weight, each row and column used at most
/// once; only pairs of positive weight are returned, in row order.
pub fn max_weight_assignment(weights: &[Vec<f64>]) -> Vec<(usize, usize, f64)> {
    let rows = weights.len();
    let cols = weights.iter().map(Vec::len).max().unwrap_or(0);
    let n = rows.max(cols);
    if n == 0 {
        return Vec::new();
    }
    // Minimise the negated weights over a square matrix padded with zeros (1-based, as in the
    // classic potentials formulation).
    let cost = |i: usize, j: usize| -> f64 {
        -weights
            .get(i - 1)
            .and_then(|r| r.get(j - 1))
            .copied()
            .filter(|w| w.is_finite())
            .unwrap_or(0.0)
    };
    let mut u = vec![0.0; n + 1];
    let mut v = vec![0.0; n + 1];
    let mut owner = vec![0usize; n + 1]; // owner[j]: the row assigned to column j
    let mut way = vec![0usize; n + 1];
    for i in 1..=n {
        owner[0] = i;
        let mut j0 = 0;
        let mut min_to = vec![f64::INFINITY; n + 1];
        let mut done = vec![false; n + 1];
        loop {
            done[j0] = true;
            let i0 = owner[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0;
            for j in 1..=n {
                if done[j] {
                    continue;
                }
                let reduced = cost(i0, j) - u[i0] - v[j];
                if reduced < min_to[j] {
                    min_to[j] = reduced;
                    way[j] = j0;
                }
                if min_to[j] < delta {
                    delta = min_to[j];
                    j1 = j;
                }
            }
            for j in 0..=n {
                if done[j] {
                    u[owner[j]] += delta;
                    v[j] -= delta;
                } else {
                    min_to[j] -= delta;
                }
            }
            j0 = j1;
            if owner[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            owner[j0] = owner[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut pairs: Vec<(usize, usize, f64)> = (1..=n)
        .filter(|&j| owner[j] >= 1 && owner[j] <= rows && j <= cols)
        .map(|j| (owner[j] - 1, j - 1, -cost(owner[j], j)))
        .filter(|&(_, _, w)| w > 0.0)
        .collect();
    pairs.sort_by_key(|&(i, _, _)| i);
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(w: &[Vec<f64>]) -> f64 {
        max_weight_assignment(w).iter().map(|p| p.2).sum()
    }

    #[test]
    fn beats_greedy() {
        let w = vec![vec![1.5, 1.0], vec![3.0, 0.5]];
        assert_eq!(max_weight_assignment(&w), vec![(0, 1, 1.0), (1, 0, 3.0)]);
    }

    #[test]
    fn rectangular_and_empty() {
        assert_eq!(total(&[vec![0.0, 2.0, 1.0]]), 2.0);
        assert_eq!(total(&[vec![2.0], vec![3.0], vec![1.0]]), 3.0);
        assert!(max_weight_assignment(&[]).is_empty());
        assert!(max_weight_assignment(&[vec![0.0, 0.0]]).is_empty());
    }

    #[test]
    fn matches_brute_force_on_small_matrices() {
        // Deterministic pseudo-random 4x4 matrices against all 24 permutations.
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) % 7) as f64
        };
        for _ in 0..50 {
            let w: Vec<Vec<f64>> = (0..4).map(|_| (0..4).map(|_| next()).collect()).collect();
            let mut best = 0.0f64;
            let mut perm = [0usize, 1, 2, 3];
            permute(&mut perm, 0, &mut |p| {
                best = best.max((0..4).map(|i| w[i][p[i]]).sum());
            });
            assert_eq!(total(&w), best);
        }
    }

    fn permute(p: &mut [usize; 4], k: usize, f: &mut dyn FnMut(&[usize; 4])) {
        if k == p.len() {
            f(p);
            return;
        }
        for i in k..p.len() {
            p.swap(k, i);
            permute(p, k + 1, f);
            p.swap(k, i);
        }
    }
}
