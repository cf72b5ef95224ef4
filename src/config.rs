//! Layered configuration: defaults, then a TOML file, then `FIELDSYNC__SECTION__KEY` env vars.

use crate::ofsc::{AuthKind, OfscConfig};
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A value that never appears in logs, `Debug` output or `--print-config`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Env values that look like numbers arrive as numbers; a secret is always text.
        let v = serde_json::Value::deserialize(d)?;
        Ok(Secret(match v {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        }))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    /// A real OFSC tenant. Absent: the built-in simulator with the demo tenant is used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ofsc: Option<TenantSettings>,
    pub demo: DemoSettings,
    pub sim: SimSettings,
    pub auth: AuthSettings,
    pub cache: CacheSettings,
    pub replay: ReplaySettings,
    pub approvals: ApprovalSettings,
    pub webhooks: WebhookSettings,
    pub uploads: UploadSettings,
    pub properties: PropertySettings,
    pub history: HistorySettings,
    /// Single sign-on; absent: local users only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcSettings>,
}

/// A key that signs upload grants.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadKey {
    pub kid: String,
    pub secret: Secret,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadSettings {
    /// Signing keys; the first signs new grants, every one verifies (rotation: put the new
    /// key first and keep the old one until its grants expired). Empty: one key made at first
    /// start and kept in the store.
    pub keys: Vec<UploadKey>,
    /// How long a grant may wait for its first byte.
    pub grant_ttl_secs: i64,
    /// How long a started upload may take before it is abandoned and purged.
    pub upload_ttl_secs: i64,
    /// Clock skew allowed on a grant's expiry.
    pub skew_secs: i64,
    /// Images decoded at once (each may need a few hundred MB).
    pub max_decodes: usize,
    /// CPU time one decode may use before the upload is refused (`decode-timeout`); CPU,
    /// not wall time, so a niced decode on a busy machine is not refused for waiting.
    pub decode_timeout_ms: u64,
    /// Scheduling priority (Linux nice, 0–19) of the decode threads: decoding is background
    /// work and yields to receiving and syncing uploads. 0 keeps normal priority.
    pub decode_nice: i32,
}

impl Default for UploadSettings {
    fn default() -> Self {
        UploadSettings {
            keys: vec![],
            grant_ttl_secs: 900,
            upload_ttl_secs: 24 * 3600,
            skew_secs: 30,
            max_decodes: 1,
            decode_timeout_ms: 30_000,
            decode_nice: 10,
        }
    }
}

/// The tenant's custom properties fieldsync writes (each must exist in the tenant; the
/// approval properties are under `[approvals]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PropertySettings {
    /// A text property: the notes of an activity created on a device.
    pub notes: String,
    /// File properties for an activity's photos, in order: the n-th photo goes to the n-th.
    /// An activity holds as many photos as there are labels.
    pub photos: Vec<String>,
    /// The file property of the customer's signature.
    pub signature: String,
}

