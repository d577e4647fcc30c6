//! The model's tokenizer, built from the GGUF metadata, and its ChatML chat format.

use std::sync::OnceLock;

use candle_core::quantized::gguf_file;
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use tokenizers::Tokenizer;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;

use super::token_bytes::TokenBytes;
use crate::llm::Role;

/// ChatML's turn opener.
pub(crate) const IM_START: &str = "<|im_start|>";
/// ChatML's turn terminator; the model emits it when its answer is complete.
pub(crate) const IM_END: &str = "<|im_end|>";

/// Why the tokenizer could not be built or used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TokenizerError {
    /// The GGUF metadata does not describe a tokenizer this module supports.
    #[error("the GGUF tokenizer is unsupported: {0}")]
    Unsupported(String),
    /// The tokenizers library failed.
    #[error("tokenizer failure: {0}")]
    Library(String),
}

/// Encodes text and ChatML turns to token ids and decodes ids back to text.
///
/// Two instances of the same tokenizer are kept: `text` treats special-token strings inside
/// message contents as plain text (so a user cannot forge a `<|im_start|>system` turn), and
/// `markup` parses them (used to check a rendered template against the frame built from ids).
pub(crate) struct ChatTokenizer {
    text: Tokenizer,
    markup: Tokenizer,
    im_start: u32,
    im_end: u32,
    newline: Vec<u32>,
    token_bytes: OnceLock<TokenBytes>,
}

impl ChatTokenizer {
    /// Builds the tokenizer described by the GGUF metadata and checks that the chat template
    /// is ChatML.
    pub(crate) fn from_gguf(content: &gguf_file::Content) -> Result<Self, TokenizerError> {
        let template = content
            .metadata
            .get("tokenizer.chat_template")
            .and_then(|value| value.to_string().ok())
            .ok_or_else(|| {
                TokenizerError::Unsupported("no tokenizer.chat_template in the metadata".into())
            })?;
        if !(template.contains(IM_START) && template.contains(IM_END)) {
            return Err(TokenizerError::Unsupported(
                "the chat template is not ChatML (<|im_start|> / <|im_end|>)".into(),
            ));
        }
        let mut markup = Tokenizer::from_gguf(content)
            .map_err(|error| TokenizerError::Library(error.to_string()))?;
        // candle does not know this file's pre-tokenizer tag (`smollm`) and falls back to
        // GPT-2's, which adds a prefix space. SmolLM2's own tokenizer.json splits digits one
        // by one, then applies byte-level without a prefix space.
        let pre: PreTokenizerWrapper = Sequence::new(vec![
            Digits::new(true).into(),
            ByteLevel::new(false, true, true).into(),
        ])
        .into();
        markup.with_pre_tokenizer(Some(pre));
        let mut text = markup.clone();
        text.set_encode_special_tokens(true);
        let id = |token: &str| {
            markup.token_to_id(token).ok_or_else(|| {
                TokenizerError::Unsupported(format!("the vocabulary has no {token} token"))
            })
        };
        let im_start = id(IM_START)?;
        let im_end = id(IM_END)?;
        let mut tokenizer = Self {
            text,
            markup,
            im_start,
            im_end,
            newline: Vec::new(),
            token_bytes: OnceLock::new(),
        };
        tokenizer.newline = tokenizer.encode("\n")?;
        Ok(tokenizer)
    }

    /// The ids that end an answer: `<|im_end|>`, and `<|endoftext|>` when the vocabulary
    /// has it.
    pub(crate) fn stop_ids(&self) -> Vec<u32> {
        let mut ids = vec![self.im_end];
        ids.extend(self.markup.token_to_id("<|endoftext|>"));
        ids
    }

    /// The bytes of every token, read from the vocabulary on first use.
    pub(crate) fn token_bytes(&self) -> &TokenBytes {
        self.token_bytes
            .get_or_init(|| TokenBytes::new(&self.markup))
    }

    /// How many token ids the vocabulary has (special tokens included).
    pub(crate) fn vocab_size(&self) -> usize {
        self.markup.get_vocab_size(true)
    }

    /// Encodes plain text; special-token strings inside it stay plain text.
    pub(crate) fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        encode_with(&self.text, text)
    }

    /// Decodes ids to text, leaving special tokens out.
    pub(crate) fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        self.markup
            .decode(ids, true)
            .map_err(|error| TokenizerError::Library(error.to_string()))
    }

    /// The ids of one ChatML turn: `<|im_start|>{role}\n{content}<|im_end|>\n`.
    pub(crate) fn turn(&self, role: Role, content: &str) -> Result<Vec<u32>, TokenizerError> {
        let mut ids = vec![self.im_start];
        ids.extend(self.encode(&format!("{}\n{content}", role.as_str()))?);
        ids.push(self.im_end);
        ids.extend_from_slice(&self.newline);
        Ok(ids)
    }

    /// The ids that open the assistant's answer: `<|im_start|>assistant\n`.
    pub(crate) fn answer_prefix(&self) -> Result<Vec<u32>, TokenizerError> {
        let mut ids = vec![self.im_start];
        ids.extend(self.encode("assistant\n")?);
        Ok(ids)
    }
}

fn encode_with(tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>, TokenizerError> {
    tokenizer
        .encode(text, false)
        .map(|encoding| encoding.get_ids().to_vec())
        .map_err(|error| TokenizerError::Library(error.to_string()))
}

/// Renders one ChatML turn as text, as the GGUF's chat template does.
#[cfg(test)]
pub(crate) fn render_turn(role: Role, content: &str) -> String {
    format!("{IM_START}{}\n{content}{IM_END}\n", role.as_str())
}

#[cfg(test)]
impl ChatTokenizer {
    /// Encodes text in which special-token strings (`<|im_start|>`) are parsed as such.
    pub(crate) fn encode_markup(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        encode_with(&self.markup, text)
    }

    /// Decodes ids keeping special tokens, to compare with a rendered template.
    pub(crate) fn decode_with_specials(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        self.markup
            .decode(ids, false)
            .map_err(|error| TokenizerError::Library(error.to_string()))
    }

    /// The id of `<|im_start|>`.
    pub(crate) fn im_start(&self) -> u32 {
        self.im_start
    }
}
