//! The OFSC HTTP client: Basic or OAuth2 client-credentials auth with token caching and one
//! refetch on 401, timeouts, and mapping of answers to [`OfscError`].

use super::error::OfscError;
use super::wire::TokenResponse;
use base64::Engine;
use reqwest::{header, Method, StatusCode};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

const CORE: &str = "/rest/ofscCore/v1";
const TOKEN_PATH: &str = "/rest/oauthTokenService/v2/token";
/// Tokens are refetched this long before OFSC says they expire (or a tenth of a short life).
const TOKEN_MARGIN: Duration = Duration::from_secs(30);

/// How the connector authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuthKind {
    Basic,
    #[default]
    Oauth2,
}

/// Everything needed to reach one tenant.
#[derive(Clone)]
pub struct OfscConfig {
    pub base_url: String,
    pub instance: String,
    pub client_id: String,
    pub client_secret: String,
    pub auth: AuthKind,
    pub timeout: Duration,
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for OfscConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfscConfig")
            .field("base_url", &self.base_url)
            .field("instance", &self.instance)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("auth", &self.auth)
            .finish()
    }
}

struct CachedToken {
    value: String,
    expires: Instant,
}

/// A filter for `GET /activities`.
#[derive(Debug, Clone, Default)]
pub struct ActivityQuery {
    pub resources: Vec<String>,
    pub date_from: Option<String>,
    pub date_to: Option<String>,
    pub q: Option<String>,
    pub fields: Option<String>,
    pub offset: Option<i64>,
    pub limit: Option<i64>,
}

/// A client for one OFSC tenant. Cheap to share behind an `Arc`.
/// One path segment of an OFSC URL from a value that is not ours (a resource id from a
/// request, a date, a configured label): percent-encoded, so it stays one segment, and "."
/// or ".." (which a URL parser resolves, even encoded) refused, so it cannot climb to
/// another path of the tenant with the integration's credentials.
pub fn seg(value: &str) -> Result<String, OfscError> {
    if value.is_empty() || value == "." || value == ".." || value.len() > 256 {
        return Err(OfscError::Rejected {
            status: 400,
            title: "invalid path segment".into(),
            detail: format!("{value:?} cannot be an OFSC path segment"),
        });
    }
    Ok(urlencoding::encode(value).into_owned())
}

pub struct OfscClient {
    http: reqwest::Client,
    config: OfscConfig,
    basic: String,
    token: Mutex<Option<CachedToken>>,
}

impl std::fmt::Debug for OfscClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfscClient")
            .field("config", &self.config)
            .finish()
    }
}

enum Body {
    None,
    Json(Value),
    Bytes {
        data: bytes::Bytes,
        content_type: String,
        file_name: Option<String>,
    },
}

impl OfscClient {
    pub fn new(config: OfscConfig) -> Result<Self, OfscError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| OfscError::Config(e.to_string()))?;
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!(
                "{}@{}:{}",
                config.client_id, config.instance, config.client_secret
            ))
        );
        Ok(OfscClient {
            http,
            config,
            basic,
            token: Mutex::new(None),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.config.base_url
    }

    /// Forgets the cached token so the next call fetches a new one.
    pub async fn invalidate_token(&self) {
        *self.token.lock().await = None;
    }

    async fn authorization(&self) -> Result<String, OfscError> {
        if self.config.auth == AuthKind::Basic {
            return Ok(self.basic.clone());
        }
        let mut cached = self.token.lock().await;
        if let Some(t) = cached.as_ref() {
            if Instant::now() < t.expires {
                return Ok(format!("Bearer {}", t.value));
            }
        }
        let token = self.fetch_token().await?;
        let lifetime = Duration::from_secs(token.expires_in.max(0) as u64);
        let value = token.access_token;
        *cached = Some(CachedToken {
            value: value.clone(),
            expires: Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN.min(lifetime / 10)),
        });
        Ok(format!("Bearer {value}"))
    }

    /// Client-credentials grant against OFSC's token service.
    pub async fn fetch_token(&self) -> Result<TokenResponse, OfscError> {
        let url = format!("{}{}", self.config.base_url, TOKEN_PATH);
        let resp = self
            .http
            .post(url)
            .header(header::AUTHORIZATION, &self.basic)
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .map_err(transport_error)?;
        let resp = check(resp).await?;
        resp.json()
            .await
            .map_err(|e| OfscError::Ambiguous(e.to_string()))
    }

    async fn send_once(
        &self,
        method: &Method,
        path: &str,
        query: &[(&str, String)],
        body: &Body,
        accept: Option<&str>,
    ) -> Result<reqwest::Response, OfscError> {
        let url = format!("{}{}{}", self.config.base_url, CORE, path);
        let mut req = self
            .http
            .request(method.clone(), url)
            .header(header::AUTHORIZATION, self.authorization().await?);
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(accept) = accept {
            req = req.header(header::ACCEPT, accept);
        }
        req = match body {
            Body::None => req,
            Body::Json(v) => req.json(v),
            Body::Bytes {
                data,
                content_type,
                file_name,
            } => {
                let mut r = req
                    .header(header::CONTENT_TYPE, content_type)
                    .body(data.clone());
                if let Some(name) = file_name {
                    r = r.header(
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{}\"", name.replace('"', "")),
                    );
                }
                r
            }
        };
        let resp = req.send().await.map_err(transport_error)?;
        check(resp).await
    }

    /// Sends a request; with OAuth2, a 401 drops the cached token and retries once.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Body,
        accept: Option<&str>,
    ) -> Result<reqwest::Response, OfscError> {
        match self.send_once(&method, path, query, &body, accept).await {
            Err(OfscError::Unauthorized(_)) if self.config.auth == AuthKind::Oauth2 => {
                tracing::info!(path, "OFSC token refused; fetching a new one");
                self.invalidate_token().await;
                self.send_once(&method, path, query, &body, accept).await
            }
            other => other,
        }
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Body,
    ) -> Result<T, OfscError> {
        let resp = self.send(method, path, query, body, None).await?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| OfscError::Ambiguous(format!("reading the answer: {e}")))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| OfscError::Ambiguous(format!("undecodable answer: {e}")))
    }

    /// For custom actions that answer 200 "with no schema": whatever JSON came, or null.
    async fn json_or_null(
        &self,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<Value, OfscError> {
        let resp = self.send(method, path, &[], body, None).await?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| OfscError::Ambiguous(format!("reading the answer: {e}")))?;
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn no_content(&self, method: Method, path: &str, body: Body) -> Result<(), OfscError> {
        let resp = self.send(method, path, &[], body, None).await?;
        resp.bytes()
            .await
            .map_err(|e| OfscError::Ambiguous(format!("reading the answer: {e}")))?;
        Ok(())
    }
}

