//! The `fieldsync` binary: a thin command line over the library.

use clap::{Parser, Subcommand};
use fieldsync::config::{Settings, TenantSettings};
use fieldsync::sim::{seed, Sim, SimServer};
use fieldsync::startup::Application;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "fieldsync",
    version,
    about = "Offline-first field technician backend for Oracle Field Service"
)]
struct Cli {
    /// TOML configuration file (layered over defaults, under FIELDSYNC__SECTION__KEY env vars).
    #[arg(long, global = true, env = "FIELDSYNC_CONFIG")]
    config: Option<PathBuf>,
    /// Print the effective configuration, secrets redacted, and exit.
    #[arg(long, global = true)]
    print_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the service (the default).
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks one).
        #[arg(long)]
        listen: Option<String>,
        /// Directory of the sled database.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// OFSC base URL; without a configured tenant, the simulator's demo credentials are used.
        #[arg(long)]
        ofsc_url: Option<String>,
    },
    /// Run the OFSC simulator alone.
    OfscSim {
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: String,
        /// Tenant seed file (JSON, same format as assets/demo-tenant.json).
        #[arg(long)]
        seed: Option<PathBuf>,
        #[arg(long, default_value_t = 2)]
        workers: usize,
    },
}

fn apply_serve_flags(
    settings: &mut Settings,
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    ofsc_url: Option<String>,
) {
    if let Some(l) = listen {
        settings.server.listen = l;
    }
    if let Some(d) = data_dir {
        settings.server.data_dir = d;
    }
    if let Some(url) = ofsc_url {
        match &mut settings.ofsc {
            Some(t) => t.base_url = url.trim_end_matches('/').to_string(),
            None => settings.ofsc = Some(TenantSettings::demo_at(&url)),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    fieldsync::telemetry::init();
    let cli = Cli::parse();
    let mut settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let command = cli.command.unwrap_or(Command::Serve {
        listen: None,
        data_dir: None,
        ofsc_url: None,
    });
    if let Command::Serve {
        listen,
        data_dir,
        ofsc_url,
    } = &command
    {
        apply_serve_flags(
            &mut settings,
            listen.clone(),
            data_dir.clone(),
            ofsc_url.clone(),
        );
    }
    if cli.print_config {
        print!("{}", settings.to_redacted_toml());
        return ExitCode::SUCCESS;
    }
    match command {
        Command::Serve { .. } => serve(settings).await,
        Command::OfscSim {
            listen,
            seed,
            workers,
        } => run_sim(&listen, seed, workers).await,
    }
}

async fn serve(settings: Settings) -> ExitCode {
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!("startup failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("server failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_sim(listen: &str, seed_file: Option<PathBuf>, workers: usize) -> ExitCode {
    let text = match &seed_file {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("cannot read {}: {e}", p.display());
                return ExitCode::from(2);
            }
        },
        None => seed::DEMO_TENANT.to_string(),
    };
    let sim = match seed::parse(&text).and_then(Sim::new) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let server = match SimServer::start(listen, sim, workers) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        "OFSC simulator listening on {} (Basic fieldsync-demo@demo:demo; ledger at /__sim/ledger)",
        server.url()
    );
    let _ = tokio::signal::ctrl_c().await;
    server.stop().await;
    ExitCode::SUCCESS
}
