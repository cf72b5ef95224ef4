//! Conversion between RFC 3339 instants and OFSC's resource-local `YYYY-MM-DD HH:MM:SS`.
//!
//! OFSC activity, route and action times carry no offset: they are wall-clock times in the
//! resource's zone. Event times are UTC in the same format.

use chrono::{DateTime, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// OFSC's date-time format.
pub const LOCAL_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TimeError {
    #[error("unknown time zone {0:?}")]
    UnknownZone(String),
    #[error("malformed OFSC time {0:?}, expected YYYY-MM-DD HH:MM:SS")]
    Malformed(String),
    #[error("{0} does not exist in {1} (a daylight-saving gap)")]
    Nonexistent(String, String),
}

/// Parses an IANA zone name.
pub fn zone(name: &str) -> Result<Tz, TimeError> {
    name.parse::<Tz>()
        .map_err(|_| TimeError::UnknownZone(name.to_string()))
}

/// An instant as OFSC wants it for a resource in `tz`.
pub fn to_local<Z: TimeZone>(instant: &DateTime<Z>, tz: Tz) -> String {
    instant.with_timezone(&tz).format(LOCAL_FORMAT).to_string()
}

/// An instant as OFSC's UTC event/subscription format.
pub fn to_utc_string<Z: TimeZone>(instant: &DateTime<Z>) -> String {
    instant.with_timezone(&Utc).format(LOCAL_FORMAT).to_string()
}

/// Parses OFSC's naive format without a zone.
pub fn parse_naive(s: &str) -> Result<NaiveDateTime, TimeError> {
    NaiveDateTime::parse_from_str(s, LOCAL_FORMAT).map_err(|_| TimeError::Malformed(s.to_string()))
}

/// Resolves a resource-local wall-clock time to an instant with its offset.
///
/// In a fall-back overlap the earlier instant is chosen: OFSC gives no way to tell them
/// apart, and the earlier reading keeps a route's times from jumping forward. A time inside a
/// spring-forward gap never happened and is an error.
pub fn from_local(s: &str, tz: Tz) -> Result<DateTime<FixedOffset>, TimeError> {
    let naive = parse_naive(s)?;
    naive_to_instant(naive, tz)
}

pub fn naive_to_instant(naive: NaiveDateTime, tz: Tz) -> Result<DateTime<FixedOffset>, TimeError> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => Ok(t.fixed_offset()),
        LocalResult::Ambiguous(early, _) => Ok(early.fixed_offset()),
        LocalResult::None => Err(TimeError::Nonexistent(
            naive.format(LOCAL_FORMAT).to_string(),
            tz.name().to_string(),
        )),
    }
}

/// Today's date in `tz`.
pub fn today_in(tz: Tz) -> NaiveDate {
    Utc::now().with_timezone(&tz).date_naive()
}

#[cfg(test)]
#[path = "time_tests.rs"]
mod tests;
