//! The built-in clock tool: the current time in UTC, and at a UTC offset when asked.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use super::{Tool, ToolError};
use crate::llm::ToolDefinition;

/// The name the clock tool is offered under.
pub const CLOCK_TOOL_NAME: &str = "current_time";

/// The clock tool.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClockTool;

/// The arguments the model sends.
#[derive(Debug, Deserialize, JsonSchema)]
struct ClockArguments {
    /// An offset from UTC such as `+05:30` or `-08:00`, to also get the local time there.
    #[serde(default)]
    utc_offset: Option<String>,
}

impl ClockTool {
    /// The current time: RFC 3339 in UTC (and at `offset`), the weekday and Unix seconds.
    fn now(offset: Option<&str>) -> Result<Value, ToolError> {
        let now = OffsetDateTime::now_utc();
        let format = |t: OffsetDateTime| {
            t.format(&Rfc3339)
                .map_err(|e| ToolError::new(format!("cannot format the time: {e}")))
        };
        let mut answer = json!({
            "utc": format(now)?,
            "weekday": now.weekday().to_string(),
            "unix_seconds": now.unix_timestamp(),
        });
        if let Some(offset) = offset {
            let parsed = parse_offset(offset)?;
            let local = now.to_offset(parsed);
            answer["local"] = json!(format(local)?);
            answer["local_weekday"] = json!(local.weekday().to_string());
        }
        Ok(answer)
    }
}

/// `+HH:MM`, `-HH:MM`, `+HH` or `Z`.
fn parse_offset(text: &str) -> Result<UtcOffset, ToolError> {
    let invalid = || {
        ToolError::new(format!(
            "utc_offset {text:?} is not an offset like +05:30, -08:00 or Z"
        ))
    };
    let text = text.trim();
    if text.eq_ignore_ascii_case("z") || text.eq_ignore_ascii_case("utc") {
        return Ok(UtcOffset::UTC);
    }
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'+') => (1i8, &text[1..]),
        Some(b'-') => (-1i8, &text[1..]),
        _ => return Err(invalid()),
    };
    let (hours, minutes) = rest.split_once(':').unwrap_or((rest, "0"));
    let hours: i8 = hours.parse().map_err(|_| invalid())?;
    let minutes: i8 = minutes.parse().map_err(|_| invalid())?;
    if !(0..=14).contains(&hours) || !(0..60).contains(&minutes) {
        return Err(invalid());
    }
    UtcOffset::from_hms(sign * hours, sign * minutes, 0).map_err(|_| invalid())
}

#[async_trait]
impl Tool for ClockTool {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition::of::<ClockArguments>(
            CLOCK_TOOL_NAME,
            "Tells the current date and time in UTC (RFC 3339), the weekday and Unix \
             seconds; with utc_offset, also the local time at that offset.",
        )
    }

    async fn call(&self, arguments: Value) -> Result<String, ToolError> {
        let arguments: ClockArguments = serde_json::from_value(arguments)
            .map_err(|e| ToolError::new(format!("the arguments do not match the schema: {e}")))?;
        Ok(Self::now(arguments.utc_offset.as_deref())?.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_parse_or_are_refused_by_name() {
        assert_eq!(parse_offset("+05:30").unwrap().whole_minutes(), 330);
        assert_eq!(parse_offset("-08").unwrap().whole_minutes(), -480);
        assert_eq!(parse_offset("Z").unwrap(), UtcOffset::UTC);
        let error = parse_offset("Europe/Paris").unwrap_err();
        assert!(error.0.contains("Europe/Paris"), "{error}");
        assert!(parse_offset("+15:00").is_err());
    }

    #[test]
    fn the_local_time_is_the_utc_time_shifted() {
        let answer = ClockTool::now(Some("+02:00")).unwrap();
        let utc = OffsetDateTime::parse(answer["utc"].as_str().unwrap(), &Rfc3339).unwrap();
        let local = OffsetDateTime::parse(answer["local"].as_str().unwrap(), &Rfc3339).unwrap();
        assert_eq!(utc, local);
        assert_eq!(local.offset().whole_hours(), 2);
        assert!(answer["local"].as_str().unwrap().ends_with("+02:00"));
    }
}
