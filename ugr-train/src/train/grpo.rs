//! The per-group formulas of the UGR reinforcement stage (the UGR method, arXiv 2602.11719,
//! section 2), on plain numbers: rewards (binary, rank, uncertainty-weighted), group
//! advantages, the difficulty weight `alpha`, and the confidence-alignment loss.
//!
//! The training loop ([`super::rl`]) feeds these with one rollout group:
//! the G beams of ugr-core's search, best first, their scores `s_k` (mean token log-prob)
//! and which of them are correct (SID equal to the target's SID, so colliding items all
//! count). The confidence loss is returned as weighted pairs so that the same numbers
//! drive the differentiable candle version: `L_conf = sum w * softplus(c_i - c_j)`.
//!
//! ```
//! use ugr_train::train::grpo::{advantages, rewards, Reward};
//! // Four beams, the second is the target.
//! let r = rewards(Reward::Uncertainty { tau: 1.0 }, &[-0.5, -0.9, -1.2, -3.0], &[false, true, false, false]);
//! assert_eq!(r[1], 1.0);
//! assert!((r[0] + r[2] + r[3] + 1.0).abs() < 1e-6); // penalties sum to -1
//! assert!(r[0] < r[2] && r[2] < r[3]);               // the most confident error is hit hardest
//! let a = advantages(&r);
//! assert!(a[1] > 0.0 && a[0] < 0.0);
//! ```

/// The reward of a rollout group.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reward {
    /// 1 for a correct beam, 0 otherwise.
    Binary,
    /// MiniOneRec's rank reward: the wrong beam at rank `i` (0-based, among all G) gets
    /// `-(1 / log2(i + 2)) / sum_{j wrong} 1 / log2(j + 2)`; correct beams 1.
    Rank,
    /// UGR: the wrong beam `k` gets `-exp(s_k / tau) / sum_{j wrong} exp(s_j / tau)`;
    /// correct beams 1.
    Uncertainty {
        /// Temperature (reference 1).
        tau: f32,
    },
}

/// Rewards of one group (beams best first). A group without a correct beam gets 0
/// everywhere (no policy gradient), whatever the reward.
pub fn rewards(kind: Reward, scores: &[f32], correct: &[bool]) -> Vec<f32> {
    assert_eq!(scores.len(), correct.len(), "one score and one flag per beam");
    let g = scores.len();
    if !correct.iter().any(|&c| c) {
        return vec![0.0; g];
    }
    let mut r: Vec<f32> = correct.iter().map(|&c| if c { 1.0 } else { 0.0 }).collect();
    let wrong: Vec<usize> = (0..g).filter(|&k| !correct[k]).collect();
    if wrong.is_empty() {
        return r;
    }
    let weights: Vec<f64> = match kind {
        Reward::Binary => return r,
        Reward::Rank => wrong.iter().map(|&i| 1.0 / ((i + 2) as f64).log2()).collect(),
        Reward::Uncertainty { tau } => {
            // exp(s / tau) normalised over the wrong beams, computed stably.
            let tau = f64::from(tau);
            let top = wrong
                .iter()
                .map(|&k| f64::from(scores[k]) / tau)
                .fold(f64::NEG_INFINITY, f64::max);
            wrong
                .iter()
                .map(|&k| (f64::from(scores[k]) / tau - top).exp())
                .collect()
        }
    };
    let total: f64 = weights.iter().sum();
    for (&k, w) in wrong.iter().zip(&weights) {
        r[k] = -(w / total) as f32;
    }
    r
}

/// Group-normalised advantages `A_k = (r_k - mean(r)) / (std(r) + 1e-4)`, with the standard
/// deviation's Bessel correction (`n - 1`; a single beam has std 0).
pub fn advantages(rewards: &[f32]) -> Vec<f32> {
    let n = rewards.len();
    if n == 0 {
        return Vec::new();
    }
    let mean = rewards.iter().map(|&r| f64::from(r)).sum::<f64>() / n as f64;
    let var = if n > 1 {
        rewards
            .iter()
            .map(|&r| (f64::from(r) - mean).powi(2))
            .sum::<f64>()
            / (n - 1) as f64
    } else {
        0.0
    };
    let denom = var.sqrt() + 1e-4;
    rewards
        .iter()
        .map(|&r| ((f64::from(r) - mean) / denom) as f32)
        .collect()
}

/// The difficulty weight of a group's policy loss: `alpha_min + (1 - alpha_min) * rho /
/// (G - 1)` where `rho` is the rank of the first correct beam (higher = harder), and 1 when
/// no beam is correct. With a single beam (`G = 1`) `rho / (G - 1)` is taken as 0.
pub fn difficulty_weight(correct: &[bool], alpha_min: f32) -> f32 {
    let g = correct.len();
    match correct.iter().position(|&c| c) {
        None => 1.0,
        Some(_) if g < 2 => alpha_min,
        Some(rho) => alpha_min + (1.0 - alpha_min) * rho as f32 / (g - 1) as f32,
    }
}

