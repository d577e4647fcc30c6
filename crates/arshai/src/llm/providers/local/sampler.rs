//! Picking the next token: greedy, or temperature with optional top-p; and when to stop.

use candle_core::Tensor;
use candle_transformers::generation::{LogitsProcessor, Sampling as Strategy};

use crate::llm::Sampling;

/// Chooses each next token from the model's logits.
pub(crate) struct Sampler {
    processor: LogitsProcessor,
    stop_ids: Vec<u32>,
}

impl Sampler {
    /// Greedy when `sampling.temperature` is unset or zero (deterministic); otherwise
    /// temperature sampling, restricted to the top-p mass when `top_p` is below 1.
    /// Generation stops at any of `stop_ids` (`<|im_end|>` and the end-of-text token).
    pub(crate) fn new(sampling: &Sampling, seed: u64, stop_ids: Vec<u32>) -> Self {
        Self {
            processor: LogitsProcessor::from_sampling(seed, strategy(sampling)),
            stop_ids,
        }
    }

    /// The next token id.
    pub(crate) fn sample(&mut self, logits: &Tensor) -> candle_core::Result<u32> {
        self.processor.sample(logits)
    }

    /// Whether `id` ends the answer.
    pub(crate) fn is_stop(&self, id: u32) -> bool {
        self.stop_ids.contains(&id)
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

    fn logits(values: &[f32]) -> Tensor {
        Tensor::new(values, &candle_core::Device::Cpu).expect("tensor")
    }

    #[test]
    fn unset_or_zero_temperature_is_greedy() {
        for temperature in [None, Some(0.0)] {
            let sampling = Sampling {
                temperature,
                ..Sampling::default()
            };
            let mut sampler = Sampler::new(&sampling, 7, vec![]);
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
        let mut sampler = Sampler::new(&sampling, 1, vec![]);
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
        let mut sampler = Sampler::new(&sampling, 3, vec![]);
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
        let sampler = Sampler::new(&Sampling::default(), 0, vec![2, 0]);
        assert!(sampler.is_stop(2));
        assert!(sampler.is_stop(0));
        assert!(!sampler.is_stop(5));
    }
}
