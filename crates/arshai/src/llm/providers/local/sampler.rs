//! Picking the next token: greedy, or temperature with optional top-p; OpenAI's
//! `logit_bias` and presence / frequency penalties on the logits first; optionally only
//! among the tokens a grammar accepts; and when to stop.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling as Strategy};

use crate::llm::Sampling;

/// Draws tried under temperature sampling before a constrained pick falls back to the
/// accepted token of highest logit.
const SAMPLED_TRIES: usize = 8;

/// Why `logit_bias` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("logit_bias key {key:?} is not a token id of the local model (0 to {last})")]
pub(crate) struct BadTokenId {
    /// The key as the caller wrote it.
    pub(crate) key: String,
    /// The highest id of the vocabulary.
    pub(crate) last: usize,
}

/// `logit_bias` as token ids of a vocabulary of `vocab_size` ids.
pub(crate) fn logit_bias(
    sampling: &Sampling,
    vocab_size: usize,
) -> Result<Vec<(u32, f32)>, BadTokenId> {
    sampling
        .logit_bias
        .iter()
        .map(|(key, bias)| match key.trim().parse::<u32>() {
            Ok(id) if (id as usize) < vocab_size => Ok((id, *bias)),
            _ => Err(BadTokenId {
                key: key.clone(),
                last: vocab_size.saturating_sub(1),
            }),
        })
        .collect()
}

/// Chooses each next token from the model's logits.
pub(crate) struct Sampler {
    processor: LogitsProcessor,
    greedy: bool,
    stop_ids: Vec<u32>,
    bias: Vec<(u32, f32)>,
    presence_penalty: f32,
    frequency_penalty: f32,
    /// How often each generated token appeared (kept only when a penalty is set).
    counts: HashMap<u32, u32>,
}

impl Sampler {
    /// Greedy when `sampling.temperature` is unset or zero (deterministic); otherwise
    /// temperature sampling, restricted to the top-p mass when `top_p` is below 1.
    /// Generation stops at any of `stop_ids` (`<|im_end|>` and the end-of-text token).
    /// `bias` (from [`logit_bias`]) and the penalties of `sampling` shift the logits.
    pub(crate) fn new(
        sampling: &Sampling,
        seed: u64,
        stop_ids: Vec<u32>,
        bias: Vec<(u32, f32)>,
    ) -> Self {
        let strategy = strategy(sampling);
        Self {
            greedy: matches!(strategy, Strategy::ArgMax),
            processor: LogitsProcessor::from_sampling(seed, strategy),
            stop_ids,
            bias,
            presence_penalty: sampling.presence_penalty.unwrap_or(0.0),
            frequency_penalty: sampling.frequency_penalty.unwrap_or(0.0),
            counts: HashMap::new(),
        }
    }

    /// The next token id.
    pub(crate) fn sample(&mut self, logits: &[f32]) -> candle_core::Result<u32> {
        let values = self.adjusted(logits)?;
        self.processor
            .sample(&Tensor::new(values.as_slice(), &Device::Cpu)?)
    }

    /// The next token id among those `accept` takes: the greedy order (highest logit
    /// first) or, with temperature, a few draws without replacement before that order.
    /// `None` when no token is accepted.
    pub(crate) fn sample_where(
        &mut self,
        logits: &[f32],
        accept: &mut dyn FnMut(u32) -> bool,
    ) -> candle_core::Result<Option<u32>> {
        let mut values = self.adjusted(logits)?;
        if !self.greedy {
            for _ in 0..SAMPLED_TRIES {
                let id = self
                    .processor
                    .sample(&Tensor::new(values.as_slice(), &Device::Cpu)?)?;
                if accept(id) {
                    return Ok(Some(id));
                }
                if let Some(value) = values.get_mut(id as usize) {
                    *value = f32::NEG_INFINITY;
                }
            }
        }
        let mut order: Vec<u32> = (0..values.len() as u32)
            .filter(|&id| values[id as usize] > f32::NEG_INFINITY)
            .collect();
        order.sort_unstable_by(|a, b| values[*b as usize].total_cmp(&values[*a as usize]));
        Ok(order.into_iter().find(|&id| accept(id)))
    }

    /// Notes that `id` was generated (for the penalties).
    pub(crate) fn record(&mut self, id: u32) {
        if self.presence_penalty != 0.0 || self.frequency_penalty != 0.0 {
            *self.counts.entry(id).or_default() += 1;
        }
    }

    /// Whether `id` ends the answer.
    pub(crate) fn is_stop(&self, id: u32) -> bool {
        self.stop_ids.contains(&id)
    }

    /// The logits with the bias added and, per generated token, OpenAI's penalties
    /// subtracted: `frequency_penalty * count + presence_penalty * (count > 0)`.
    fn adjusted(&self, logits: &[f32]) -> candle_core::Result<Vec<f32>> {
        let mut values = logits.to_vec();
        for &(id, bias) in &self.bias {
            if let Some(value) = values.get_mut(id as usize) {
                *value += bias;
            }
        }
        for (&id, &count) in &self.counts {
            if let Some(value) = values.get_mut(id as usize) {
                *value -= self.frequency_penalty * count as f32 + self.presence_penalty;
            }
        }
        Ok(values)
    }
}

