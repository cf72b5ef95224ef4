//! Unit tests for `query`.

use super::*;
use serde_json::json;

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

#[test]
fn a_span_of_thirty_one_days_passes_and_thirty_two_do_not() {
    // Oracle's rule is dateTo - dateFrom <= 31: January 1st to February 1st passes.
    assert!(date_range(Some("2026-01-01"), Some("2026-01-31"), false).is_ok());
    assert!(date_range(Some("2026-01-01"), Some("2026-02-01"), false).is_ok());
    let err = date_range(Some("2026-01-01"), Some("2026-02-02"), false).unwrap_err();
    assert_eq!(err.detail, "Date interval contains more than 31 days");
    assert!(date_range(Some("2026-01-01"), None, false).is_err());
    assert!(date_range(None, None, true).unwrap().is_none());
}

#[test]
fn q_filters() {
    let a = obj(json!({"status": "pending", "activityType": "INST"}));
    assert!(Filter::parse("status=='pending'").unwrap().matches(&a));
    assert!(Filter::parse("status == 'PENDING'").unwrap().matches(&a));
    assert!(!Filter::parse("status!='pending'").unwrap().matches(&a));
    assert!(
        Filter::parse("status=='started' or (activityType=='INST' and city=='')")
            .unwrap()
            .matches(&a)
    );
    assert!(Filter::parse("status=").is_err());
    assert!(Filter::parse("status=='x").is_err());
}

#[test]
fn fields_projection() {
    assert!(fields(Some("activityId,positionInRoute")).is_err());
    let a = Activity {
        activity_id: Some(1),
        status: Some("pending".into()),
        ..Default::default()
    };
    let p = project(&a, &fields(None).unwrap());
    assert_eq!(
        Value::Object(p),
        json!({"activityId": 1, "status": "pending"})
    );
}

#[test]
fn q_compares_lists_and_negates_as_oracle_documents() {
    let a =
        obj(json!({"status": "pending", "duration": 45, "slaWindowEnd": "2016-10-22 10:00:00"}));
    let yes = |q: &str| Filter::parse(q).unwrap().matches(&a);
    assert!(yes("duration > '30' and duration <= '45'"));
    assert!(!yes("duration < '45'"));
    assert!(yes("duration >= '45'"));
    assert!(
        yes("duration > '9'"),
        "numbers compare as numbers, not text"
    );
    assert!(yes("slaWindowEnd < '2016-10-23'"));
    assert!(yes("status in ['started', 'PENDING']"));
    assert!(!yes("status in ['started']"));
    assert!(yes("not status == 'started'"));
    assert!(yes("not (status == 'started' or duration > '60')"));
    assert!(yes("city == ''"), "a missing field equals ''");
    for bad in [
        "status in 'pending'",
        "status in ['a' 'b']",
        "status <> 'x'",
        "not",
    ] {
        assert!(Filter::parse(bad).is_err(), "{bad}");
    }
}