/// The class of a beam relative to the target, for confidence alignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BeamClass {
    /// The target (SID equal to the target's).
    Gt,
    /// Wrong, but its first SID token equals the target's.
    Partial,
    /// Wrong, with another first token.
    Wrong,
}

/// Classifies each beam by its SID codes against the target's.
pub fn classify(beams: &[&[u16]], target: &[u16]) -> Vec<BeamClass> {
    beams
        .iter()
        .map(|b| {
            if *b == target {
                BeamClass::Gt
            } else if b.first() == target.first() {
                BeamClass::Partial
            } else {
                BeamClass::Wrong
            }
        })
        .collect()
}

/// Weights of the confidence-alignment loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConfidenceWeights {
    /// `lambda_p`: partial beams below the target (reference 0).
    pub partial: f32,
    /// `lambda_w`: wrong beams below the target (reference 0.5).
    pub wrong: f32,
    /// `lambda_pw`: wrong beams below partial ones (the hierarchical term; reference 0).
    pub wrong_below_partial: f32,
}

impl Default for ConfidenceWeights {
    fn default() -> Self {
        ConfidenceWeights {
            partial: 0.0,
            wrong: 0.5,
            wrong_below_partial: 0.0,
        }
    }
}

/// The confidence loss as weighted pairs `(i, j, w)`, meaning `w * softplus(c_i - c_j)`:
///
/// `L_conf = lambda_p * mean_{partial} softplus(c_k - c_gt) + lambda_w * mean_{wrong}
/// softplus(c_k - c_gt) + lambda_pw * mean_{(wrong, partial)} softplus(c_wrong - c_partial)`.
///
/// Empty when the group holds no target (no confidence loss then). With several `Gt` beams
/// (colliding items of the target's SID), the first one is the reference `c_gt`; the others
/// are neither pushed up nor down.
pub fn confidence_pairs(classes: &[BeamClass], w: &ConfidenceWeights) -> Vec<(usize, usize, f32)> {
    let Some(gt) = classes.iter().position(|&c| c == BeamClass::Gt) else {
        return Vec::new();
    };
    let of = |class| -> Vec<usize> { (0..classes.len()).filter(|&k| classes[k] == class).collect() };
    let (partial, wrong) = (of(BeamClass::Partial), of(BeamClass::Wrong));
    let mut pairs = Vec::new();
    let mut push = |members: &[usize], lambda: f32, reference: &dyn Fn(usize) -> Vec<usize>| {
        let all: Vec<(usize, usize)> = members
            .iter()
            .flat_map(|&k| reference(k).into_iter().map(move |j| (k, j)))
            .collect();
        if lambda != 0.0 && !all.is_empty() {
            let each = lambda / all.len() as f32;
            pairs.extend(all.into_iter().map(|(k, j)| (k, j, each)));
        }
    };
    push(&partial, w.partial, &|_| vec![gt]);
    push(&wrong, w.wrong, &|_| vec![gt]);
    push(&wrong, w.wrong_below_partial, &|_| partial.clone());
    pairs
}

