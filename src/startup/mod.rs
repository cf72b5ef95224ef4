//! Builds the application (store, OFSC connector, embedded simulator, HTTP server) so that
//! `main` and the tests share one path, and tests can bind port 0.

use crate::api;
use crate::auth::throttle::LoginThrottle;
use crate::auth::tokens::TokenKeys;
use crate::auth::users;
use crate::config::{Settings, TenantSettings};
use crate::features::stock::Stock;
use crate::ofsc::OfscClient;
use crate::read::cache::Cache;
use crate::read::directory::Directory;
use crate::replay::Replayer;
use crate::sim::{seed, Sim, SimServer};
use crate::state::{AppState, LaneLocks, OfscHealth};
use crate::store::{GroupCommit, SledStore, Storage};
use crate::store::{StorageExt, Tree};
use actix_web::{web, App, HttpServer};

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

mod tasks;

use tasks::{probe_ofsc, upkeep};

/// Request bodies above this are refused with a 413 problem.
pub const MAX_JSON_BODY: usize = 5 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot open the store in {0}: {1}")]
    Store(String, String),
    #[error("cannot listen on {0}: {1}")]
    Listen(String, std::io::Error),
    #[error("simulator seed: {0}")]
    Seed(String),
    #[error("OFSC connector: {0}")]
    Ofsc(String),
    #[error("webhooks: {0}")]
    Webhooks(String),
    #[error("single sign-on: {0}")]
    Oidc(String),
}

/// A built, bound, not yet running service.
pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    sim: Option<SimServer>,
    state: web::Data<AppState>,
    /// The background work (probe, replayer, events, webhooks, purges, compaction,
    /// eviction, metrics upkeep, upload processing), stopped with the server.
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Application, StartupError> {
        crate::telemetry::prometheus();
        let data_dir = settings.server.data_dir.clone();
        let store_err = |e: String| StartupError::Store(data_dir.display().to_string(), e);
        let (store, commit) = open_store(&settings)?;

        let (tenant, sim) = tenant_or_sim(&settings)?;
        tracing::info!(base_url = %tenant.base_url, instance = %tenant.instance, auth = ?tenant.auth, "OFSC tenant");
        let (keys, throttle) = sign_in(&store, &settings, &tenant)?;
        let directory = Arc::new(
            Directory::load(store.clone() as Arc<dyn Storage>)
                .map_err(|e| store_err(e.to_string()))?,
        );
        let ofsc = Arc::new(
            OfscClient::new(tenant.client_config())
                .map_err(|e| StartupError::Ofsc(e.to_string()))?,
        );
        let ofsc_health = Arc::new(OfscHealth::default());
        let probe = tokio::spawn(probe_ofsc(
            ofsc.clone(),
            ofsc_health.clone(),
            directory.clone(),
            Duration::from_secs(settings.server.ofsc_probe_secs.max(1)),
            Duration::from_secs(settings.cache.directory_refresh_secs.max(60)),
        ));

        let cache = Arc::new(Cache::new(
            store.clone() as Arc<dyn Storage>,
            ofsc.clone(),
            &settings.cache,
        ));
        let stock = Arc::new(Stock::new(store.clone() as Arc<dyn Storage>, ofsc.clone()));
        let (files, upload_keys) = upload_files(&store, &settings)?;
        let replayer = Replayer::new(
            crate::replay::ReplayDeps {
                store: store.clone() as Arc<dyn Storage>,
                commit: commit.clone(),
                ofsc: ofsc.clone(),
                cache: cache.clone(),
                directory: directory.clone(),
                stock: stock.clone(),
                files: Some(files.clone()),
            },
            replay_config(&settings),
        );
        let webhooks = crate::features::webhooks::Webhooks::new(
            store.clone() as Arc<dyn Storage>,
            commit.clone(),
            settings.webhooks.clone(),
        )
        .map_err(|e| StartupError::Webhooks(e.to_string()))?;
        let mut tasks = vec![probe, webhooks.start()];
        tasks.extend(upkeep(
            store.clone() as Arc<dyn Storage>,
            &files,
            &cache,
            &settings.history,
        ));
        if settings.replay.enabled {
            tasks.push(replayer.start());
        } else {
            tracing::warn!("replay is disabled: writes are queued but not sent to OFSC");
        }
        tasks.push(
            crate::read::events::EventsPoller::new(
                store.clone() as Arc<dyn Storage>,
                commit.clone(),
                ofsc.clone(),
                cache.clone(),
                stock.clone(),
                directory.clone(),
                Duration::from_millis(settings.cache.events_poll_ms.max(50)),
            )
            .start(),
        );
        let (processing, to_process) = tokio::sync::mpsc::unbounded_channel();
        let state = web::Data::new(shared_state(
            Shared {
                store,
                commit,
                ofsc,
                ofsc_health,
                keys,
                throttle,
                directory,
                cache,
                stock,
                replayer,
                webhooks,
                files,
                upload_keys,
                processing,
            },
            &settings,
        )?);
        tasks.push(tokio::spawn(api::upload_finish::process_uploads(
            state.clone(),
            to_process,
        )));
        let (port, server) = serve_http(&settings, state.clone())?;
        Ok(Application {
            port,
            server,
            sim,
            state,
            tasks,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The embedded simulator, when no tenant is configured.
    pub fn sim(&self) -> Option<&SimServer> {
        self.sim.as_ref()
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until the server stops: SIGINT (Ctrl-C) or SIGTERM (what service managers and
    /// container runtimes send) stop it cleanly.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let result = tokio::select! {
            r = self.server => r,
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("interrupted: shutting down");
                handle.stop(true).await;
                Ok(())
            }
            _ = terminate.recv() => {
                tracing::info!("terminated: shutting down");
                handle.stop(true).await;
                Ok(())
            }
        };
        for task in &self.tasks {
            task.abort();
        }
        // Stopped, not just told to stop: the final checkpoint must cover every write.
        for task in self.tasks {
            let _ = task.await;
        }
        // A checkpoint, not just a flush: the next start has no journal to apply again.
        let store = self.state.store.clone();
        let stopped = tokio::task::spawn_blocking(move || store.checkpoint());
        match stopped.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "final checkpoint failed"),
            Err(e) => tracing::error!(error = %e, "final checkpoint stopped"),
        }
        result
    }
}

