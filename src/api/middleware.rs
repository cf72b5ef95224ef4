//! Request middleware: request ids (the server's, answered and audited; the caller's, audited
//! beside it when safe), request latency metrics with labels from closed sets, and HSTS on
//! answers that travel over TLS.

/// The server's id of a request: a fresh UUIDv7, answered as `X-Request-Id`, in the logs and
/// the audit trail.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The caller's own `X-Request-Id`, when it has the safe form ([`client_request_id`]):
/// recorded in the audit trail beside the server's, never in its place.
#[derive(Debug, Clone)]
pub struct ClientRequestId(pub String);

/// A caller's request id is kept only as 1-64 of `A-Z a-z 0-9 . _ : -`: it lands in the
/// audit trail, where anything else could forge lines or smuggle markup.
pub fn client_request_id(v: &str) -> Option<String> {
    let ok = (1..=64).contains(&v.len())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'));
    ok.then(|| v.to_string())
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
    let rid = uuid::Uuid::now_v7().to_string();
    req.extensions_mut().insert(RequestId(rid.clone()));
    let client = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .and_then(client_request_id);
    if let Some(c) = client {
        req.extensions_mut().insert(ClientRequestId(c));
    }
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

/// `Strict-Transport-Security` on every answer whose request came over TLS (the configured
/// public URL is https, or a trusted proxy says so): browsers then refuse plain HTTP to us.
pub async fn hsts(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let tls = req
        .app_data::<actix_web::web::Data<crate::state::AppState>>()
        .is_some_and(|s| super::origin::of(req.request(), &s.origin).tls);
    let mut res = next.call(req).await?;
    if tls {
        res.headers_mut().insert(
            actix_web::http::header::STRICT_TRANSPORT_SECURITY,
            actix_web::http::header::HeaderValue::from_static("max-age=31536000"),
        );
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::client_request_id;

    #[test]
    fn a_callers_request_id_is_kept_only_in_its_safe_form() {
        assert_eq!(
            client_request_id("abc-123_x.y:z").as_deref(),
            Some("abc-123_x.y:z")
        );
        for bad in ["", "a b", "a\nb", "<script>", "é", &"x".repeat(65)] {
            assert_eq!(client_request_id(bad), None, "{bad:?}");
        }
    }
}