/// `sum w * softplus(c_i - c_j)` over the pairs, on plain numbers (the tests' and the logs'
/// value of the loss the trainer differentiates).
pub fn confidence_loss(confidence: &[f32], pairs: &[(usize, usize, f32)]) -> f32 {
    let softplus = |x: f32| if x > 20.0 { x } else { x.exp().ln_1p() };
    pairs
        .iter()
        .map(|&(i, j, w)| w * softplus(confidence[i] - confidence[j]))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-5
    }

    #[test]
    fn rewards_by_hand() {
        let s = [-0.2f32, -0.7, -1.0, -2.0];
        let c = [false, false, true, false];
        assert_eq!(rewards(Reward::Binary, &s, &c), vec![0.0, 0.0, 1.0, 0.0]);
        // Rank: wrong ranks 0, 1, 3 -> 1/log2(2) = 1, 1/log2(3) = 0.63093, 1/log2(5) = 0.43068.
        let z = 1.0 + 0.630_93 + 0.430_68;
        let r = rewards(Reward::Rank, &s, &c);
        assert!(
            close(r[0], -1.0 / z) && close(r[1], -0.630_93 / z) && close(r[3], -0.430_68 / z),
            "{r:?}"
        );
        assert_eq!(r[2], 1.0);
        // Uncertainty, tau 1: exp(-0.2), exp(-0.7), exp(-2.0) = 0.81873, 0.49659, 0.13534.
        let z = 0.818_73 + 0.496_59 + 0.135_34;
        let r = rewards(Reward::Uncertainty { tau: 1.0 }, &s, &c);
        assert!(close(r[0], -0.818_73 / z) && close(r[1], -0.496_59 / z) && close(r[3], -0.135_34 / z));
        // tau 0.5 sharpens: exp(-0.4), exp(-1.4), exp(-4.0).
        let z = 0.670_32 + 0.246_60 + 0.018_32;
        let r = rewards(Reward::Uncertainty { tau: 0.5 }, &s, &c);
        assert!(close(r[0], -0.670_32 / z), "{r:?}");
    }

    #[test]
    fn all_miss_groups_and_all_correct_groups() {
        let s = [-0.1f32, -0.5, -0.9];
        for kind in [Reward::Binary, Reward::Rank, Reward::Uncertainty { tau: 1.0 }] {
            assert_eq!(rewards(kind, &s, &[false; 3]), vec![0.0; 3]);
            assert_eq!(advantages(&rewards(kind, &s, &[false; 3])), vec![0.0; 3]);
            assert_eq!(rewards(kind, &s, &[true; 3]), vec![1.0; 3]);
        }
        assert_eq!(difficulty_weight(&[false; 3], 0.1), 1.0);
    }

    #[test]
    fn sid_collisions_make_several_beams_correct() {
        // Beams 1 and 2 are two items of the target's SID.
        let c = [false, true, true, false];
        let r = rewards(Reward::Uncertainty { tau: 1.0 }, &[-0.3, -0.4, -0.4, -1.0], &c);
        assert_eq!((r[1], r[2]), (1.0, 1.0));
        let z = (-0.3f32).exp() + (-1.0f32).exp();
        assert!(close(r[0], -(-0.3f32).exp() / z) && close(r[3], -(-1.0f32).exp() / z));
        // The difficulty is the first correct beam's rank.
        assert!(close(difficulty_weight(&c, 0.0), 1.0 / 3.0));
        let classes = classify(&[&[1, 2], &[3, 4], &[3, 4], &[3, 9]], &[3, 4]);
        assert_eq!(
            classes,
            vec![BeamClass::Wrong, BeamClass::Gt, BeamClass::Gt, BeamClass::Partial]
        );
    }

    #[test]
    fn advantages_by_hand() {
        // r = (1, 0, 0, 0): mean 0.25, sample std sqrt(0.25) = 0.5.
        let a = advantages(&[1.0, 0.0, 0.0, 0.0]);
        assert!(close(a[0], 0.75 / 0.5001) && close(a[1], -0.25 / 0.5001), "{a:?}");
        // r = (1, -0.5, -0.5): mean 0, sample std sqrt((1 + 0.25 + 0.25) / 2) = 0.866025.
        let a = advantages(&[1.0, -0.5, -0.5]);
        assert!(
            close(a[0], 1.0 / 0.866_125) && close(a[2], -0.5 / 0.866_125),
            "{a:?}"
        );
        assert_eq!(advantages(&[0.7]), vec![0.0]);
        assert!(advantages(&[]).is_empty());
    }

    #[test]
    fn difficulty_weight_by_hand() {
        let at = |rank: usize| {
            let mut c = vec![false; 16];
            c[rank] = true;
            c
        };
        assert_eq!(difficulty_weight(&at(0), 0.0), 0.0); // solved prompts get no policy gradient
        assert!(close(difficulty_weight(&at(0), 0.1), 0.1));
        assert!(close(difficulty_weight(&at(15), 0.1), 1.0));
        assert!(close(difficulty_weight(&at(5), 0.1), 0.1 + 0.9 * 5.0 / 15.0));
        assert_eq!(difficulty_weight(&[true], 0.3), 0.3);
    }

    #[test]
    fn confidence_loss_by_hand() {
        use BeamClass::*;
        let classes = [Partial, Gt, Wrong, Wrong, Partial];
        let c = [0.6f32, 0.5, 0.9, 0.1, 0.2];
        let sp = |x: f32| x.exp().ln_1p();
        // Reference weights: lambda_w 0.5 over the two wrong beams only.
        let pairs = confidence_pairs(&classes, &ConfidenceWeights::default());
        assert_eq!(pairs, vec![(2, 1, 0.25), (3, 1, 0.25)]);
        let want = 0.25 * sp(0.9 - 0.5) + 0.25 * sp(0.1 - 0.5);
        assert!(close(confidence_loss(&c, &pairs), want));
        // Every term: partial 0.2 (2 beams), wrong 0.5 (2 beams), wrong-below-partial 1.0 (4 pairs).
        let w = ConfidenceWeights {
            partial: 0.2,
            wrong: 0.5,
            wrong_below_partial: 1.0,
        };
        let pairs = confidence_pairs(&classes, &w);
        let want = 0.1 * (sp(0.6 - 0.5) + sp(0.2 - 0.5))
            + 0.25 * (sp(0.9 - 0.5) + sp(0.1 - 0.5))
            + 0.25 * (sp(0.9 - 0.6) + sp(0.9 - 0.2) + sp(0.1 - 0.6) + sp(0.1 - 0.2));
        assert!(close(confidence_loss(&c, &pairs), want), "{pairs:?}");
        // No target in the group: no loss.
        assert!(confidence_pairs(&[Wrong, Partial], &w).is_empty());
    }
}