/// The parts of the shared state that `build` makes; the rest comes from the settings.
struct Shared {
    store: Arc<SledStore>,
    commit: GroupCommit,
    ofsc: Arc<OfscClient>,
    ofsc_health: Arc<OfscHealth>,
    keys: TokenKeys,
    throttle: LoginThrottle,
    directory: Arc<Directory>,
    cache: Arc<Cache>,
    stock: Arc<Stock>,
    replayer: Arc<Replayer>,
    webhooks: Arc<crate::features::webhooks::Webhooks>,
    files: Arc<crate::features::uploads::Files>,
    upload_keys: Vec<crate::features::uploads::grant::SigningKey>,
    processing: tokio::sync::mpsc::UnboundedSender<String>,
}

fn shared_state(s: Shared, settings: &Settings) -> Result<AppState, StartupError> {
    Ok(AppState {
        store: s.store,
        commit: s.commit,
        ofsc: s.ofsc,
        ofsc_health: s.ofsc_health,
        keys: s.keys,
        throttle: s.throttle,
        refresh_ttl_days: settings.auth.refresh_ttl_days,
        directory: s.directory,
        cache: s.cache,
        stock: s.stock,
        replayer: s.replayer,
        lanes: LaneLocks::default(),
        approvals: settings.approvals.clone(),
        metrics_token: settings.server.metrics_token.clone(),
        pace: crate::api::pacing::Pace::of(&settings.server),
        read_window: crate::domain::times::DateWindow {
            days_back: settings.cache.read_days_back,
            days_ahead: settings.cache.read_days_ahead,
        },
        time_window: crate::domain::times::TimeWindow::new(
            settings.server.max_future_secs,
            settings.server.max_past_hours,
        ),
        webhooks: s.webhooks,
        uploads: settings.uploads.clone(),
        properties: settings.properties.clone(),
        files: s.files,
        upload_keys: s.upload_keys,
        processing: s.processing,
        pending_approvals: Default::default(),
        last_sync: Default::default(),
        sso_flows: Default::default(),
        console_counts: Default::default(),
        origin: crate::api::origin::OriginConfig {
            public_url: settings.server.public_url.clone(),
            trusted_proxies: settings.server.trusted_proxies.clone(),
        },
        oidc: settings
            .oidc
            .clone()
            .map(|o| crate::auth::oidc::Verifier::new(o).map(Arc::new))
            .transpose()
            .map_err(|e| StartupError::Oidc(e.to_string()))?,
    })
}

