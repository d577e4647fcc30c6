//! UTC calendar periods of budgets: the day or month a moment falls in, and when it ends.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The period a budget is counted over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BudgetPeriod {
    /// A UTC calendar day.
    Day,
    /// A UTC calendar month.
    Month,
}

impl BudgetPeriod {
    /// `day` or `month`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Month => "month",
        }
    }
}

/// One concrete period: its id (`2025-03-31`, `2025-03`) and its bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodWindow {
    /// Day or month.
    pub period: BudgetPeriod,
    /// `YYYY-MM-DD` or `YYYY-MM`.
    pub id: String,
    /// The first instant of the period.
    pub start: SystemTime,
    /// The first instant after the period.
    pub end: SystemTime,
}

const DAY_SECONDS: u64 = 86_400;

impl PeriodWindow {
    /// The period of kind `period` that `now` falls in.
    pub fn at(period: BudgetPeriod, now: SystemTime) -> Self {
        let seconds = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        let days = (seconds / DAY_SECONDS) as i64;
        let (year, month, day) = civil_from_days(days);
        let at_day = |days: i64| UNIX_EPOCH + Duration::from_secs(days.max(0) as u64 * DAY_SECONDS);
        match period {
            BudgetPeriod::Day => Self {
                period,
                id: format!("{year:04}-{month:02}-{day:02}"),
                start: at_day(days),
                end: at_day(days + 1),
            },
            BudgetPeriod::Month => {
                let (next_year, next_month) = if month == 12 {
                    (year + 1, 1)
                } else {
                    (year, month + 1)
                };
                Self {
                    period,
                    id: format!("{year:04}-{month:02}"),
                    start: at_day(days_from_civil(year, month, 1)),
                    end: at_day(days_from_civil(next_year, next_month, 1)),
                }
            }
        }
    }

    /// The end as milliseconds since the epoch.
    pub(crate) fn end_ms(&self) -> u64 {
        self.end
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as u64
    }
}

/// Year, month (1–12), day (1–31) of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The day count since 1970-01-01 of a civil date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn days_and_months_are_utc_calendar_periods() {
        // 2024-02-29T23:59:59Z, a leap day.
        let leap = at(1_709_251_199);
        let day = PeriodWindow::at(BudgetPeriod::Day, leap);
        assert_eq!(day.id, "2024-02-29");
        assert_eq!(day.end, at(1_709_251_200));
        let month = PeriodWindow::at(BudgetPeriod::Month, leap);
        assert_eq!(month.id, "2024-02");
        assert_eq!(month.start, at(1_706_745_600)); // 2024-02-01
        assert_eq!(month.end, at(1_709_251_200)); // 2024-03-01
        let december = PeriodWindow::at(BudgetPeriod::Month, at(1_735_689_599));
        assert_eq!(december.id, "2024-12");
        assert_eq!(december.end, at(1_735_689_600)); // 2025-01-01
        for days in [-1000i64, 0, 59, 365, 11_016, 20_000, 100_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
