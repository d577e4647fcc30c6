//! Log probabilities of the generated tokens, in OpenAI's `choices[].logprobs` shape, for
//! non-streamed answers (as the OpenAI provider returns them).
//!
//! Each entry is the model's own distribution at that step (log-softmax of its logits,
//! before temperature, bias and penalties) for the chosen token and the `top` most likely.

use serde_json::{Value, json};

use super::token_bytes::TokenBytes;

/// The entries collected during one generation.
pub(crate) struct Logprobs {
    top: usize,
    content: Vec<Value>,
}

impl Logprobs {
    /// Collects, per token, the chosen token and the `top` most likely alternatives.
    pub(crate) fn new(top: usize) -> Self {
        Self {
            top,
            content: Vec::new(),
        }
    }

    /// Records the step whose `logits` produced `chosen`.
    pub(crate) fn record(
        &mut self,
        logits: &[f32],
        chosen: u32,
        tokens: &TokenBytes,
    ) -> candle_core::Result<()> {
        let values = logits;
        let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let log_sum = values
            .iter()
            .map(|value| (value - max).exp())
            .sum::<f32>()
            .ln()
            + max;
        let entry = |id: u32| {
            let bytes = tokens.get(id).unwrap_or_default();
            let logprob = values
                .get(id as usize)
                .map_or(f32::NEG_INFINITY, |v| v - log_sum);
            json!({
                "token": String::from_utf8_lossy(bytes),
                "logprob": logprob,
                "bytes": bytes,
            })
        };
        let mut top: Vec<u32> = (0..values.len() as u32).collect();
        if self.top > 0 {
            let cut = self.top.min(top.len()) - 1;
            top.select_nth_unstable_by(cut, |a, b| {
                values[*b as usize].total_cmp(&values[*a as usize])
            });
        }
        top.truncate(self.top);
        top.sort_unstable_by(|a, b| values[*b as usize].total_cmp(&values[*a as usize]));
        let mut chosen_entry = entry(chosen);
        chosen_entry["top_logprobs"] = top.into_iter().map(entry).collect();
        self.content.push(chosen_entry);
        Ok(())
    }

    /// The `logprobs` object of the answer.
    pub(crate) fn into_value(self) -> Value {
        json!({ "content": self.content, "refusal": null })
    }
}
