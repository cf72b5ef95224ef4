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
    let (a, _) = log.subscribe(vec!["routeActivated".into()]).unwrap();
    let (b, _) = log.subscribe(vec!["routeActivated".into()]).unwrap();
    assert_eq!(a, b);
    log.expire_all();
    assert_eq!(log.read(&a, None, 10).unwrap_err().status, 404);
}

#[test]
fn unknown_event_types_are_refused_at_subscription() {
    let mut log = EventLog::default();
    let e = log
        .subscribe(vec!["activityStarted".into(), "activityTeleported".into()])
        .unwrap_err();
    assert_eq!(e.status, 400);
    assert!(e.detail.contains("activityTeleported"), "{}", e.detail);
    for t in crate::read::events::EVENT_TYPES {
        assert!(KNOWN_EVENTS.contains(t), "fieldsync subscribes to {t}");
    }
}

#[test]
fn since_answers_the_page_before_the_first_event_at_or_after_it() {
    let mut log = EventLog::default();
    let (id, _) = log.subscribe(vec!["activityStarted".into()]).unwrap();
    for t in [
        "2026-01-01 08:00:00",
        "2026-01-01 09:00:00",
        "2026-01-01 10:00:00",
    ] {
        log.emit(Event {
            event_type: "activityStarted".into(),
            time: t.into(),
            ..Default::default()
        });
    }
    let at = log.since(&id, "2026-01-01 09:00:00").unwrap();
    assert!(at.items.is_empty() && !at.found);
    assert_eq!(at.next_page, "1");
    let rest = log.read(&id, Some(&at.next_page), 1000).unwrap();
    let times: Vec<&str> = rest.items.iter().map(|e| e.time.as_str()).collect();
    assert_eq!(times, ["2026-01-01 09:00:00", "2026-01-01 10:00:00"]);
    assert_eq!(
        log.since(&id, "2025-12-31 00:00:00").unwrap().next_page,
        "0"
    );
    assert_eq!(
        log.since(&id, "2027-01-01 00:00:00").unwrap().next_page,
        "3"
    );
    assert!(log.since(&id, "yesterday").is_err());
}
