//! OFSC calls on activities: read, list, create, update, delete, actions, moves, and their
//! file properties.

use super::{seg, status_action_body, ActivityQuery, Body, OfscClient};
use crate::ofsc::error::OfscError;
use crate::ofsc::wire::{Activity, ActivityPage, FileMeta};
use reqwest::Method;
use serde_json::{json, Value};

impl OfscClient {
    pub async fn get_activity(&self, id: i64) -> Result<Activity, OfscError> {
        self.json(Method::GET, &format!("/activities/{id}"), &[], Body::None)
            .await
    }

    pub async fn list_activities(&self, q: &ActivityQuery) -> Result<ActivityPage, OfscError> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if !q.resources.is_empty() {
            query.push(("resources", q.resources.join(",")));
        }
        if let Some(v) = &q.date_from {
            query.push(("dateFrom", v.clone()));
        }
        if let Some(v) = &q.date_to {
            query.push(("dateTo", v.clone()));
        }
        if let Some(v) = &q.q {
            query.push(("q", v.clone()));
        }
        if let Some(v) = &q.fields {
            query.push(("fields", v.clone()));
        }
        if let Some(v) = q.offset {
            query.push(("offset", v.to_string()));
        }
        if let Some(v) = q.limit {
            query.push(("limit", v.to_string()));
        }
        self.json(Method::GET, "/activities", &query, Body::None)
            .await
    }

    /// `POST /activities` with the create schema's fields only.
    pub async fn create_activity(&self, activity: &Activity) -> Result<Activity, OfscError> {
        let body = activity
            .create_body()
            .map_err(|e| OfscError::Config(e.to_string()))?;
        self.json(
            Method::POST,
            "/activities",
            &[],
            Body::Json(Value::Object(body)),
        )
        .await
    }

    pub async fn update_activity(&self, id: i64, patch: Value) -> Result<Activity, OfscError> {
        self.json(
            Method::PATCH,
            &format!("/activities/{id}"),
            &[],
            Body::Json(patch),
        )
        .await
    }

    pub async fn delete_activity(&self, id: i64) -> Result<(), OfscError> {
        self.no_content(Method::DELETE, &format!("/activities/{id}"), Body::None)
            .await
    }

    /// A status custom action (`start`, `enroute`, `complete`...). `time` is resource-local.
    pub async fn activity_action(
        &self,
        id: i64,
        action: &str,
        body: Value,
    ) -> Result<Activity, OfscError> {
        self.json(
            Method::POST,
            &format!("/activities/{id}/custom-actions/{action}"),
            &[],
            Body::Json(body),
        )
        .await
    }

    /// A status action at the device's `local` time, with the body Oracle's schema gives
    /// that action: `time` for `start` and `enroute`
    /// (`customActionActivityStatusEnrouteChangeSchema`) and for `suspend`, `complete`,
    /// `notDone` and `cancel` (`customActionActivityStatusChangeSchema`); `stopTravel`
    /// documents no body, so none is sent.
    pub async fn status_action(
        &self,
        id: i64,
        action: &str,
        local: &str,
    ) -> Result<Activity, OfscError> {
        let body = match status_action_body(action, local) {
            Some(b) => Body::Json(b),
            None => Body::None,
        };
        self.json(
            Method::POST,
            &format!("/activities/{id}/custom-actions/{action}"),
            &[],
            body,
        )
        .await
    }

    /// `move`: answers 204.
    pub async fn move_activity(
        &self,
        id: i64,
        resource_id: &str,
        date: &str,
    ) -> Result<(), OfscError> {
        let body = json!({"setDate": {"date": date}, "setResource": {"resourceId": resource_id}});
        self.no_content(
            Method::POST,
            &format!("/activities/{id}/custom-actions/move"),
            Body::Json(body),
        )
        .await
    }

    pub async fn put_file(
        &self,
        activity_id: i64,
        label: &str,
        data: bytes::Bytes,
        content_type: &str,
        file_name: Option<&str>,
    ) -> Result<(), OfscError> {
        self.no_content(
            Method::PUT,
            &format!("/activities/{activity_id}/{}", seg(label)?),
            Body::Bytes {
                data,
                content_type: content_type.to_string(),
                file_name: file_name.map(str::to_string),
            },
        )
        .await
    }

    pub async fn file_meta(&self, activity_id: i64, label: &str) -> Result<FileMeta, OfscError> {
        self.json(
            Method::GET,
            &format!("/activities/{activity_id}/{}", seg(label)?),
            &[],
            Body::None,
        )
        .await
    }

    pub async fn get_file(&self, activity_id: i64, label: &str) -> Result<bytes::Bytes, OfscError> {
        let resp = self
            .send(
                Method::GET,
                &format!("/activities/{activity_id}/{}", seg(label)?),
                &[],
                Body::None,
                Some("application/octet-stream"),
            )
            .await?;
        resp.bytes()
            .await
            .map_err(|e| OfscError::Ambiguous(e.to_string()))
    }
}
