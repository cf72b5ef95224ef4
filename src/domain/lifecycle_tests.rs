//! Unit tests for `lifecycle`.

use super::*;
use crate::sim::rules::Action;
use crate::sim::seed;
use crate::sim::Tenant;
use proptest::prelude::*;

fn t(secs: i64) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339("2026-05-04T08:00:00-04:00").unwrap()
        + chrono::Duration::seconds(secs)
}

fn route(n: i64) -> RouteView {
    RouteView {
        activated: false,
        stops: (1..=n)
            .map(|i| StopView {
                id: i,
                status: "pending".into(),
                position: Some(i),
                arrived: false,
            })
            .collect(),
        last_time: None,
    }
}

#[test]
fn first_start_activates_the_route() {
    let mut v = route(3);
    let p = plan(&v, 1, DeviceStatus::Started, t(0)).unwrap();
    assert_eq!(
        p,
        Plan {
            activate_first: true,
            ofsc_action: Some("start")
        }
    );
    apply(&mut v, 1, DeviceStatus::Started, t(0));
    let p = plan(&v, 1, DeviceStatus::Completed, t(5)).unwrap();
    assert!(!p.activate_first);
}

#[test]
fn refusals_name_the_allowed_moves() {
    let v = route(2);
    let r = plan(&v, 1, DeviceStatus::Completed, t(0)).unwrap_err();
    assert_eq!(
        r.allowed,
        vec![
            DeviceStatus::Enroute,
            DeviceStatus::Started,
            DeviceStatus::Cancelled
        ]
    );
    let r = plan(&v, 2, DeviceStatus::Enroute, t(0)).unwrap_err();
    assert!(r.detail.contains("earlier stop"));
}

#[test]
fn one_started_per_route_and_time_never_goes_back() {
    let mut v = route(2);
    apply(&mut v, 1, DeviceStatus::Started, t(10));
    assert!(plan(&v, 2, DeviceStatus::Started, t(20)).is_err());
    assert!(plan(&v, 1, DeviceStatus::Completed, t(9))
        .unwrap_err()
        .detail
        .contains("before"));
    apply(&mut v, 1, DeviceStatus::Completed, t(30));
    assert!(plan(&v, 2, DeviceStatus::Started, t(30)).is_ok());
}

#[test]
fn arrived_only_after_en_route_and_once() {
    let mut v = route(1);
    assert!(plan(&v, 1, DeviceStatus::Arrived, t(0)).is_err());
    apply(&mut v, 1, DeviceStatus::Enroute, t(0));
    let p = plan(&v, 1, DeviceStatus::Arrived, t(1)).unwrap();
    assert_eq!(p.ofsc_action, None);
    apply(&mut v, 1, DeviceStatus::Arrived, t(1));
    assert!(plan(&v, 1, DeviceStatus::Arrived, t(2)).is_err());
    assert!(plan(&v, 1, DeviceStatus::Started, t(3)).is_ok());
}

#[test]
fn aliases_parse() {
    assert_eq!(DeviceStatus::parse("en_route"), Some(DeviceStatus::Enroute));
    assert_eq!(DeviceStatus::parse("done"), None);
}

fn tenant_with_route(stops: usize) -> (Tenant, String, Vec<i64>) {
    let mut seed = seed::parse(seed::DEMO_TENANT).unwrap();
    seed.resources
        .retain(|r| r.resource_id == "tech1" || r.route.is_none());
    if let Some(r) = seed.resources.iter_mut().find(|r| r.resource_id == "tech1") {
        if let Some(route) = r.route.as_mut() {
            route.stops.truncate(stops);
        }
    }
    let tenant = Tenant::from_seed(&seed::expand(&seed).unwrap());
    let date = tenant
        .activities
        .values()
        .next()
        .and_then(|a| a.date.clone())
        .unwrap();
    let ids = tenant
        .route_items("tech1", &date)
        .iter()
        .filter_map(|a| a.activity_id)
        .collect();
    (tenant, date, ids)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Random device action sequences: whatever the lifecycle accepts, the simulated OFSC
    /// accepts too, in the same order.
    #[test]
    fn accepted_moves_are_never_refused_by_ofsc(
        stops in 2usize..5,
        moves in proptest::collection::vec((0usize..5, 0usize..8, 0i64..90), 1..40),
    ) {
        let (mut ofsc, date, ids) = tenant_with_route(stops);
        let call = crate::sim::Call { method: "POST".into(), path: "/test".into(), source: "api" };
        let mut view = RouteView {
            activated: false,
            stops: ids.iter().enumerate().map(|(i, id)| StopView { id: *id, status: "pending".into(), position: Some(i as i64 + 1), arrived: false }).collect(),
            last_time: None,
        };
        let mut clock = 0i64;
        for (stop, status, gap) in moves {
            let id = ids[stop % ids.len()];
            let to = DeviceStatus::ALL[status];
            clock += gap;
            let local = format!("{date} {:02}:{:02}:{:02}", clock / 3600, (clock / 60) % 60, clock % 60);
            let when = t(clock);
            let Ok(p) = plan(&view, id, to, when) else { continue };
            let body = serde_json::json!({"time": local});
            if p.activate_first {
                let r = ofsc.route_action(&call, "tech1", &date, "activate", &body);
                prop_assert!(r.is_ok(), "activate refused: {r:?}");
            }
            if let Some(action) = p.ofsc_action {
                let r = ofsc.activity_action(&call, id, Action::parse(action).unwrap(), &body);
                prop_assert!(r.is_ok(), "{} on {id} refused by OFSC: {r:?}; view {view:?}", to.name());
            }
            apply(&mut view, id, to, when);
        }
    }
}
