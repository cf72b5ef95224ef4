//! OFSC calls on resources: routes and their actions, resources, inventories, positions.

use super::{seg, Body, OfscClient};
use crate::ofsc::error::OfscError;
use crate::ofsc::wire::{
    Inventory, InventoryAction, Paged, Position, PositionsResult, Resource, Route,
};
use reqwest::Method;
use serde_json::{json, Value};

impl OfscClient {
    pub async fn get_route(&self, resource_id: &str, date: &str) -> Result<Route, OfscError> {
        let path = format!("/resources/{}/routes/{}", seg(resource_id)?, seg(date)?);
        let fields = (
            "activityFields",
            crate::ofsc::wire::ACTIVITY_FIELDS.join(","),
        );
        let mut route: Route = self
            .json(
                Method::GET,
                &path,
                std::slice::from_ref(&fields),
                Body::None,
            )
            .await?;
        while (route.items.len() as i64) < route.total_results {
            let offset = route.items.len() as i64;
            let page: Route = self
                .json(
                    Method::GET,
                    &path,
                    &[
                        ("offset", offset.to_string()),
                        ("limit", "100".into()),
                        fields.clone(),
                    ],
                    Body::None,
                )
                .await?;
            if page.items.is_empty() {
                break;
            }
            route.items.extend(page.items);
        }
        Ok(route)
    }

    pub async fn route_action(
        &self,
        resource_id: &str,
        date: &str,
        action: &str,
        time: Option<&str>,
    ) -> Result<(), OfscError> {
        let body = match time {
            Some(t) => Body::Json(json!({ "time": t })),
            None => Body::Json(json!({})),
        };
        self.no_content(
            Method::POST,
            &format!(
                "/resources/{}/routes/{}/custom-actions/{action}",
                seg(resource_id)?,
                seg(date)?
            ),
            body,
        )
        .await
    }

    pub async fn get_resource(&self, id: &str) -> Result<Resource, OfscError> {
        self.json(
            Method::GET,
            &format!("/resources/{}", seg(id)?),
            &[],
            Body::None,
        )
        .await
    }

    pub async fn list_resources(
        &self,
        offset: i64,
        limit: i64,
    ) -> Result<Paged<Resource>, OfscError> {
        self.json(
            Method::GET,
            "/resources",
            &[("offset", offset.to_string()), ("limit", limit.to_string())],
            Body::None,
        )
        .await
    }

    /// A van's items: every page of them.
    pub async fn resource_inventories(
        &self,
        resource_id: &str,
    ) -> Result<Vec<Inventory>, OfscError> {
        self.inventory_pages(&format!("/resources/{}/inventories", seg(resource_id)?))
            .await
    }

    /// `customerInventories`, `installedInventories` or `deinstalledInventories`: every page.
    pub async fn activity_inventories(
        &self,
        id: i64,
        which: &str,
    ) -> Result<Vec<Inventory>, OfscError> {
        self.inventory_pages(&format!("/activities/{id}/{which}"))
            .await
    }

    /// Reads an inventory list to its end. OFSC answers at most 100 items a page; a read-back
    /// that counted only the first page would miscount a fuller van, and send twice.
    async fn inventory_pages(&self, path: &str) -> Result<Vec<Inventory>, OfscError> {
        const LIMIT: usize = 100;
        const MAX_PAGES: usize = 1000;
        let mut all = Vec::new();
        for _ in 0..MAX_PAGES {
            let page: crate::ofsc::wire::InventoryPage = self
                .json(
                    Method::GET,
                    path,
                    &[
                        ("limit", LIMIT.to_string()),
                        ("offset", all.len().to_string()),
                    ],
                    Body::None,
                )
                .await?;
            let n = page.items.len();
            all.extend(page.items);
            let more = page.has_more.unwrap_or(n >= LIMIT);
            if !more || n == 0 {
                return Ok(all);
            }
        }
        Err(OfscError::TooLong(format!(
            "{path}: more than {} inventory items",
            LIMIT * MAX_PAGES
        )))
    }

    /// Installs an item from a technician's van on an activity.
    pub async fn install_from_van(
        &self,
        resource_id: &str,
        inventory_id: i64,
        body: &InventoryAction,
    ) -> Result<Value, OfscError> {
        let body = serde_json::to_value(body).map_err(|e| OfscError::Config(e.to_string()))?;
        self.json_or_null(
            Method::POST,
            &format!(
                "/resources/{}/inventories/{inventory_id}/custom-actions/install",
                seg(resource_id)?
            ),
            Body::Json(body),
        )
        .await
    }

    /// `install`, `deinstall`, `undoInstall` or `undoDeinstall` on an inventory item.
    pub async fn inventory_action(
        &self,
        inventory_id: i64,
        action: &str,
        body: &InventoryAction,
    ) -> Result<Value, OfscError> {
        let body = serde_json::to_value(body).map_err(|e| OfscError::Config(e.to_string()))?;
        self.json_or_null(
            Method::POST,
            &format!("/inventories/{inventory_id}/custom-actions/{action}"),
            Body::Json(body),
        )
        .await
    }

    pub async fn set_positions(&self, items: &[Position]) -> Result<PositionsResult, OfscError> {
        self.json(
            Method::POST,
            "/resources/custom-actions/setPositions",
            &[],
            Body::Json(json!({ "items": items })),
        )
        .await
    }
}
