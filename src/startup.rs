//! Builds the application (store, OFSC connector, embedded simulator, HTTP server) so that
//! `main` and the tests share one path, and tests can bind port 0.

use crate::api;
use crate::config::{Settings, TenantSettings};
use crate::ofsc::OfscClient;
use crate::sim::{seed, Sim, SimServer};
use crate::store::{GroupCommit, SledStore, Storage};
use actix_web::{web, App, HttpServer};
use chrono::{DateTime, Utc};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
}

/// What readiness knows about OFSC.
#[derive(Debug, Default, Clone)]
pub struct OfscHealthSnapshot {
    pub ok: bool,
    pub reached: bool,
    pub last_ok_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
pub struct OfscHealth(Mutex<OfscHealthSnapshot>);

impl OfscHealth {
    pub fn snapshot(&self) -> OfscHealthSnapshot {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }
    fn record(&self, result: Result<(), String>) {
        if let Ok(mut s) = self.0.lock() {
            match result {
                Ok(()) => {
                    s.ok = true;
                    s.reached = true;
                    s.last_ok_at = Some(Utc::now());
                    s.last_error = None;
                }
                Err(e) => {
                    s.ok = false;
                    s.last_error = Some(e);
                }
            }
        }
    }
}

/// Shared by every handler.
pub struct AppState {
    pub store: Arc<SledStore>,
    pub commit: GroupCommit,
    pub ofsc: Arc<OfscClient>,
    pub ofsc_health: Arc<OfscHealth>,
}

impl AppState {
    pub fn store_check(&self) -> Result<(), String> {
        self.store.check().map_err(|e| e.to_string())
    }
}

/// A built, bound, not yet running service.
pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    sim: Option<SimServer>,
    state: web::Data<AppState>,
    probe: tokio::task::JoinHandle<()>,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Application, StartupError> {
        let data_dir = settings.server.data_dir.clone();
        let store = Arc::new(
            SledStore::open(&data_dir)
                .map_err(|e| StartupError::Store(data_dir.display().to_string(), e.to_string()))?,
        );
        let commit = GroupCommit::start(store.clone() as Arc<dyn Storage>)
            .map_err(|e| StartupError::Store(data_dir.display().to_string(), e.to_string()))?;

        let (tenant, sim) = match &settings.ofsc {
            Some(t) => (t.clone(), None),
            None => {
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
                (TenantSettings::demo_at(&server.url()), Some(server))
            }
        };
        tracing::info!(base_url = %tenant.base_url, instance = %tenant.instance, auth = ?tenant.auth, "OFSC tenant");
        let ofsc = Arc::new(
            OfscClient::new(tenant.client_config())
                .map_err(|e| StartupError::Ofsc(e.to_string()))?,
        );
        let ofsc_health = Arc::new(OfscHealth::default());
        let probe = tokio::spawn(probe_ofsc(
            ofsc.clone(),
            ofsc_health.clone(),
            Duration::from_secs(settings.server.ofsc_probe_secs.max(1)),
        ));

        let state = web::Data::new(AppState {
            store,
            commit,
            ofsc,
            ofsc_health,
        });
        let listen = settings.server.listen.clone();
        let listener =
            TcpListener::bind(&listen).map_err(|e| StartupError::Listen(listen.clone(), e))?;
        let port = listener
            .local_addr()
            .map_err(|e| StartupError::Listen(listen.clone(), e))?
            .port();
        let app_state = state.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .configure(|cfg| api::extractor_config(cfg, MAX_JSON_BODY))
                .wrap(tracing_actix())
                .configure(api::routes)
                .default_service(web::to(api::problem::not_found))
        })
        .disable_signals();
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
        Ok(Application {
            port,
            server,
            sim,
            state,
            probe,
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

    /// Serves until the server stops (Ctrl-C in `main`, or the handle in tests).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let result = tokio::select! {
            r = self.server => r,
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("shutting down");
                handle.stop(true).await;
                Ok(())
            }
        };
        self.probe.abort();
        if let Err(e) = self.state.commit.flush().await {
            tracing::error!(error = %e, "final flush failed");
        }
        result
    }
}

/// Keeps readiness informed about OFSC reachability.
async fn probe_ofsc(client: Arc<OfscClient>, health: Arc<OfscHealth>, every: Duration) {
    loop {
        let result = client
            .list_resources(0, 1)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
        if let Err(e) = &result {
            tracing::warn!(error = %e, "OFSC probe failed");
        }
        health.record(result);
        tokio::time::sleep(every).await;
    }
}

fn tracing_actix() -> actix_web::middleware::Logger {
    actix_web::middleware::Logger::new("%r %s %Dms").exclude("/healthz")
}
