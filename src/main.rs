//! The `fieldsync` binary: a thin command line over the library.

use clap::{Parser, Subcommand};
use fieldsync::config::{Settings, TenantSettings};
use fieldsync::offline::{self, users::UsersCommand, Outcome};
use fieldsync::sim::{seed, Sim, SimServer};
use fieldsync::startup::Application;
use std::path::PathBuf;
use std::process::ExitCode;

// mimalloc: lower fragmentation and cheaper small allocations than glibc malloc under
// many worker threads (see bench/README.md for the RSS and throughput figures).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Play a technician's day: sign in, pull, work offline, push over a lossy link, follow outcomes.
    DeviceSim {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Technician logins, comma separated; one device each (--devices N takes the first N).
        #[arg(long, value_delimiter = ',', default_value = "tech1")]
        users: Vec<String>,
        #[arg(long)]
        devices: Option<usize>,
        #[arg(long, default_value = "demo")]
        password: String,
        /// Seconds the devices were offline (their actions are spread over them).
        #[arg(long, default_value_t = 3600)]
        offline_secs: u64,
        #[arg(long, default_value_t = 10)]
        batch: usize,
        /// Probability that a push answer is lost.
        #[arg(long, default_value_t = 0.2)]
        loss: f64,
        /// Probability that a delivered batch is sent again.
        #[arg(long, default_value_t = 0.2)]
        duplicate: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Load generator: at most this many ops per second over all devices.
        #[arg(long)]
        rate: Option<f64>,
    },
    /// Verify a data directory (stop the service first): brings the indexes up to the
    /// journal as a start would, verifies every checksum, rebuilds every journal-owned index
    /// from the journal and compares. Exits non-zero on any difference.
    Check {
        /// Directory of the sled database (defaults to server.data_dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Remove the history past its retention now (stop the service first), as the service
    /// does every ten minutes: applied and discarded ops and change-log entries older than
    /// the retention.
    Prune {
        /// Directory of the sled database (defaults to server.data_dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Age in days past which history goes (defaults to history.retention_days; 0
        /// prunes everything finished).
        #[arg(long)]
        older_than_days: Option<u32>,
    },
    /// Copy the store into a new directory holding only what is live (stop the service
    /// first): sled 0.34 keeps the space of removed records (pruned history, compacted
    /// journal). Then point server.data_dir at the new directory.
    Rewrite {
        /// Directory of the sled database (defaults to server.data_dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The new directory (must not exist). The copy is built beside it, as
        /// `.NAME.partial`, and renamed to it once whole; a failed rewrite removes it.
        #[arg(long)]
        to: PathBuf,
    },
    /// Write a backlog of queued ops straight into a stopped service's store, as a long OFSC
    /// outage would leave it (for measuring start-up, memory and `check`; bench/README.md).
    Load {
        /// Directory of the sled database (defaults to server.data_dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long, default_value_t = 1_000_000)]
        ops: u64,
        /// Ops per journal record, as in a sync batch.
        #[arg(long, default_value_t = 100)]
        batch: u64,
        #[arg(long, default_value_t = 1000)]
        routes: u64,
        /// The routes' date (default: today).
        #[arg(long)]
        date: Option<String>,
        /// Leave every op applied, as after a replay (history instead of a backlog).
        #[arg(long)]
        applied: bool,
        /// With --applied: the ops were made and applied this many days ago.
        #[arg(long, default_value_t = 0, requires = "applied")]
        age_days: u32,
    },
    /// Manage users in the store (stop the service first: sled locks its directory).
    Users {
        /// Directory of the sled database (defaults to server.data_dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[command(subcommand)]
        action: UsersCommand,
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

/// mimalloc's defaults cost memory this service does not use.
/// - It keeps freed pages for a while (10 ms per thread). Uploads run file I/O and image
///   decodes on many blocking threads, and that retention showed as +60 MiB of peak RSS in
///   the upload benchmark; purging at once keeps the peak within its budget.
///   `MIMALLOC_PURGE_DELAY` in the environment still wins.
/// - It asks for transparent huge pages on its arenas, so every 4 KiB touched can make a
///   2 MiB page resident. sled's page table is millions of small allocations spread over the
///   heap: with a million ops in the journal, the service held 207 MiB at `/readyz` with
///   huge pages and 160 MiB without (bench/README.md, "Memory: huge pages"). mimalloc's own
///   switch (`MIMALLOC_ALLOW_THP=0`) is read before `main`, after its first arena is made,
///   so the process turns them off itself, for the mappings it already has too.
fn tune_allocator() {
    // `mi_option_purge_delay` in mimalloc v2's `mimalloc.h` (the -sys crate names no const).
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mi_option_set stores one integer option; mimalloc allows it at any time.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
    // SAFETY: PR_SET_THP_DISABLE sets one flag of this process; it takes no pointers.
    // Failure (an old kernel) leaves huge pages on, which costs memory, not correctness.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

fn main() -> ExitCode {
    // Before the runtime, so its threads' first heap pages are not huge pages already.
    tune_allocator();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
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
        Command::DeviceSim {
            url,
            users,
            devices,
            password,
            offline_secs,
            batch,
            loss,
            duplicate,
            seed,
            rate,
        } => {
            let users = match devices {
                Some(n) => users.into_iter().cycle().take(n).collect(),
                None => users,
            };
            let cfg = fieldsync::device_sim::DeviceSimConfig {
                url,
                users,
                password,
                offline: std::time::Duration::from_secs(offline_secs),
                batch,
                loss,
                duplicate,
                seed,
                settle: std::time::Duration::from_secs(120),
                rate,
            };
            match fieldsync::device_sim::run(cfg).await {
                Ok(outcomes) => {
                    print!("{}", fieldsync::device_sim::summary(&outcomes));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("device-sim: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Check { data_dir } => report(offline::data::check(
            &data_dir.unwrap_or(settings.server.data_dir),
        )),
        Command::Prune {
            data_dir,
            older_than_days,
        } => report(offline::data::prune(
            &data_dir.unwrap_or(settings.server.data_dir),
            older_than_days,
            &settings.history,
        )),
        Command::Rewrite { data_dir, to } => report(offline::data::rewrite(
            &data_dir.unwrap_or(settings.server.data_dir),
            &to,
        )),
        Command::Load {
            data_dir,
            ops,
            batch,
            routes,
            date,
            applied,
            age_days,
        } => {
            let backlog = fieldsync::bulk_load::Backlog {
                ops,
                batch,
                routes,
                date: date.unwrap_or_else(|| chrono::Utc::now().format("%Y-%m-%d").to_string()),
                applied,
                age_days,
            };
            report(offline::data::load(
                &data_dir.unwrap_or(settings.server.data_dir),
                &backlog,
            ))
        }
        Command::Users { data_dir, action } => report(offline::users::manage(
            &data_dir.unwrap_or(settings.server.data_dir),
            action,
            &read_password,
        )),
    }
}

/// Prints what an offline command answered: its text to standard output, a failure to
/// standard error.
fn report(result: Result<Outcome, String>) -> ExitCode {
    match result {
        Ok(out) => {
            print!("{}", out.text);
            if out.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// A password from the first line of standard input.
fn read_password() -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let pw = line.trim_end_matches(['\r', '\n']).to_string();
    if pw.is_empty() {
        return Err("no password on standard input".into());
    }
    Ok(pw)
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
