//! Unit tests for `events`.

use super::*;

fn ev(t: &str) -> Event {
    Event {
        event_type: t.into(),
        time: "2026-01-01 00:00:00".into(),
        ..Default::default()
    }
}

#[test]
fn pages_are_ordered_filtered_and_resumable() {
    let mut log = EventLog::default();
    log.emit(ev("activityStarted"));
    let (id, _) = log
        .subscribe(vec!["activityCompleted".into(), "activityStarted".into()])
        .unwrap();
    log.emit(ev("routeActivated"));
    log.emit(ev("activityCompleted"));
    let first = log.read(&id, None, 1000).unwrap();
    assert_eq!(first.items.len(), 2);
    assert_eq!(first.next_page, "3");
    let again = log.read(&id, Some(&first.next_page), 1000).unwrap();
    assert!(!again.found);
    assert_eq!(again.next_page, "3");
    log.emit(ev("activityStarted"));
    let next = log.read(&id, Some("3"), 1000).unwrap();
    assert_eq!(next.items.len(), 1);
}

#[test]
fn identical_subscription_is_reused_and_expiry_is_404() {
    let mut log = EventLog::default();
    let (a, _) = log.subscribe(vec!["x".into()]).unwrap();
    let (b, _) = log.subscribe(vec!["x".into()]).unwrap();
    assert_eq!(a, b);
    log.expire_all();
    assert_eq!(log.read(&a, None, 10).unwrap_err().status, 404);
}
