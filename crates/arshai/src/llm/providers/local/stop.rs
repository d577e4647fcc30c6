//! Stop sequences: the answer ends where one of them first appears, and none of it reaches
//! the caller. Text that could still be the start of a stop sequence is held back until the
//! next token shows it is not.

/// The text between the decoder and the caller while stop sequences are asked for.
pub(crate) struct StopFilter {
    sequences: Vec<String>,
    held: String,
}

/// What one piece of decoded text gives the caller.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Released {
    /// Text that is final: no stop sequence can begin in it.
    pub(crate) text: String,
    /// Whether a stop sequence was reached (the answer ends; `text` is what precedes it).
    pub(crate) stopped: bool,
}

impl StopFilter {
    /// A filter for `sequences` (empty ones are ignored: they would stop at once).
    pub(crate) fn new(sequences: &[String]) -> Self {
        Self {
            sequences: sequences
                .iter()
                .filter(|sequence| !sequence.is_empty())
                .cloned()
                .collect(),
            held: String::new(),
        }
    }

    /// Takes the next decoded `text`.
    pub(crate) fn push(&mut self, text: &str) -> Released {
        self.held.push_str(text);
        let first_stop = self
            .sequences
            .iter()
            .filter_map(|sequence| self.held.find(sequence.as_str()))
            .min();
        if let Some(at) = first_stop {
            self.held.truncate(at);
            return Released {
                text: std::mem::take(&mut self.held),
                stopped: true,
            };
        }
        let keep = self.longest_partial_suffix();
        let text = self.held[..self.held.len() - keep].to_owned();
        self.held.replace_range(..self.held.len() - keep, "");
        Released {
            text,
            stopped: false,
        }
    }

    /// What is still held when the answer ends without a stop sequence: it was none.
    pub(crate) fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// The length of the longest suffix of the held text that a stop sequence starts with.
    fn longest_partial_suffix(&self) -> usize {
        let held = self.held.as_str();
        (1..=held.len())
            .rev()
            .filter(|&length| held.is_char_boundary(held.len() - length))
            .find(|&length| {
                let suffix = &held[held.len() - length..];
                self.sequences
                    .iter()
                    .any(|sequence| sequence.len() > length && sequence.starts_with(suffix))
            })
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(sequences: &[&str], pieces: &[&str]) -> (Vec<String>, bool) {
        let sequences: Vec<String> = sequences.iter().map(|s| (*s).to_owned()).collect();
        let mut filter = StopFilter::new(&sequences);
        let mut out = Vec::new();
        for piece in pieces {
            let released = filter.push(piece);
            out.push(released.text);
            if released.stopped {
                return (out, true);
            }
        }
        out.push(filter.finish());
        (out, false)
    }

    #[test]
    fn a_stop_sequence_split_over_tokens_never_reaches_the_caller() {
        let (out, stopped) = run(&["END"], &["Hello E", "N", "D and more"]);
        assert!(stopped);
        assert_eq!(out, ["Hello ", "", ""]);
    }

    #[test]
    fn held_text_is_released_once_it_cannot_start_a_stop_sequence() {
        let (out, stopped) = run(&["END"], &["Hello E", "NX", " done"]);
        assert!(!stopped);
        assert_eq!(out.concat(), "Hello ENX done");
        assert_eq!(out[0], "Hello ", "the E waits");
        assert_eq!(out[1], "ENX");
    }

    #[test]
    fn the_earliest_of_several_sequences_wins_and_the_tail_is_flushed_at_the_end() {
        let (out, stopped) = run(&["world", "lo w"], &["hello world"]);
        assert!(stopped);
        assert_eq!(out, ["hel"]);
        let (out, stopped) = run(&["\n\n"], &["a\n"]);
        assert!(!stopped);
        assert_eq!(out, ["a", "\n"]);
    }

    #[test]
    fn multibyte_text_is_cut_on_character_boundaries() {
        let (out, stopped) = run(&["é!"], &["café", "é", "!"]);
        assert!(stopped);
        assert_eq!(out.concat(), "café");
        let (out, _) = run(&["ée"], &["日本é"]);
        assert_eq!(out, ["日本", "é"]);
    }
}