mod activities;
mod events;
mod resources;

fn transport_error(e: reqwest::Error) -> OfscError {
    if e.is_connect() {
        OfscError::Connect(e.to_string())
    } else {
        OfscError::Ambiguous(e.to_string())
    }
}

#[derive(Deserialize)]
struct LooseError {
    #[serde(default)]
    title: String,
    #[serde(default)]
    detail: String,
}

/// Maps a non-2xx answer to its error class.
async fn check(resp: reqwest::Response) -> Result<reqwest::Response, OfscError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let retry_after = resp
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let text = resp.text().await.unwrap_or_default();
    let body: LooseError = serde_json::from_str(&text).unwrap_or(LooseError {
        title: status.canonical_reason().unwrap_or("").to_string(),
        detail: text.chars().take(500).collect(),
    });
    let code = status.as_u16();
    Err(match status {
        StatusCode::UNAUTHORIZED => OfscError::Unauthorized(body.detail),
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => OfscError::Throttled {
            status: code,
            retry_after,
        },
        s if s.is_server_error() => OfscError::Server {
            status: code,
            detail: body.detail,
        },
        _ => OfscError::Rejected {
            status: code,
            title: body.title,
            detail: body.detail,
        },
    })
}

/// The body of a status action as Oracle's schema defines it (`None`: the action takes no
/// body).
pub fn status_action_body(action: &str, local: &str) -> Option<Value> {
    match action {
        "stopTravel" => None,
        _ => Some(json!({ "time": local })),
    }
}

#[cfg(test)]
mod seg_tests {
    use super::{seg, status_action_body};
    use serde_json::json;

    #[test]
    fn status_actions_carry_their_schemas_body() {
        let t = "2026-12-02 08:00:00";
        for a in [
            "start", "enroute", "suspend", "complete", "notDone", "cancel",
        ] {
            assert_eq!(status_action_body(a, t), Some(json!({"time": t})), "{a}");
        }
        assert_eq!(status_action_body("stopTravel", t), None);
    }

    #[test]
    fn a_segment_stays_one_segment_and_cannot_climb() {
        assert_eq!(seg("tech1").unwrap(), "tech1");
        assert_eq!(seg("2026-12-02").unwrap(), "2026-12-02");
        assert_eq!(seg("XA_PHOTO_2").unwrap(), "XA_PHOTO_2");
        assert_eq!(seg("a/../../users").unwrap(), "a%2F..%2F..%2Fusers");
        assert_eq!(seg("x?limit=1#f").unwrap(), "x%3Flimit%3D1%23f");
        assert_eq!(seg("tech 1").unwrap(), "tech%201");
        for bad in ["", ".", "..", &"r".repeat(257)] {
            assert!(seg(bad).is_err(), "{bad:?}");
        }
        // Whatever goes in, the result holds no separator a URL parser would split on.
        let out = seg("../%2e%2E/\\?#;").unwrap();
        assert!(!out.contains(['/', '?', '#', '\\']), "{out}");
    }
}
