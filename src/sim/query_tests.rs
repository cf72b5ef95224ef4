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
