//! Turning generated token ids into text deltas as they arrive.
//!
//! A token may hold part of a multi-byte character; decoding it alone gives U+FFFD. So the
//! accumulated ids are decoded each time and only the new suffix is emitted, holding it back
//! while the text ends in U+FFFD (the rest of the character is still to come).

use super::tokenizer::{ChatTokenizer, TokenizerError};

/// The text generated so far and how much of it the caller has seen.
#[derive(Default)]
pub(crate) struct TextStream {
    ids: Vec<u32>,
    emitted: usize,
}

impl TextStream {
    /// Adds one generated token; returns the text that became final, if any.
    pub(crate) fn push(
        &mut self,
        tokenizer: &ChatTokenizer,
        id: u32,
    ) -> Result<Option<String>, TokenizerError> {
        self.ids.push(id);
        let text = tokenizer.decode(&self.ids)?;
        if text.ends_with('\u{FFFD}') {
            return Ok(None);
        }
        Ok(self.take_new(text))
    }

    /// Whatever is still held back when generation ends (a character the model never
    /// completed comes out as U+FFFD, as any decoder would show it).
    pub(crate) fn finish(
        &mut self,
        tokenizer: &ChatTokenizer,
    ) -> Result<Option<String>, TokenizerError> {
        let text = tokenizer.decode(&self.ids)?;
        Ok(self.take_new(text))
    }

    /// How many tokens were generated.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    fn take_new(&mut self, text: String) -> Option<String> {
        if text.len() <= self.emitted || !text.is_char_boundary(self.emitted) {
            return None;
        }
        let delta = text[self.emitted..].to_owned();
        self.emitted = text.len();
        Some(delta)
    }
}