impl Default for PropertySettings {
    fn default() -> Self {
        PropertySettings {
            notes: "XA_NOTES".into(),
            photos: (1..=5)
                .map(|n| match n {
                    1 => "XA_PHOTO".to_string(),
                    n => format!("XA_PHOTO_{n}"),
                })
                .collect(),
            signature: "csign".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApprovalSettings {
    /// Activity types whose completions need a supervisor's approval; `"*"` means all.
    pub activity_types: Vec<String>,
    /// The OFSC activity properties a decision writes.
    pub status_label: String,
    pub approved_by_label: String,
    pub comment_label: String,
}

impl Default for ApprovalSettings {
    fn default() -> Self {
        ApprovalSettings {
            activity_types: vec!["*".into()],
            status_label: "XA_APPROVAL_STATUS".into(),
            approved_by_label: "XA_APPROVED_BY".into(),
            comment_label: "XA_APPROVAL_COMMENT".into(),
        }
    }
}

impl ApprovalSettings {
    pub fn needed_for(&self, activity_type: Option<&str>) -> bool {
        self.activity_types
            .iter()
            .any(|t| t == "*" || Some(t.as_str()) == activity_type)
    }
}

/// One receiver of outbound webhooks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookEndpoint {
    pub url: String,
    /// The HMAC-SHA256 key of `Fieldsync-Signature`.
    pub secret: Secret,
    /// Event types it receives (`op.applied`, `approval.decided`...); `"*"` means all.
    #[serde(default = "all_events")]
    pub events: Vec<String>,
}

impl WebhookSettings {
    /// Whether some endpoint receives events of this type.
    pub fn wants(&self, event_type: &str) -> bool {
        self.endpoints
            .iter()
            .any(|e| e.events.iter().any(|x| x == "*" || x == event_type))
    }
}

fn all_events() -> Vec<String> {
    vec!["*".into()]
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    pub endpoints: Vec<WebhookEndpoint>,
    /// After this many failed attempts a delivery is `failed` (an admin may redeliver it).
    pub max_attempts: u32,
    pub base_backoff_ms: u64,
    pub max_backoff_ms: u64,
    pub timeout_ms: u64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            endpoints: vec![],
            max_attempts: 12,
            base_backoff_ms: 1000,
            max_backoff_ms: 300_000,
            timeout_ms: 5000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSettings {
    /// A cached route older than this is refreshed in the background when read.
    pub route_max_age_secs: u64,
    /// How often OFSC's Events API is polled when there is nothing new.
    pub events_poll_ms: u64,
    /// How often the whole resource directory is read again (resource events keep it
    /// current in between; the readiness probe reads one resource).
    pub directory_refresh_secs: u64,
    /// Each user's budget of OFSC reads their requests cause (cache misses), refilled at
    /// this rate; spent, the answer is 429 `upstream-budget-spent`. 0 turns it off.
    pub fetches_per_minute: u32,
    /// ... and the most a user may spend at once.
    pub fetch_burst: u32,
    /// Route and activity reads are for dates at most this many days before today ...
    pub read_days_back: u32,
    /// ... and at most this many after it (in the resource's zone).
    pub read_days_ahead: u32,
    /// Cached routes (and their activities) this many days past are evicted; more than
    /// `read_days_back`, so a route that can still be read is never evicted.
    pub route_retention_days: u32,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            route_max_age_secs: 60,
            events_poll_ms: 3000,
            directory_refresh_secs: 3600,
            fetches_per_minute: 120,
            fetch_burst: 200,
            read_days_back: 31,
            read_days_ahead: 31,
            route_retention_days: 45,
        }
    }
}

/// How long the history of finished work is kept: applied and discarded ops with their
/// timeline entries, the change log devices pull, and idempotency records. The journal's
/// compaction keeps the journal small; this keeps the index trees' records from growing with
/// every op ever made.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistorySettings {
    /// Days after an op finished (applied or discarded) before it leaves the history, and
    /// the age at which change-log entries and idempotency records go; 0 keeps everything.
    /// More than `cache.read_days_back + cache.read_days_ahead`, so no route that can still
    /// be read loses ops. sled 0.34 never shrinks its file, but reuses the space of pruned
    /// records once its cleaner has run: with retention, five rounds of 300,000 ops grew
    /// the store by 2.2, 1.1, then 0.15–0.25 GB a round, against 2.2 GB a round without
    /// (bench/README.md, "History retention while the service runs").
    pub retention_days: u32,
    /// Days after which audit entries go too; 0 (the default) keeps the audit trail whole,
    /// which supervisors query.
    pub audit_retention_days: u32,
    /// Seconds between the service's retention runs.
    pub prune_every_secs: u64,
}

