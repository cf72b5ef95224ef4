//! OFSC's event subscriptions and the pages of events they deliver.

use super::{Body, OfscClient};
use crate::ofsc::error::OfscError;
use crate::ofsc::wire::{EventsPage, Subscription};
use reqwest::Method;
use serde_json::json;

impl OfscClient {
    pub async fn subscribe(&self, events: &[&str], title: &str) -> Result<Subscription, OfscError> {
        self.json(
            Method::POST,
            "/events/subscriptions",
            &[],
            // createSubscriptionRequest: the events go in a subscriptionConfig entry.
            Body::Json(json!({
                "subscriptionConfig": [{ "events": events }],
                "subscriptionTitle": title,
            })),
        )
        .await
    }

    /// Reads the next page of events. `page` is the previous `nextPage`.
    pub async fn events(
        &self,
        subscription_id: &str,
        page: Option<&str>,
        limit: i64,
    ) -> Result<EventsPage, OfscError> {
        let mut query = vec![
            ("subscriptionId", subscription_id.to_string()),
            ("limit", limit.to_string()),
        ];
        if let Some(p) = page {
            query.push(("page", p.to_string()));
        }
        self.json(Method::GET, "/events", &query, Body::None).await
    }
}
