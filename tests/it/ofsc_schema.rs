//! Schema conformance that cannot drift: a whole working day through fieldsync, with every
//! OFSC exchange recorded by the simulator, and every request body the connector sent and
//! every response and event body the simulator answered validated against Oracle's own
//! swagger (`tests/ofsc/`), read strictly: a field Oracle does not define, or a wrong type,
//! fails.

use crate::helpers::{Stack, TestSim};
use crate::uploads::{first_stop, grant, upload_all, url_of};
use fieldsync::features::uploads::samples;
use fieldsync::sim::Exchange;
use serde_json::{json, Map, Value};
use std::time::Duration;

const SWAGGER: &str = include_str!("../ofsc/ofsc-openapi-subset.json");

/// Swagger 2.0 schema → strict draft-4 JSON Schema: `allOf` merged into one object, objects
/// closed to properties they do not define (custom properties `XA_…` excepted), `$ref`
/// alone where Oracle put a `type` beside it (draft 4 ignores the sibling anyway).
fn strict(schema: &Value, defs: &Map<String, Value>, depth: usize) -> Value {
    // Oracle's definitions nest a few levels; a cycle through `allOf` would not end.
    let Value::Object(s) = schema else {
        return schema.clone();
    };
    if depth > 32 {
        return schema.clone();
    }
    if let Some(r) = s.get("$ref") {
        return json!({ "$ref": r });
    }
    let mut out = s.clone();
    if let Some(Value::Array(parts)) = out.remove("allOf") {
        let mut props = out
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut required: Vec<Value> = Vec::new();
        for part in parts {
            let part = match part.get("$ref").and_then(Value::as_str) {
                Some(r) => defs
                    .get(r.trim_start_matches("#/definitions/"))
                    .cloned()
                    .unwrap_or(Value::Null),
                None => part,
            };
            let merged = strict(&part, defs, depth + 1);
            if let Some(p) = merged.get("properties").and_then(Value::as_object) {
                for (k, v) in p {
                    props.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            if let Some(Value::Array(r)) = merged.get("required") {
                required.extend(r.iter().cloned());
            }
        }
        out.insert("properties".into(), Value::Object(props));
        if !required.is_empty() {
            out.insert("required".into(), Value::Array(required));
        }
    }
    if let Some(Value::Object(props)) = out.get("properties").cloned() {
        let converted: Map<String, Value> = props
            .iter()
            .map(|(k, v)| (k.clone(), strict(v, defs, depth + 1)))
            .collect();
        out.insert("properties".into(), Value::Object(converted));
        // Oracle marks nested objects `type: string` beside their properties; the
        // properties are what it means.
        if out.get("type") == Some(&json!("string")) {
            out.insert("type".into(), json!("object"));
        }
        out.entry("additionalProperties").or_insert(json!(false));
        out.insert("patternProperties".into(), json!({ "^XA_": {} }));
    }
    if let Some(items) = out.get("items").cloned() {
        out.insert("items".into(), strict(&items, defs, depth + 1));
    }
    Value::Object(out)
}

struct Oracle {
    doc: Value,
    defs: Map<String, Value>,
}

impl Oracle {
    fn load() -> Oracle {
        let doc: Value = serde_json::from_str(SWAGGER).unwrap();
        let raw = doc["definitions"].as_object().unwrap().clone();
        let defs = raw
            .iter()
            .map(|(k, v)| (k.clone(), strict(v, &raw, 0)))
            .collect();
        Oracle { doc, defs }
    }

    /// The operation a request went to: the path template with the fewest parameters.
    fn operation(&self, method: &str, path: &str) -> Option<(&str, &Value)> {
        let segs: Vec<&str> = path.split('/').collect();
        let mut best: Option<(usize, &str, &Value)> = None;
        for (template, ops) in self.doc["paths"].as_object()? {
            let t: Vec<&str> = template.split('/').collect();
            if t.len() != segs.len() {
                continue;
            }
            let mut params = 0;
            let fits = t.iter().zip(&segs).all(|(a, b)| {
                let param = a.starts_with('{');
                params += usize::from(param);
                param || a == b
            });
            let Some(op) = ops.get(method.to_lowercase()) else {
                continue;
            };
            if fits && best.is_none_or(|(p, _, _)| params < p) {
                best = Some((params, template.as_str(), op));
            }
        }
        best.map(|(_, t, op)| (t, op))
    }

    fn check(&self, schema: &Value, body: &Value) -> Result<(), String> {
        let mut root = strict(schema, &self.defs, 0);
        if let Value::Object(m) = &mut root {
            m.insert("definitions".into(), Value::Object(self.defs.clone()));
        }
        let v = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft4)
            .should_validate_formats(false)
            .build(&root)
            .map_err(|e| format!("schema: {e}"))?;
        let errors: Vec<String> = v
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        match errors.is_empty() {
            true => Ok(()),
            false => Err(errors.join("; ")),
        }
    }

    /// Every problem with one exchange: an undocumented path, a body where Oracle has
    /// none, or a body that does not fit Oracle's schema.
    fn problems(&self, x: &Exchange) -> Vec<String> {
        let at = format!("{} {}", x.method, x.path);
        let Some((template, op)) = self.operation(&x.method, &x.path) else {
            return vec![format!("{at}: not an operation of Oracle's swagger")];
        };
        let mut out = Vec::new();
        let body_param = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["in"] == "body");
        match (&x.request, body_param) {
            (Some(body), Some(p)) => {
                if let Err(e) = self.check(&p["schema"], body) {
                    out.push(format!("{at} ({template}) request: {e}\n  {body}"));
                }
            }
            (Some(body), None) if !template.contains("oauthTokenService") => {
                out.push(format!("{at}: a body where Oracle documents none: {body}"))
            }
            _ => {}
        }
        let answer = if (200..300).contains(&x.status) {
            x.status.to_string()
        } else {
            "default".to_string()
        };
        {
            let schema = &op["responses"][answer.as_str()]["schema"];
            if let (Some(body), false) = (&x.response, schema.is_null()) {
                if let Err(e) = self.check(schema, body) {
                    out.push(format!("{at} ({template}) {} response: {e}", x.status));
                }
            }
        }
        out
    }
}

