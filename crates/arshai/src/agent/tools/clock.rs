//! The built-in clock tool: the current time in UTC, and at a UTC offset when asked.

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset, SecondsFormat, TimeZone, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

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
        let now = Utc::now();
        let mut answer = json!({
            "utc": rfc3339(&now),
            "weekday": now.format("%A").to_string(),
            "unix_seconds": now.timestamp(),
        });
        if let Some(offset) = offset {
            let local = now.with_timezone(&parse_offset(offset)?);
            answer["local"] = json!(rfc3339(&local));
            answer["local_weekday"] = json!(local.format("%A").to_string());
        }
        Ok(answer)
    }
}

/// RFC 3339 to the millisecond, `Z` for UTC.
fn rfc3339<Tz: TimeZone>(time: &DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `+HH:MM`, `-HH:MM`, `+HH` or `Z`.
fn parse_offset(text: &str) -> Result<FixedOffset, ToolError> {
    let invalid = || {
        ToolError::new(format!(
            "utc_offset {text:?} is not an offset like +05:30, -08:00 or Z"
        ))
    };
    let text = text.trim();
    if text.eq_ignore_ascii_case("z") || text.eq_ignore_ascii_case("utc") {
        return FixedOffset::east_opt(0).ok_or_else(invalid);
    }
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'+') => (1i32, &text[1..]),
        Some(b'-') => (-1i32, &text[1..]),
        _ => return Err(invalid()),
    };
    let (hours, minutes) = rest.split_once(':').unwrap_or((rest, "0"));
    let hours: i32 = hours.parse().map_err(|_| invalid())?;
    let minutes: i32 = minutes.parse().map_err(|_| invalid())?;
    if !(0..=14).contains(&hours) || !(0..60).contains(&minutes) {
        return Err(invalid());
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60)).ok_or_else(invalid)
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
        assert_eq!(parse_offset("+05:30").unwrap().local_minus_utc(), 330 * 60);
        assert_eq!(parse_offset("-08").unwrap().local_minus_utc(), -480 * 60);
        assert_eq!(parse_offset("Z").unwrap().local_minus_utc(), 0);
        let error = parse_offset("Europe/Paris").unwrap_err();
        assert!(error.0.contains("Europe/Paris"), "{error}");
        assert!(parse_offset("+15:00").is_err());
    }

    #[test]
    fn the_local_time_is_the_utc_time_shifted() {
        let answer = ClockTool::now(Some("+02:00")).unwrap();
        let utc = DateTime::parse_from_rfc3339(answer["utc"].as_str().unwrap()).unwrap();
        let local = DateTime::parse_from_rfc3339(answer["local"].as_str().unwrap()).unwrap();
        assert_eq!(utc, local);
        assert_eq!(local.offset().local_minus_utc(), 7200);
        assert!(answer["utc"].as_str().unwrap().ends_with('Z'));
        assert!(answer["local"].as_str().unwrap().ends_with("+02:00"));
    }
}
