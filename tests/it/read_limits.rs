//! What a caller's reads may cost OFSC: a date window, a per-user budget of cache misses,
//! and one OFSC read for many concurrent reads of one route.

use crate::helpers::Stack;
use chrono::{Days, NaiveDate};
use serde_json::{json, Value};

async fn today_of(stack: &Stack, resource: &str) -> NaiveDate {
    let tz = stack
        .sim
        .client
        .get_resource(resource)
        .await
        .unwrap()
        .time_zone_iana
        .unwrap();
    fieldsync::ofsc::time::today_in(fieldsync::ofsc::time::zone(&tz).unwrap())
}

async fn sim_reads(stack: &Stack) -> (u64, u64) {
    let (_, stats) = stack.sim.get_json("/__sim/stats").await;
    (
        stats["routeReads"].as_u64().unwrap(),
        stats["activityReads"].as_u64().unwrap(),
    )
}

async fn get(stack: &Stack, token: &str, path: &str) -> reqwest::Response {
    stack
        .app
        .http
        .get(stack.app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn concurrent_reads_of_an_uncached_route_are_one_ofsc_read() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let date = today_of(&stack, "tech1").await + Days::new(1);
    stack.sim.faults(json!({"latencyMs": 400})).await;
    let (before, _) = sim_reads(&stack).await;
    let path = format!("/routes/{date}");
    let reads = (0..6).map(|_| get(&stack, &s.access, &path));
    for r in futures_util::future::join_all(reads).await {
        assert_eq!(r.status(), 200);
    }
    let (after, _) = sim_reads(&stack).await;
    assert_eq!(
        after - before,
        1,
        "six reads of one uncached route, one OFSC read"
    );
}

#[tokio::test]
async fn a_users_budget_of_ofsc_reads_is_bounded_and_their_own() {
    let stack = Stack::start_with(|s| {
        s.cache.fetches_per_minute = 1;
        s.cache.fetch_burst = 3;
    })
    .await;
    let t1 = stack.app.login("tech1").await;
    let today = today_of(&stack, "tech1").await;
    let day = |n: u64| (today + Days::new(n)).to_string();
    for n in 1..=3 {
        let r = get(&stack, &t1.access, &format!("/routes/{}", day(n))).await;
        assert_eq!(r.status(), 200, "day +{n}");
    }
    let (routes_before, activities_before) = sim_reads(&stack).await;
    let spent = get(&stack, &t1.access, &format!("/routes/{}", day(4))).await;
    assert_eq!(spent.status(), 429);
    let retry: u64 = spent.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body: Value = spent.json().await.unwrap();
    assert_eq!(body["code"], "upstream-budget-spent");
    let list = get(
        &stack,
        &t1.access,
        &format!("/activities?dateFrom={}&dateTo={}", day(5), day(9)),
    )
    .await;
    assert_eq!(
        list.status(),
        429,
        "a range of uncached days costs reads too"
    );
    let unknown = get(&stack, &t1.access, "/activities/987654321").await;
    assert_eq!(unknown.status(), 429, "an unknown id would read through");
    assert_eq!(
        sim_reads(&stack).await,
        (routes_before, activities_before),
        "a spent budget reads nothing from OFSC"
    );
    let cached = get(&stack, &t1.access, &format!("/routes/{}", day(1))).await;
    assert_eq!(cached.status(), 200, "what is cached costs nothing");
    let t2 = stack.app.login("tech2").await;
    let other = get(&stack, &t2.access, &format!("/routes/{}", day(4))).await;
    assert_eq!(other.status(), 200, "tech2 has a budget of their own");
}

#[tokio::test]
async fn reads_outside_the_date_window_are_refused() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let today = today_of(&stack, "tech1").await;
    let (before, _) = sim_reads(&stack).await;
    for date in [today + Days::new(32), today - Days::new(32)] {
        let r = get(&stack, &s.access, &format!("/routes/{date}")).await;
        assert_eq!(r.status(), 400, "{date}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "date-outside-window");
    }
    let far = get(
        &stack,
        &s.access,
        &format!(
            "/activities?dateFrom={}&dateTo={}",
            today - Days::new(40),
            today - Days::new(35)
        ),
    )
    .await;
    assert_eq!(far.status(), 400);
    assert_eq!(sim_reads(&stack).await.0, before, "nothing was fetched");
    let edge = get(
        &stack,
        &s.access,
        &format!("/routes/{}", today + Days::new(31)),
    )
    .await;
    assert_eq!(edge.status(), 200, "the window's last day");
}

#[tokio::test]
async fn resource_ids_of_a_form_ofsc_cannot_have_are_refused_before_any_fetch() {
    let stack = Stack::start().await;
    let s = stack.app.login("admin").await;
    let today = today_of(&stack, "tech1").await;
    let (before, _) = sim_reads(&stack).await;
    let long = "r".repeat(33);
    for path in [
        format!("/routes/{today}?resourceId={long}"),
        format!("/routes/{today}?resourceId=a%0Ab"),
        format!("/activities?resourceId={long}"),
        format!("/inventory?resourceId={long}"),
    ] {
        let r = get(&stack, &s.access, &path).await;
        assert_eq!(r.status(), 400, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "invalid-query", "{path}");
    }
    assert_eq!(sim_reads(&stack).await.0, before);
}

#[tokio::test]
async fn concurrent_reads_while_ofsc_fails_share_its_one_answer() {
    let stack = Stack::start().await;
    let s = stack.app.login("tech1").await;
    let today = today_of(&stack, "tech1").await;
    stack
        .sim
        .faults(json!({"rate5xx": 1.0, "latencyMs": 300}))
        .await;
    let (before, _) = sim_reads(&stack).await;
    let one = get(
        &stack,
        &s.access,
        &format!("/routes/{}", today + Days::new(2)),
    )
    .await;
    assert_eq!(one.status(), 503);
    let (after_one, _) = sim_reads(&stack).await;
    let per_fetch = after_one - before;
    let path = format!("/routes/{}", today + Days::new(3));
    let reads = (0..6).map(|_| get(&stack, &s.access, &path));
    for r in futures_util::future::join_all(reads).await {
        assert_eq!(r.status(), 503);
    }
    let (after, _) = sim_reads(&stack).await;
    assert_eq!(
        after - after_one,
        per_fetch,
        "six waiting reads take the one failed fetch's answer instead of each trying again"
    );
}

#[tokio::test]
async fn a_spent_budget_fails_a_sync_batch_for_resending_never_one_op_for_good() {
    let stack = Stack::start_with(|s| {
        s.cache.fetches_per_minute = 1;
        s.cache.fetch_burst = 1;
    })
    .await;
    let s = stack.app.login("tech1").await;
    let first = get(&stack, &s.access, "/activities/987654321").await;
    assert_eq!(first.status(), 404, "the one read of the budget");
    let payload = json!({"status": "enroute"});
    let now = chrono::Utc::now().to_rfc3339();
    let push = stack
        .app
        .http
        .post(stack.app.url("/sync/push"))
        .bearer_auth(&s.access)
        .json(&json!({"deviceId": s.device, "deviceTime": now, "ops": [
            {"clientOpId": "b1", "seq": 1, "kind": "status", "activityId": 987654322,
             "payload": payload, "capturedAt": now, "sha256": crate::helpers::payload_sha(&payload)}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(push.status(), 429, "the batch is resent later");
    assert!(push.headers().contains_key("retry-after"));
    let body: Value = push.json().await.unwrap();
    assert_eq!(body["code"], "upstream-budget-spent");
}
