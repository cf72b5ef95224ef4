//! Device times: the window a device's clock reading must fall in to be accepted, and the
//! clock correction of synced ops, with checked arithmetic (an absurd time is refused, never
//! a panic or an overflow).
//!
//! Why a window: an action time is replayed to OFSC, and OFSC refuses every later action on
//! the route that is "before the route's previous action". One time in the year 200000, from
//! a bad clock or a bad actor, would block the route for the day.

use chrono::{DateTime, FixedOffset, TimeDelta, Utc};

/// How far from the server's clock a device time may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    /// Ahead of now: a small leeway for clocks a little fast.
    pub max_future: TimeDelta,
    /// Behind now: how long a device may have been offline with the write.
    pub max_past: TimeDelta,
}

impl TimeWindow {
    pub fn new(max_future_secs: u64, max_past_hours: u64) -> TimeWindow {
        let secs = |s: u64| {
            TimeDelta::try_seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000))
                .unwrap_or(TimeDelta::MAX)
        };
        TimeWindow {
            max_future: secs(max_future_secs),
            max_past: secs(max_past_hours.saturating_mul(3600)),
        }
    }
}

/// Which route dates a caller may read, in days around today (the resource's today).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateWindow {
    pub days_back: u32,
    pub days_ahead: u32,
}

impl DateWindow {
    /// Whether every date from `from` to `to` is within the window around `today`.
    pub fn admits(
        &self,
        today: chrono::NaiveDate,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> bool {
        let first = today.checked_sub_days(chrono::Days::new(u64::from(self.days_back)));
        let last = today.checked_add_days(chrono::Days::new(u64::from(self.days_ahead)));
        first.is_none_or(|f| from >= f) && last.is_none_or(|l| to <= l)
    }
}

/// Why a time was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeRejection {
    #[error("the time {0} is more than {1} s ahead of the server's clock")]
    TooFarAhead(String, i64),
    #[error("the time {0} is more than {1} h in the past")]
    TooOld(String, i64),
    #[error("the device's clock reading cannot be corrected into a representable time")]
    Unrepresentable,
}

/// Accepts `t` when it lies within `window` of `now`.
pub fn check(
    t: DateTime<FixedOffset>,
    now: DateTime<Utc>,
    window: &TimeWindow,
) -> Result<(), TimeRejection> {
    let latest = now.checked_add_signed(window.max_future);
    let earliest = now.checked_sub_signed(window.max_past);
    if latest.is_some_and(|l| t > l) {
        return Err(TimeRejection::TooFarAhead(
            t.to_rfc3339(),
            window.max_future.num_seconds(),
        ));
    }
    if earliest.is_some_and(|e| t < e) {
        return Err(TimeRejection::TooOld(
            t.to_rfc3339(),
            window.max_past.num_hours(),
        ));
    }
    Ok(())
}

/// The device's clock offset: what to add to its readings to get the server's time.
pub fn offset(server_now: DateTime<Utc>, device_time: DateTime<FixedOffset>) -> TimeDelta {
    // Any two representable instants are less than 600,000 years apart, well inside a
    // TimeDelta, so this subtraction cannot overflow.
    server_now.fixed_offset().signed_duration_since(device_time)
}

/// A synced op's corrected time, or `Unrepresentable` when the correction leaves chrono's
/// range (a reading and a device clock both absurd).
pub fn corrected(
    captured_at: DateTime<FixedOffset>,
    offset: TimeDelta,
) -> Result<DateTime<FixedOffset>, TimeRejection> {
    captured_at
        .checked_add_signed(offset)
        .ok_or(TimeRejection::Unrepresentable)
}

#[cfg(test)]
#[path = "times_tests.rs"]
mod tests;
