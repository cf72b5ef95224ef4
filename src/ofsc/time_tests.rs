//! Unit tests for `time`.

use super::*;

#[test]
fn rfc3339_instant_becomes_resource_local_wall_time() {
    let t = DateTime::parse_from_rfc3339("2026-07-01T14:30:00Z").unwrap();
    assert_eq!(
        to_local(&t, zone("America/New_York").unwrap()),
        "2026-07-01 10:30:00"
    );
    assert_eq!(
        to_local(&t, zone("Europe/London").unwrap()),
        "2026-07-01 15:30:00"
    );
}

#[test]
fn local_wall_time_round_trips_through_an_instant() {
    let tz = zone("America/Chicago").unwrap();
    let t = from_local("2026-01-15 08:05:09", tz).unwrap();
    assert_eq!(t.to_rfc3339(), "2026-01-15T08:05:09-06:00");
    assert_eq!(to_local(&t, tz), "2026-01-15 08:05:09");
}

#[test]
fn fall_back_overlap_picks_the_earlier_instant() {
    let tz = zone("America/New_York").unwrap();
    let t = from_local("2026-11-01 01:30:00", tz).unwrap();
    assert_eq!(t.offset().local_minus_utc(), -4 * 3600);
}

#[test]
fn spring_forward_gap_is_an_error_not_a_guess() {
    let tz = zone("America/New_York").unwrap();
    assert!(matches!(
        from_local("2026-03-08 02:30:00", tz),
        Err(TimeError::Nonexistent(..))
    ));
}

#[test]
fn malformed_and_unknown_inputs_are_errors() {
    assert!(zone("Mars/Olympus").is_err());
    assert!(from_local("2026-01-15T08:05:09", zone("UTC").unwrap()).is_err());
}

#[test]
fn utc_format_for_events() {
    let t = DateTime::parse_from_rfc3339("2026-07-01T10:30:00-04:00").unwrap();
    assert_eq!(to_utc_string(&t), "2026-07-01 14:30:00");
}
