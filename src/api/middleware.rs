//! Request middleware: the request id (echoed, audited) and request latency metrics with
//! labels from closed sets.

/// The request id: the caller's `X-Request-Id` when it is sane, else a fresh UUIDv7. It is
/// echoed in the answer and recorded in the audit trail.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn request_id_of(req: &actix_web::dev::ServiceRequest) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

/// Request latency for `/metrics`, labelled by method, matched route pattern and status
/// (never the raw path: ids would explode the label space), and the request id.
pub async fn record_latency(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use actix_web::HttpMessage;
    let started = std::time::Instant::now();
    // Labels come from closed sets only: anything a client makes up would otherwise become
    // a new series, and the scrape would grow with every junk request.
    let method: &'static str = match req.method().as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    };
    let rid = request_id_of(&req);
    req.extensions_mut().insert(RequestId(rid.clone()));
    let mut res = next.call(req).await?;
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&rid) {
        res.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static("x-request-id"),
            v,
        );
    }
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "other".to_string());
    metrics::histogram!(
        "fieldsync_http_request_duration_seconds",
        "method" => method,
        "route" => route,
        "status" => res.status().as_u16().to_string()
    )
    .record(started.elapsed().as_secs_f64());
    Ok(res)
}