fn strategy(sampling: &Sampling) -> Strategy {
    match sampling.temperature {
        Some(temperature) if temperature > 1e-6 => {
            let temperature = f64::from(temperature);
            match sampling.top_p {
                Some(p) if p > 0.0 && p < 1.0 => Strategy::TopP {
                    p: f64::from(p),
                    temperature,
                },
                _ => Strategy::All { temperature },
            }
        }
        _ => Strategy::ArgMax,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits(values: &[f32]) -> Vec<f32> {
        values.to_vec()
    }

    fn sampler(sampling: &Sampling, seed: u64) -> Sampler {
        Sampler::new(sampling, seed, vec![], vec![])
    }

    #[test]
    fn unset_or_zero_temperature_is_greedy() {
        for temperature in [None, Some(0.0)] {
            let sampling = Sampling {
                temperature,
                ..Sampling::default()
            };
            let mut sampler = sampler(&sampling, 7);
            assert_eq!(
                sampler.sample(&logits(&[0.1, 3.0, 2.9])).expect("sample"),
                1
            );
        }
    }

    #[test]
    fn tiny_top_p_keeps_only_the_most_likely_token() {
        let sampling = Sampling {
            temperature: Some(1.0),
            top_p: Some(0.01),
            ..Sampling::default()
        };
        let mut sampler = sampler(&sampling, 1);
        for _ in 0..20 {
            assert_eq!(
                sampler.sample(&logits(&[0.0, 5.0, 1.0])).expect("sample"),
                1
            );
        }
    }

    #[test]
    fn high_temperature_explores_several_tokens() {
        let sampling = Sampling {
            temperature: Some(2.0),
            ..Sampling::default()
        };
        let mut sampler = sampler(&sampling, 3);
        let seen: std::collections::HashSet<u32> = (0..200)
            .map(|_| {
                sampler
                    .sample(&logits(&[1.0, 1.0, 1.0, 1.0]))
                    .expect("sample")
            })
            .collect();
        assert!(
            seen.len() > 1,
            "only {seen:?} sampled from a flat distribution"
        );
    }

    #[test]
    fn stop_ids_end_the_answer() {
        let sampler = Sampler::new(&Sampling::default(), 0, vec![2, 0], vec![]);
        assert!(sampler.is_stop(2));
        assert!(sampler.is_stop(0));
        assert!(!sampler.is_stop(5));
    }

    #[test]
    fn logit_bias_shifts_the_choice_and_bad_ids_are_refused() {
        let mut sampling = Sampling::default();
        sampling.logit_bias.insert("1".to_owned(), -100.0);
        sampling.logit_bias.insert("0".to_owned(), 3.0);
        let bias = logit_bias(&sampling, 3).expect("valid ids");
        let mut biased = Sampler::new(&sampling, 0, vec![], bias);
        // 0.1 + 3 beats 2.9; 3.0 - 100 is out.
        assert_eq!(biased.sample(&logits(&[0.1, 3.0, 2.9])).expect("sample"), 0);
        for key in ["3", "-1", "x"] {
            let mut bad = Sampling::default();
            bad.logit_bias.insert(key.to_owned(), 1.0);
            let error = logit_bias(&bad, 3).expect_err("refused");
            assert!(error.to_string().contains(key), "{error}");
        }
    }

    #[test]
    fn penalties_follow_openais_formula_over_generated_tokens() {
        let sampling = Sampling {
            presence_penalty: Some(0.5),
            frequency_penalty: Some(1.0),
            ..Sampling::default()
        };
        let mut sampler = sampler(&sampling, 0);
        let raw = logits(&[5.0, 4.0, 1.0]);
        assert_eq!(sampler.adjusted(&raw).expect("adjusted"), [5.0, 4.0, 1.0]);
        sampler.record(0);
        // 5 - (1.0 * 1 + 0.5) = 3.5: token 1 now wins.
        assert_eq!(sampler.adjusted(&raw).expect("adjusted"), [3.5, 4.0, 1.0]);
        assert_eq!(sampler.sample(&raw).expect("sample"), 1);
        sampler.record(0);
        sampler.record(1);
        assert_eq!(sampler.adjusted(&raw).expect("adjusted"), [2.5, 2.5, 1.0]);
        // Without penalties nothing is counted or changed.
        let mut plain = Sampler::new(&Sampling::default(), 0, vec![], vec![]);
        plain.record(0);
        assert_eq!(plain.sample(&raw).expect("sample"), 0);
    }

    #[test]
    fn a_constrained_pick_takes_the_best_accepted_token() {
        let raw = logits(&[5.0, 4.0, 3.0, 2.0]);
        let mut greedy = sampler(&Sampling::default(), 0);
        let mut asked = Vec::new();
        let picked = greedy
            .sample_where(&raw, &mut |id| {
                asked.push(id);
                id >= 2
            })
            .expect("sample");
        assert_eq!(picked, Some(2));
        assert_eq!(
            asked,
            [0, 1, 2],
            "descending logit order, stopping at the first fit"
        );
        assert_eq!(
            greedy.sample_where(&raw, &mut |_| false).expect("sample"),
            None
        );
        let hot = Sampling {
            temperature: Some(1.0),
            ..Sampling::default()
        };
        let mut sampled = sampler(&hot, 9);
        for _ in 0..20 {
            let picked = sampled
                .sample_where(&raw, &mut |id| id % 2 == 1)
                .expect("sample");
            assert!(matches!(picked, Some(1 | 3)), "{picked:?}");
        }
    }
}