/// Sign-in's parts: the demo logins (when the tenant is the demo), the access-token keys
/// from the stored secret, and the failed-login throttle.
fn sign_in(
    store: &SledStore,
    settings: &Settings,
    tenant: &TenantSettings,
) -> Result<(TokenKeys, LoginThrottle), StartupError> {
    let store_err =
        |e: String| StartupError::Store(settings.server.data_dir.display().to_string(), e);
    seed_demo_logins(store, settings, tenant).map_err(|e| store_err(e.to_string()))?;
    let secret = jwt_secret(store, settings).map_err(|e| store_err(e.to_string()))?;
    let keys = TokenKeys::new(
        &secret,
        &settings.auth.issuer,
        &settings.auth.audience,
        settings.auth.access_ttl_secs,
    );
    let throttle = LoginThrottle::new(
        Duration::from_secs(settings.auth.login_window_secs),
        settings.auth.max_failures_per_user,
        settings.auth.max_failures_per_address,
        settings.auth.max_failures_per_user_total,
    );
    Ok((keys, throttle))
}

/// The upload files' home (and its decode threads) and the keys upload URLs are signed with.
fn upload_files(
    store: &SledStore,
    settings: &Settings,
) -> Result<
    (
        Arc<crate::features::uploads::Files>,
        Vec<crate::features::uploads::grant::SigningKey>,
    ),
    StartupError,
> {
    let data_dir = &settings.server.data_dir;
    let files = crate::features::uploads::Files::new(
        data_dir,
        settings.uploads.max_decodes,
        settings.uploads.decode_nice,
    )
    .map_err(|e| StartupError::Store(data_dir.display().to_string(), e.to_string()))?;
    let upload_keys = crate::features::uploads::signing_keys(store, &settings.uploads.keys)
        .map_err(|e| StartupError::Store("upload keys".into(), e.to_string()))?;
    Ok((Arc::new(files), upload_keys))
}

/// The replayer's settings, and whether op outcomes are announced to webhooks.
fn replay_config(settings: &Settings) -> crate::replay::ReplayConfig {
    crate::replay::ReplayConfig {
        announce_ops: ["op.applied", "op.rejected", "op.dead"]
            .iter()
            .any(|t| settings.webhooks.wants(t)),
        ..crate::replay::ReplayConfig::from_settings(&settings.replay)
    }
}

/// Opens the store (refusing a data directory others may enter), counts its ops, and starts
/// the group commit and the checkpoint thread.
fn open_store(settings: &Settings) -> Result<(Arc<SledStore>, GroupCommit), StartupError> {
    let data_dir = settings.server.data_dir.clone();
    let err = |e: String| StartupError::Store(data_dir.display().to_string(), e);
    crate::store::private_files();
    if data_dir.exists() && !settings.server.allow_shared_data_dir {
        crate::store::check_private(&data_dir).map_err(err)?;
    }
    let store = Arc::new(
        SledStore::open_with_cache(&data_dir, settings.server.sled_cache_mb * 1024 * 1024)
            .map_err(|e| err(e.to_string()))?,
    );
    let recovered = store.recovery();
    if recovered.quarantined > 0 {
        tracing::warn!(
            quarantined = recovered.quarantined,
            "journal records failed verification on open: quarantined, not applied"
        );
    }
    tracing::info!(
        last = recovered.last,
        reapplied = recovered.reapplied,
        converted = ?recovered.converted,
        "journal recovered"
    );
    // Queue depth and metrics read live counts: opening brought the last checkpoint's up to
    // the journal; only when it could not are they counted from every op.
    let counted =
        crate::write::outbox::count_if_unknown(store.as_ref()).map_err(|e| err(e.to_string()))?;
    tracing::info!(?counted, "op counts");
    let commit =
        GroupCommit::start(store.clone() as Arc<dyn Storage>).map_err(|e| err(e.to_string()))?;
    crate::store::checkpointer::start(&(store.clone() as Arc<dyn Storage>))
        .map_err(|e| err(e.to_string()))?;
    Ok((store, commit))
}

/// The configured OFSC tenant, or the built-in simulator with its seed (the demo tenant by
/// default), started on a free port.
fn tenant_or_sim(settings: &Settings) -> Result<(TenantSettings, Option<SimServer>), StartupError> {
    if let Some(t) = &settings.ofsc {
        return Ok((t.clone(), None));
    }
    let text = match &settings.sim.seed_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| StartupError::Seed(format!("{}: {e}", path.display())))?,
        None => seed::DEMO_TENANT.to_string(),
    };
    let seed = seed::parse(&text).map_err(|e| StartupError::Seed(e.to_string()))?;
    let sim = Sim::new(seed).map_err(|e| StartupError::Seed(e.to_string()))?;
    let server = SimServer::start("127.0.0.1:0", sim, 1)
        .map_err(|e| StartupError::Listen("127.0.0.1:0".into(), e))?;
    tracing::warn!(
        url = %server.url(),
        "no OFSC tenant configured: using the built-in OFSC simulator with the DEMO tenant \
         (resources tech1, tech2, tech3 under field-ops; routes laid on today)"
    );
    Ok((TenantSettings::demo_at(&server.url()), Some(server)))
}

