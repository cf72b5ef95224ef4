//! The simulator's file properties of an activity (photos, signatures), with OFSC's 5 MB limit.

use super::{activity_id, ofsc_call, ok, Data, Reply};
use crate::sim::model::{SimError, StoredFile};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

const FILE_LIMIT: usize = 5 * 1024 * 1024;

pub(super) async fn put_file(
    sim: Data,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (id, label) = path.into_inner();
    let media = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_string();
    let name = req
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("filename=").nth(1))
        .map(|n| n.trim_matches('"').to_string())
        .unwrap_or_else(|| label.clone());
    ofsc_call(&sim, &req, |t, call| {
        let id = activity_id(&id)?;
        t.activity(id)?;
        t.file_property(&label)?;
        if body.len() > FILE_LIMIT {
            return Err(SimError::bad_request(
                "File size exceeds the 5 MB limit of a file property",
            ));
        }
        t.files.insert(
            (id, label.clone()),
            StoredFile {
                name,
                media_type: media,
                data: body.clone(),
            },
        );
        t.log(call, Some(id), Some("putFile"), None);
        Ok(Reply::NoContent)
    })
    .await
}

pub(super) async fn get_file(
    sim: Data,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (id, label) = path.into_inner();
    let accept = req
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    ofsc_call(&sim, &req, |t, _| {
        let id = activity_id(&id)?;
        t.activity(id)?;
        t.file_property(&label)?;
        let f = t
            .files
            .get(&(id, label.clone()))
            .ok_or_else(|| SimError::not_found(format!("Property '{label}' has no file")))?;
        if accept.is_empty() || accept == "*/*" || accept.contains("application/json") {
            return ok(json!({"name": f.name, "size": f.data.len(), "mediaType": f.media_type}));
        }
        Ok(Reply::Bytes(f.media_type.clone(), f.data.clone()))
    })
    .await
}

pub(super) async fn delete_file(
    sim: Data,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (id, label) = path.into_inner();
    ofsc_call(&sim, &req, |t, call| {
        let id = activity_id(&id)?;
        t.file_property(&label)?;
        t.files
            .remove(&(id, label.clone()))
            .ok_or_else(|| SimError::not_found(format!("Property '{label}' has no file")))?;
        t.log(call, Some(id), Some("deleteFile"), None);
        Ok(Reply::NoContent)
    })
    .await
}
