//! Tests of the device-time window and clock correction, with extreme times.

use super::*;
use proptest::prelude::*;

fn at(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

fn window() -> TimeWindow {
    TimeWindow::new(300, 168)
}

#[test]
fn the_window_is_a_leeway_ahead_and_a_week_behind() {
    let now = at("2026-12-02T12:00:00Z").with_timezone(&Utc);
    let w = window();
    assert!(check(at("2026-12-02T12:04:59Z"), now, &w).is_ok());
    assert!(
        check(at("2026-12-02T07:04:59-05:00"), now, &w).is_ok(),
        "offsets compare as instants"
    );
    assert!(matches!(
        check(at("2026-12-02T12:05:01Z"), now, &w),
        Err(TimeRejection::TooFarAhead(_, 300))
    ));
    assert!(check(at("2026-11-25T12:00:01Z"), now, &w).is_ok());
    assert!(matches!(
        check(at("2026-11-25T11:59:59Z"), now, &w),
        Err(TimeRejection::TooOld(_, 168))
    ));
}

#[test]
fn the_year_200000_is_refused_and_the_extremes_of_chrono_neither_panic_nor_pass() {
    let now = Utc::now();
    let w = window();
    let far: DateTime<FixedOffset> = "+200000-01-01T00:00:00Z".parse().unwrap();
    assert!(check(far, now, &w).is_err());
    let max = DateTime::<Utc>::MAX_UTC.fixed_offset();
    let min = DateTime::<Utc>::MIN_UTC.fixed_offset();
    assert!(check(max, now, &w).is_err());
    assert!(check(min, now, &w).is_err());
    // A device clock at the start of time and a reading at its end: the correction
    // overflows, and is refused.
    let off = offset(now, min);
    assert_eq!(corrected(max, off), Err(TimeRejection::Unrepresentable));
    let huge = TimeWindow::new(u64::MAX, u64::MAX);
    assert!(
        check(max, now, &huge).is_ok(),
        "an unbounded window accepts anything"
    );
}

proptest! {
    /// Whatever the device sends, correcting and checking never panic, and what passes is
    /// within the window of now.
    #[test]
    fn correction_and_check_never_panic_and_only_pass_times_in_the_window(
        device in -8_000_000_000_000i64..8_000_000_000_000i64,
        captured in -8_000_000_000_000i64..8_000_000_000_000i64,
    ) {
        let now = Utc::now();
        let to_time = |s: i64| DateTime::<Utc>::from_timestamp(s, 0)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
            .fixed_offset();
        let off = offset(now, to_time(device));
        if let Ok(t) = corrected(to_time(captured), off) {
            if check(t, now, &window()).is_ok() {
                prop_assert!(t <= now + TimeDelta::seconds(300));
                prop_assert!(t >= now - TimeDelta::hours(168));
            }
        }
    }
}

#[test]
fn the_read_window_admits_dates_around_today_only() {
    let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let w = DateWindow {
        days_back: 2,
        days_ahead: 3,
    };
    let today = d("2026-12-02");
    assert!(w.admits(today, d("2026-11-30"), d("2026-12-05")));
    assert!(!w.admits(today, d("2026-11-29"), d("2026-12-02")));
    assert!(!w.admits(today, d("2026-12-02"), d("2026-12-06")));
    let edge = chrono::NaiveDate::MAX;
    assert!(
        !w.admits(today, edge, edge),
        "no overflow at the calendar's end"
    );
    assert!(
        !w.admits(today, chrono::NaiveDate::MIN, today),
        "nor at its start"
    );
    assert!(
        w.admits(edge, edge, edge),
        "today at the very end still works"
    );
}