/// On the demo tenant, the demo logins exist (made once), and the log says so loudly.
fn seed_demo_logins(
    store: &dyn Storage,
    settings: &Settings,
    tenant: &TenantSettings,
) -> Result<(), String> {
    if !(tenant.client_id == "fieldsync-demo" && tenant.instance == "demo") {
        return Ok(());
    }
    let created =
        users::seed_demo(store, settings.demo.password.expose()).map_err(|e| e.to_string())?;
    let password_hint = if std::env::var_os("FIELDSYNC__DEMO__PASSWORD").is_some() {
        "the value of FIELDSYNC__DEMO__PASSWORD"
    } else {
        "demo"
    };
    tracing::warn!(
        newly_created = ?created,
        "DEMO TENANT: demo logins tech1, tech2, tech3 (technicians), super1 (supervisor over all three), \
         admin; password: {password_hint}. Do not use this configuration in production."
    );
    Ok(())
}

/// Binds the listener (port 0 picks one) and starts the HTTP server on it.
fn serve_http(
    settings: &Settings,
    state: web::Data<AppState>,
) -> Result<(u16, actix_web::dev::Server), StartupError> {
    let listen = settings.server.listen.clone();
    let listener =
        TcpListener::bind(&listen).map_err(|e| StartupError::Listen(listen.clone(), e))?;
    let port = listener
        .local_addr()
        .map_err(|e| StartupError::Listen(listen.clone(), e))?
        .port();
    let connections = api::pacing::ConnectionLimit::new(
        settings.server.max_connections_per_address,
        settings.server.trusted_proxies.clone(),
    );
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .configure(|cfg| api::extractor_config(cfg, MAX_JSON_BODY))
            .wrap(tracing_actix())
            .wrap(actix_web::middleware::from_fn(api::pacing::pace_bodies))
            .wrap(actix_web::middleware::from_fn(api::middleware::hsts))
            .wrap(actix_web::middleware::from_fn(
                api::middleware::record_latency,
            ))
            // Every answer, problems and 404s included: browsers must not sniff a JSON
            // or image body into something they would run.
            .wrap(
                actix_web::middleware::DefaultHeaders::new()
                    .add(("X-Content-Type-Options", "nosniff")),
            )
            .configure(api::routes)
            .configure(crate::console::routes)
            .default_service(web::to(api::problem::not_found))
    })
    .disable_signals()
    .shutdown_timeout(settings.server.shutdown_grace_secs)
    .client_request_timeout(Duration::from_secs(
        settings.server.request_head_timeout_secs.max(1),
    ))
    .on_connect(move |conn, data| connections.on_connect(conn, data));
    if settings.server.workers > 0 {
        server = server.workers(settings.server.workers);
    }
    let server = server
        .listen(listener)
        .map_err(|e| StartupError::Listen(listen.clone(), e))?
        .run();
    let host = listen
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or("127.0.0.1");
    tracing::info!("fieldsync listening on http://{host}:{port}");
    Ok((port, server))
}

/// The access-token key: configured, or made once and kept in the store.
fn jwt_secret(store: &SledStore, settings: &Settings) -> Result<Vec<u8>, crate::store::StoreError> {
    if let Some(s) = &settings.auth.jwt_secret {
        return Ok(s.expose().as_bytes().to_vec());
    }
    if let Some(hex_key) = store.get::<String>(Tree::META, b"jwt_secret")? {
        if let Ok(k) = hex::decode(hex_key) {
            return Ok(k);
        }
    }
    let key: [u8; 32] = rand::random();
    store.put(Tree::META, b"jwt_secret", &hex::encode(key))?;
    store.flush_blocking()?;
    Ok(key.to_vec())
}

fn tracing_actix() -> actix_web::middleware::Logger {
    // The path without its query: upload grants travel in query strings and are never logged.
    actix_web::middleware::Logger::new("%{method}xi %U %s %Dms rid=%{x-request-id}o")
        .custom_request_replace("method", |req| req.method().to_string())
        .exclude("/healthz")
}
