//! Unit tests for `seed`.

use super::*;

#[test]
fn demo_tenant_has_three_technicians_with_full_routes_today() {
    let seed = parse(DEMO_TENANT).unwrap();
    let expanded = expand(&seed).unwrap();
    for tech in ["tech1", "tech2", "tech3"] {
        let stops: Vec<_> = expanded
            .activities
            .iter()
            .filter(|(a, _)| a.resource_id.as_deref() == Some(tech))
            .collect();
        assert!(
            (6..=10).contains(&stops.len()),
            "{tech}: {} stops",
            stops.len()
        );
        let tz = seed
            .resources
            .iter()
            .find(|r| r.resource_id == tech)
            .unwrap();
        let today = time::today_in(time::zone(&tz.time_zone).unwrap()).to_string();
        assert!(stops
            .iter()
            .all(|(a, _)| a.date.as_deref() == Some(today.as_str())));
        let starts: Vec<_> = stops
            .iter()
            .map(|(a, _)| a.start_time.clone().unwrap())
            .collect();
        assert!(
            starts.windows(2).all(|w| w[0] < w[1]),
            "{tech}: planned times not increasing"
        );
    }
    let van = |t: &str| {
        expanded
            .van_stock
            .iter()
            .filter(|i| i.resource_id.as_deref() == Some(t))
            .count()
    };
    assert!(van("tech1") > 0 && van("tech2") > 0 && van("tech3") > 0);
    assert!(expanded.van_stock.iter().any(|i| i.serial_number.is_some()));
    assert!(expanded.van_stock.iter().any(|i| i.serial_number.is_none()));
}

#[test]
fn a_fixed_date_pins_every_route() {
    let mut seed = parse(DEMO_TENANT).unwrap();
    seed.date = Some(NaiveDate::from_ymd_opt(2026, 3, 8).unwrap());
    let expanded = expand(&seed).unwrap();
    assert!(expanded
        .activities
        .iter()
        .all(|(a, _)| a.date.as_deref() == Some("2026-03-08")));
}

#[test]
fn an_unknown_zone_is_a_clear_error() {
    let err = parse(r#"{"resources":[{"resourceId":"x","name":"x","resourceType":"PR","timeZone":"Nowhere/Land"}]}"#)
        .and_then(|s| expand(&s))
        .unwrap_err();
    assert!(err.to_string().contains("Nowhere/Land"));
}
