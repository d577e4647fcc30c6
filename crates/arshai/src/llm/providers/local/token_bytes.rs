//! The bytes each token of the vocabulary stands for, computed once per tokenizer, so that
//! constrained decoding can test a candidate token against the grammar without decoding.
//!
//! The vocabulary is byte-level BPE (GPT-2's scheme): each byte is written as one printable
//! character, and a token's string is the concatenation of its bytes' characters.

use std::collections::HashMap;

use tokenizers::Tokenizer;

/// Per token id, the bytes it decodes to; `None` for special tokens (`<|im_end|>`, …),
/// which never belong inside constrained text.
pub(crate) struct TokenBytes {
    bytes: Vec<Option<Box<[u8]>>>,
}

impl TokenBytes {
    /// Reads the whole vocabulary of `tokenizer`.
    pub(crate) fn new(tokenizer: &Tokenizer) -> Self {
        let characters = byte_characters();
        let special: Vec<u32> = tokenizer
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, token)| token.special)
            .map(|(id, _)| id)
            .collect();
        let size = tokenizer.get_vocab_size(true) as u32;
        let bytes = (0..size)
            .map(|id| {
                if special.contains(&id) {
                    return None;
                }
                let token = tokenizer.id_to_token(id)?;
                let bytes: Option<Vec<u8>> = token
                    .chars()
                    .map(|character| characters.get(&character).copied())
                    .collect();
                bytes
                    .filter(|bytes| !bytes.is_empty())
                    .map(Vec::into_boxed_slice)
            })
            .collect();
        Self { bytes }
    }

    /// The bytes of `id`, if it is an ordinary token.
    pub(crate) fn get(&self, id: u32) -> Option<&[u8]> {
        self.bytes.get(id as usize)?.as_deref()
    }

    /// How many ids the vocabulary has.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }
}

/// GPT-2's byte ↔ character table, inverted: printable Latin-1 bytes stand for themselves,
/// the others (control bytes, space, …) for U+0100 onwards, in byte order.
fn byte_characters() -> HashMap<char, u8> {
    let printable = |byte: u8| matches!(byte, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut next = 0x100u32;
    (0..=255u8)
        .map(|byte| {
            let character = if printable(byte) {
                char::from(byte)
            } else {
                let character = char::from_u32(next).unwrap_or(char::REPLACEMENT_CHARACTER);
                next += 1;
                character
            };
            (character, byte)
        })
        .collect()
}
