//! A strict parser of server-sent event streams: it accepts only what the SSE grammar
//! allows and what a well-behaved server sends, and fails the test on anything else.
//!
//! Stricter than the spec on purpose: lines end with LF only, every field line is
//! `name: value` with one of the four known names, and the stream ends on a blank line.

/// One dispatched event (comment-only blocks are keep-alives and counted separately).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The `event:` field; `None` means the default `message`.
    pub event: Option<String>,
    /// The `data:` lines, joined with LF.
    pub data: String,
}

/// A parsed stream.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Events, in order.
    pub frames: Vec<Frame>,
    /// Comment-only blocks (keep-alives).
    pub comments: usize,
}

/// Parses a complete stream body; panics with the offending line on any violation.
pub fn parse_strict(body: &[u8]) -> Parsed {
    let text = std::str::from_utf8(body).expect("an SSE stream is UTF-8");
    assert!(
        !text.contains('\r'),
        "only LF line endings are expected: {text:?}"
    );
    assert!(
        text.is_empty() || text.ends_with("\n\n"),
        "the stream must end with a complete block: {text:?}"
    );
    let mut parsed = Parsed::default();
    // Every block ends with a blank line; the split leaves one empty tail.
    let blocks: Vec<&str> = text.split("\n\n").collect();
    for block in &blocks[..blocks.len().saturating_sub(1)] {
        assert!(
            !block.is_empty(),
            "an empty block (two blank lines) in {text:?}"
        );
        let mut event = None;
        let mut data: Vec<&str> = Vec::new();
        let mut comment_only = true;
        for line in block.split('\n') {
            if let Some(_comment) = line.strip_prefix(':') {
                continue;
            }
            comment_only = false;
            let (name, value) = line
                .split_once(": ")
                .unwrap_or_else(|| panic!("a field line must be `name: value`: {line:?}"));
            match name {
                "event" => {
                    assert!(event.is_none(), "two event fields in one block: {block:?}");
                    assert!(!value.is_empty(), "an empty event name: {block:?}");
                    event = Some(value.to_owned());
                }
                "data" => data.push(value),
                "id" | "retry" => {}
                other => panic!("unknown SSE field {other:?} in {block:?}"),
            }
        }
        if comment_only {
            parsed.comments += 1;
            continue;
        }
        assert!(!data.is_empty(), "an event without data: {block:?}");
        parsed.frames.push(Frame {
            event,
            data: data.join("\n"),
        });
    }
    parsed
}

#[test]
fn the_parser_is_strict() {
    let ok = parse_strict(b"event: a\ndata: {}\n\n: keep-alive\n\ndata: x\ndata: y\n\n");
    assert_eq!(ok.comments, 1);
    assert_eq!(ok.frames[1].data, "x\ny");
    for bad in [
        &b"data: x\n"[..],
        b"data: x\r\n\r\n",
        b"dta: x\n\n",
        b"data:x\n\n",
        b"event: a\n\n",
        b"data: x\n\n\n\n",
    ] {
        assert!(
            std::panic::catch_unwind(|| parse_strict(bad)).is_err(),
            "accepted {:?}",
            String::from_utf8_lossy(bad)
        );
    }
}
