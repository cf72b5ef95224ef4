//! Shared setup: a simulator on port 0, a connector pointed at it, and control helpers.

use fieldsync::config::TenantSettings;
use fieldsync::ofsc::wire::Activity;
use fieldsync::ofsc::{AuthKind, OfscClient};
use fieldsync::sim::{seed, Sim, SimServer};
use serde_json::{json, Value};
use std::time::Duration;

pub struct TestSim {
    pub server: SimServer,
    pub client: OfscClient,
    pub http: reqwest::Client,
}

impl TestSim {
    pub async fn start() -> TestSim {
        Self::start_with(AuthKind::Oauth2, Duration::from_secs(10)).await
    }

    pub async fn start_with(auth: AuthKind, timeout: Duration) -> TestSim {
        let sim = Sim::new(seed::parse(seed::DEMO_TENANT).unwrap()).unwrap();
        let server = SimServer::start("127.0.0.1:0", sim, 2).unwrap();
        let mut tenant = TenantSettings::demo_at(&server.url()).client_config();
        tenant.auth = auth;
        tenant.timeout = timeout;
        let client = OfscClient::new(tenant).unwrap();
        TestSim {
            server,
            client,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.server.url(), path)
    }

    pub async fn control(&self, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap_or(Value::Null)
    }

    pub async fn faults(&self, body: Value) {
        self.control("/__sim/faults", body).await;
    }

    pub async fn reset(&self) {
        let resp = self
            .http
            .post(self.url("/__sim/reset"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
    }

    pub async fn ledger(&self) -> Vec<Value> {
        self.http
            .get(self.url("/__sim/ledger"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The route of `resource` for today in its zone, as the simulator has it.
    pub async fn today_route(&self, resource: &str) -> (String, Vec<Activity>) {
        let tz = self
            .client
            .get_resource(resource)
            .await
            .unwrap()
            .time_zone_iana
            .unwrap();
        let date =
            fieldsync::ofsc::time::today_in(fieldsync::ofsc::time::zone(&tz).unwrap()).to_string();
        let route = self.client.get_route(resource, &date).await.unwrap();
        (date, route.items)
    }

    pub async fn activate(&self, resource: &str, date: &str) {
        self.client
            .route_action(resource, date, "activate", None)
            .await
            .unwrap();
    }
}

/// The body each action needs to be well-formed.
pub fn action_body(action: &str) -> Value {
    match action {
        "delay" => json!({"delayMinutes": 15}),
        "reopen" => json!({"setPositionInRoute": {"position": "last"}}),
        _ => json!({}),
    }
}