impl Default for HistorySettings {
    fn default() -> Self {
        HistorySettings {
            retention_days: 90,
            audit_retention_days: 0,
            prune_every_secs: 600,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplaySettings {
    /// Off: writes are accepted and queued but nothing is sent (maintenance, benchmarks).
    pub enabled: bool,
    /// Routes replayed to OFSC at once.
    pub max_lanes: usize,
    /// Attempts before an op is dead.
    pub max_attempts: u32,
    /// Age after which a failing op is dead.
    pub max_age_hours: u64,
    pub base_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl Default for ReplaySettings {
    fn default() -> Self {
        ReplaySettings {
            enabled: true,
            max_lanes: 16,
            max_attempts: 25,
            max_age_hours: 72,
            base_backoff_ms: 200,
            max_backoff_ms: 30_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// HS256 key for access tokens. Absent: a random key is made at first start and kept in
    /// the store, so tokens survive restarts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_secret: Option<Secret>,
    pub issuer: String,
    pub audience: String,
    pub access_ttl_secs: i64,
    pub refresh_ttl_days: i64,
    pub login_window_secs: u64,
    /// Failed logins of one user from one client address per window before 429.
    pub max_failures_per_user: usize,
    /// Failed logins from one client address, whatever the user.
    pub max_failures_per_address: usize,
    /// Failed logins of one user from every address together: far above the per-address
    /// limit, so a stranger cannot lock the owner out, but a distributed guess still stops.
    pub max_failures_per_user_total: usize,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            jwt_secret: None,
            issuer: "fieldsync".into(),
            audience: "fieldsync-devices".into(),
            access_ttl_secs: 900,
            refresh_ttl_days: 30,
            login_window_secs: 900,
            max_failures_per_user: 5,
            max_failures_per_address: 50,
            max_failures_per_user_total: 100,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    pub listen: String,
    pub data_dir: PathBuf,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// How often readiness probes OFSC.
    pub ofsc_probe_secs: u64,
    /// sled's page cache, in MiB. Kept small (the OS page cache backs sled's file, and the
    /// route-read RSS target counts it), but big enough that the index pages writes touch
    /// stay cached; see bench/README.md.
    pub sled_cache_mb: u64,
    /// A device's action time may be at most this far ahead of the server's clock.
    pub max_future_secs: u64,
    /// ... and at most this far behind it (how long a write may wait offline).
    pub max_past_hours: u64,
    /// Start even when the data directory is accessible to its group or others.
    pub allow_shared_data_dir: bool,
    /// When set, `GET /metrics` needs `Authorization: Bearer <this>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_token: Option<Secret>,
    /// The URL devices and browsers reach this service at (`https://fieldsync.example.com`):
    /// upload links and the console's SSO callback are built on it. Absent: the request's
    /// own `Host` (fine on a laptop; set it in production).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Addresses of reverse proxies whose `Forwarded` / `X-Forwarded-*` headers are believed;
    /// from anyone else those headers are ignored.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// A connection must send its request head within this many seconds.
    pub request_head_timeout_secs: u64,
    /// ... and an ordinary request's whole body within this many.
    pub body_timeout_secs: u64,
    /// On SIGINT or SIGTERM, how long requests in flight may still finish before the final
    /// checkpoint (under a container runtime's usual 10 s before it sends SIGKILL).
    pub shutdown_grace_secs: u64,
    /// An upload (tus) must average at least this many bytes a second once
    /// `upload_rate_grace_secs` have passed; 0 turns the floor off.
    pub upload_min_bytes_per_sec: u64,
    pub upload_rate_grace_secs: u64,
    /// Connections one client address may hold open (trusted proxies excepted); more are
    /// closed at once. 0: no limit.
    pub max_connections_per_address: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./data"),
            workers: 0,
            ofsc_probe_secs: 15,
            sled_cache_mb: 16,
            max_future_secs: 300,
            max_past_hours: 168,
            allow_shared_data_dir: false,
            metrics_token: None,
            public_url: None,
            trusted_proxies: Vec::new(),
            request_head_timeout_secs: 5,
            body_timeout_secs: 30,
            shutdown_grace_secs: 8,
            upload_min_bytes_per_sec: 1024,
            upload_rate_grace_secs: 10,
            max_connections_per_address: 512,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    /// e.g. `https://acme.fs.ocs.oraclecloud.com`
    pub base_url: String,
    pub instance: String,
    pub client_id: String,
    pub client_secret: Secret,
    #[serde(default)]
    pub auth: AuthKind,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
}

fn default_timeout() -> u64 {
    20
}
fn default_connect_timeout() -> u64 {
    5
}

impl TenantSettings {
    /// The simulator's demo application at `base_url`.
    pub fn demo_at(base_url: &str) -> Self {
        TenantSettings {
            base_url: base_url.trim_end_matches('/').to_string(),
            instance: "demo".into(),
            client_id: "fieldsync-demo".into(),
            client_secret: Secret::new("demo"),
            auth: AuthKind::Oauth2,
            timeout_secs: default_timeout(),
            connect_timeout_secs: default_connect_timeout(),
        }
    }

    pub fn client_config(&self) -> OfscConfig {
        OfscConfig {
            base_url: self.base_url.trim_end_matches('/').to_string(),
            instance: self.instance.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.expose().to_string(),
            auth: self.auth,
            timeout: Duration::from_secs(self.timeout_secs),
            connect_timeout: Duration::from_secs(self.connect_timeout_secs),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoSettings {
    /// Password of the demo logins, when the demo tenant is seeded.
    pub password: Secret,
}

impl Default for DemoSettings {
    fn default() -> Self {
        DemoSettings {
            password: Secret::new("demo"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct SimSettings {
    /// Seed file for the embedded simulator; the demo tenant when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed_file: Option<PathBuf>,
}

#[path = "config_oidc.rs"]
mod oidc;
pub use oidc::OidcSettings;

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl Settings {
    /// Defaults, then `file` (if given, it must exist), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::load_with_env(file, "FIELDSYNC__")
    }

    pub fn load_with_env(file: Option<&Path>, prefix: &str) -> Result<Settings, ConfigError> {
        let mut fig = Figment::new();
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError(format!("{} does not exist", path.display())));
            }
            fig = fig.merge(Toml::file(path));
        }
        let settings: Settings = fig
            .merge(Env::prefixed(prefix).split("__"))
            .extract()
            .map_err(|e| ConfigError(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Refuses settings that cannot be meant: secrets too short to be secrets (a signing key
    /// below 32 bytes, as HS256 and the upload grants' HMAC want 256 bits; a webhook secret
    /// or metrics token below 16), a malformed public URL, a route retention that would
    /// evict readable routes.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut need = |what: String, secret: &Secret, min: usize| {
            if secret.expose().len() < min {
                problems.push(format!("{what} needs at least {min} bytes"));
            }
        };
        if let Some(s) = &self.auth.jwt_secret {
            need("auth.jwt_secret".into(), s, 32);
        }
        for k in &self.uploads.keys {
            need(format!("uploads.keys[kid={}].secret", k.kid), &k.secret, 32);
        }
        for e in &self.webhooks.endpoints {
            need(format!("the webhook secret of {}", e.url), &e.secret, 16);
        }
        if let Some(t) = &self.server.metrics_token {
            need("server.metrics_token".into(), t, 16);
        }
        if let Some(o) = &self.oidc {
            o.validate()?;
        }
        if let Some(u) = &self.server.public_url {
            let ok = (u.starts_with("https://") || u.starts_with("http://"))
                && !u.contains(['?', '#', ' ']);
            if !ok {
                problems.push(format!(
                    "server.public_url must be an http(s) URL without query or fragment, not {u:?}"
                ));
            }
        }
        let p = &self.properties;
        let labels = std::iter::once(&p.notes)
            .chain(&p.photos)
            .chain(std::iter::once(&p.signature));
        if labels.clone().any(|l| l.trim().is_empty()) || p.photos.is_empty() {
            problems
                .push("properties: every label must be set, and at least one photo label".into());
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = labels.clone().find(|l| !seen.insert(*l)) {
            problems.push(format!("properties: {dup:?} is named twice"));
        }
        if self.cache.route_retention_days <= self.cache.read_days_back {
            problems.push(format!(
                "cache.route_retention_days ({}) must be more than cache.read_days_back ({}): a route that can still be read must not be evicted",
                self.cache.route_retention_days, self.cache.read_days_back
            ));
        }
        let readable = self.cache.read_days_back + self.cache.read_days_ahead;
        if self.history.retention_days != 0 && self.history.retention_days <= readable {
            problems.push(format!(
                "history.retention_days ({}) must be 0 (keep everything) or more than cache.read_days_back + cache.read_days_ahead ({readable}): a route that can still be read must keep its ops",
                self.history.retention_days
            ));
        }
        match problems.is_empty() {
            true => Ok(()),
            false => Err(ConfigError(problems.join("; "))),
        }
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)]
#[path = "config_tests.rs"]
mod tests;