#[test]
fn the_strict_reading_refuses_what_oracle_does_not_define() {
    let oracle = Oracle::load();
    let activity = json!({"$ref": "#/definitions/getActivitySchema"});
    assert!(oracle
        .check(
            &activity,
            &json!({"activityId": 1, "status": "pending", "XA_NOTES": "x"})
        )
        .is_ok());
    assert!(
        oracle
            .check(&activity, &json!({"activityId": "one"}))
            .is_err(),
        "a wrong type"
    );
    assert!(
        oracle
            .check(&activity, &json!({"fromResourceId": "tech1"}))
            .is_err(),
        "a field Oracle does not define"
    );
    let event = json!({"$ref": "#/definitions/event"});
    assert!(oracle
        .check(&event, &json!({"eventType": "activityMoved", "time": "2026-01-01 00:00:00", "moveDetails": {"moveReason": "x"}}))
        .is_ok());
    assert!(
        oracle
            .check(
                &event,
                &json!({"eventType": "activityMoved", "moveDetails": {"fromResourceId": "tech1"}})
            )
            .is_err(),
        "the invented move shape is refused"
    );
}

/// A day: route, travel and work, parts with an undo, a photo, GPS, a follow-up job, the
/// completion, and a dispatcher moving a job between technicians; every OFSC exchange of
/// it checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_day_of_ofsc_exchanges_fits_oracles_schema() {
    let sim = TestSim::start().await;
    sim.server.sim.start_capture();
    let stack = Stack::on_sim(sim, |_| {}).await;
    let s = stack.app.login("tech1").await;
    let date = stack.sim.today_route("tech1").await.0;
    let id = first_stop(&stack, &s, "tech1").await;
    let mut ops = Vec::new();
    let write = |body: Value| body["opId"].as_str().map(str::to_string);
    for (n, status) in ["enroute", "pending", "enroute", "arrived", "started"]
        .iter()
        .enumerate()
    {
        let (code, body) = stack.status(&s, id, status, &format!("d{n}")).await;
        assert_eq!(code, 202, "{status}: {body}");
        ops.extend(write(body));
    }
    let van: Value = stack
        .app
        .call("get", "/inventory", Some(&s.access))
        .await
        .json()
        .await
        .unwrap();
    let serial = van["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["inventoryType"] == "ONT")
        .and_then(|i| i["serialNumber"].as_str())
        .unwrap()
        .to_string();
    let parts = |items: Value, key: &'static str| {
        let http = stack.app.http.clone();
        let url = stack.app.url(&format!("/activities/{id}/parts"));
        let token = s.access.clone();
        async move {
            let r = http
                .post(url)
                .bearer_auth(token)
                .header("Idempotency-Key", key)
                .json(&json!({ "items": items }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202, "{key}");
            r.json::<Value>().await.unwrap()
        }
    };
    let recorded = parts(
        json!([{"action": "install", "inventoryType": "ONT", "serialNumber": serial},
               {"action": "consume", "inventoryType": "RJ45", "quantity": 4}]),
        "p1",
    )
    .await;
    let consumed = recorded["parts"][1]["partId"].as_str().unwrap().to_string();
    parts(json!([{"action": "undo", "undoes": consumed}]), "p2").await;
    let photo = samples::photo(400, 300, 77, None);
    let (code, g) = grant(&stack, &s, id, "photo", "image/jpeg", &photo, "ph").await;
    assert_eq!(code, 201, "{g}");
    assert_eq!(
        upload_all(&stack.app.http, &url_of(&g), &photo)
            .await
            .status(),
        201
    );
    let r = stack
        .app
        .http
        .post(stack.app.url("/locations"))
        .bearer_auth(&s.access)
        .header("Idempotency-Key", "gps")
        .json(&json!({"items": [{"lat": 40.7, "lng": -74.0, "accuracy": 8.0}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = stack
        .app
        .http
        .post(stack.app.url("/activities"))
        .bearer_auth(&s.access)
        .header("Idempotency-Key", "follow-up")
        .json(&json!({"activityType": "REPAIR", "date": date, "customerName": "Ada", "notes": "ring twice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let (code, body) = stack.status(&s, id, "completed", "done").await;
    assert_eq!(code, 202, "{body}");
    // The dispatcher moves one of tech2's jobs to tech1; both hear of it through events.
    let (_, theirs) = stack.sim.today_route("tech2").await;
    let moved = theirs.last().unwrap().activity_id.unwrap();
    stack
        .sim
        .control(
            "/__sim/dispatch",
            json!({"action": "move", "activityId": moved, "resourceId": "tech1", "date": date}),
        )
        .await;
    // Everything reaches OFSC, and the move reaches tech1's route.
    for _ in 0..200 {
        let ledger = stack.sim.ledger().await;
        let done = ["complete", "putFile", "undoInstall", "setPositions"]
            .iter()
            .all(|a| ledger.iter().any(|e| e["action"] == *a));
        let route = stack.route(&s, &date).await;
        let arrived = crate::helpers::stop_ids(&route).contains(&moved);
        if done && arrived {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let exchanges = stack.sim.server.sim.captured();
    let oracle = Oracle::load();
    let problems: Vec<String> = exchanges.iter().flat_map(|x| oracle.problems(x)).collect();
    let seen = |m: &str, end: &str| {
        exchanges
            .iter()
            .any(|x| x.method == m && x.path.ends_with(end))
    };
    for (m, end) in [
        ("POST", "/custom-actions/enroute"),
        ("POST", "/custom-actions/stopTravel"),
        ("POST", "/custom-actions/start"),
        ("POST", "/custom-actions/complete"),
        ("POST", "/custom-actions/activate"),
        ("POST", "/custom-actions/undoInstall"),
        ("PUT", "/XA_PHOTO"),
        ("POST", "/custom-actions/setPositions"),
        ("POST", "/activities"),
        ("GET", "/events"),
        ("POST", "/events/subscriptions"),
    ] {
        assert!(seen(m, end), "the day exercised {m} …{end}");
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
