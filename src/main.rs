//! The `fieldsync` binary: a thin command line over the library.

use clap::{Parser, Subcommand};
use fieldsync::auth::{users, Role};
use fieldsync::config::{Settings, TenantSettings};
use fieldsync::sim::{seed, Sim, SimServer};
use fieldsync::startup::Application;
use fieldsync::store::{journal, SledStore, Storage};
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
        /// The new directory (must not exist).
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

#[derive(Subcommand, Debug)]
enum UsersCommand {
    /// Add a user. The password is read from the first line of standard input.
    Add {
        #[arg(long)]
        username: String,
        #[arg(long)]
        name: String,
        /// technician, supervisor or admin
        #[arg(long)]
        role: Role,
        /// The technician's OFSC resource id (a supervisor's own, if they do field work).
        #[arg(long)]
        resource: Option<String>,
        /// Resources a supervisor oversees, comma separated.
        #[arg(long, value_delimiter = ',')]
        oversees: Vec<String>,
        /// A parent resource whose descendants a supervisor oversees.
        #[arg(long)]
        parent: Option<String>,
    },
    /// List users (no hashes or secrets).
    List,
    /// Disable a user and revoke all their sessions.
    Disable { username: String },
    /// Set a new password (read from standard input); revokes existing sessions.
    SetPassword { username: String },
    /// Enroll TOTP and print the otpauth:// URI for an authenticator app.
    EnrollTotp { username: String },
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
        Command::Check { data_dir } => {
            let dir = data_dir.unwrap_or(settings.server.data_dir);
            check_store(&dir)
        }
        Command::Prune {
            data_dir,
            older_than_days,
        } => {
            let dir = data_dir.unwrap_or(settings.server.data_dir);
            // An explicit --older-than-days 0 means everything finished until now; a
            // configured 0 keeps the history.
            let days = older_than_days.or(Some(settings.history.retention_days).filter(|d| *d > 0));
            let audit_days = settings.history.audit_retention_days;
            if days.is_none() && audit_days == 0 {
                println!("history.retention_days and audit_retention_days are 0: history is kept");
                return ExitCode::SUCCESS;
            }
            prune_history(&dir, days, audit_days)
        }
        Command::Rewrite { data_dir, to } => {
            let dir = data_dir.unwrap_or(settings.server.data_dir);
            let started = std::time::Instant::now();
            // A small page cache, as the service's: the copy reads every record once.
            let store = SledStore::open_with_cache(&dir, 16 << 20);
            match store.and_then(|store| store.rewrite_into(&to)) {
                Ok((before, after)) => {
                    println!(
                        "rewrote {} ({:.1} MiB) into {} ({:.1} MiB) in {:.1?}",
                        dir.display(),
                        before as f64 / 1048576.0,
                        to.display(),
                        after as f64 / 1048576.0,
                        started.elapsed()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("rewrite failed: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Load {
            data_dir,
            ops,
            batch,
            routes,
            date,
            applied,
            age_days,
        } => {
            let dir = data_dir.unwrap_or(settings.server.data_dir);
            let backlog = fieldsync::bulk_load::Backlog {
                ops,
                batch,
                routes,
                date: date.unwrap_or_else(|| chrono::Utc::now().format("%Y-%m-%d").to_string()),
                applied,
                age_days,
            };
            load_backlog(&dir, &backlog)
        }
        Command::Users { data_dir, action } => {
            let dir = data_dir.unwrap_or(settings.server.data_dir);
            match manage_users(&dir, action) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Prunes the history older than `days` (`None`: kept) and the audit entries older than
/// `audit_days` (0: kept).
fn prune_history(dir: &std::path::Path, days: Option<u32>, audit_days: u32) -> ExitCode {
    use fieldsync::write::outbox::history;
    let started = std::time::Instant::now();
    let now = chrono::Utc::now();
    let ago = |d: u32| now - chrono::Duration::days(i64::from(d));
    let before = history::Cutoff {
        history: days.map_or(chrono::DateTime::<chrono::Utc>::MIN_UTC, ago),
        audit: (audit_days > 0).then(|| ago(audit_days)),
    };
    let age = days.map_or("(the history is kept)".to_string(), |d| {
        format!("older than {d} days")
    });
    let floor = fieldsync::features::approvals::PendingFloor::default();
    let result = SledStore::open(dir).and_then(|store| {
        fieldsync::write::outbox::count_if_unknown(&store)?;
        // As the service's checkpoint thread would.
        let whole = history::Pace::whole();
        let done = history::prune_all(&store, before, &floor, &whole, history::PASS, &mut |_| {
            if store.unchecked() >= fieldsync::store::checkpointer::DUE_KEYS {
                store.checkpoint()?;
            }
            Ok(())
        })?;
        store.flush_blocking()?;
        store.checkpoint()?;
        // As the service would within seconds: records whose ops are all finished (or
        // pruned) leave the journal.
        let compacted = fieldsync::store::journal::compact(
            &store,
            store.journal(),
            &|e| fieldsync::write::outbox::settled(&store, e),
            usize::MAX,
        )?;
        Ok((done, compacted))
    });
    match result {
        Ok((p, compacted)) => {
            println!(
                "pruned {} ops, {} change-log entries and {} idempotency records {age}, and {} audit entries (audit retention: {audit_days} days, 0 keeps them), compacted {compacted} journal records, in {:.1?}",
                p.ops,
                p.changes,
                p.idempotency,
                p.audit,
                started.elapsed()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("prune failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load_backlog(dir: &std::path::Path, backlog: &fieldsync::bulk_load::Backlog) -> ExitCode {
    let started = std::time::Instant::now();
    // The counts are kept up to date through the load, and its checkpoints persist them, so
    // the service's next start need not read every op.
    let result = SledStore::open(dir).and_then(|store| {
        fieldsync::write::outbox::count_if_unknown(&store)?;
        fieldsync::bulk_load::load(&store, backlog)
    });
    match result {
        Ok(done) => {
            println!(
                "loaded {} ops in {} journal records in {:.1}s",
                done.ops,
                done.records,
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("load: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check_store(dir: &std::path::Path) -> ExitCode {
    if !dir.join("db").exists() {
        eprintln!("check: no fieldsync data in {}", dir.display());
        return ExitCode::FAILURE;
    }
    let started = std::time::Instant::now();
    let store = match SledStore::open(dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("check: cannot open {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    };
    let recovered = store.recovery().clone();
    match fieldsync::write::outbox::check(&store) {
        Ok(report) => {
            println!(
                "journal: {} records (last seq {}); {} re-applied and {} quarantined on open{}",
                report.records,
                recovered.last,
                recovered.reapplied,
                recovered.quarantined,
                match recovered.converted {
                    Some(journal::Converted::PreJournal) =>
                        "; converted from the pre-journal layout",
                    Some(journal::Converted::Layout2) => "; converted from layout 2",
                    None => "",
                },
            );
            println!(
                "op counts: {}",
                if store.tally().known() {
                    "the checkpoint's, brought up to the journal, compared with a count of the ops"
                } else {
                    "not checkpointed (the next start counts every op)"
                }
            );
            println!(
                "indexes: {} keys rebuilt from the journal and compared",
                report.keys_checked
            );
            for c in &report.corrupt {
                println!("corrupt: {c}");
            }
            for (tree, key, what) in &report.differences {
                println!("differs: {tree} {key}: {what}");
            }
            println!("took {:.2}s", started.elapsed().as_secs_f64());
            if report.is_clean() {
                println!("ok");
                ExitCode::SUCCESS
            } else {
                println!(
                    "FAILED: {} corrupt, {} differences",
                    report.corrupt.len(),
                    report.differences.len()
                );
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("check: {e}");
            ExitCode::FAILURE
        }
    }
}

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

/// Who acts through `fieldsync users`: an operator at the server's shell, for the audit trail.
fn operator() -> fieldsync::auth::Principal {
    let login = std::env::var("USER").unwrap_or_else(|_| "operator".into());
    fieldsync::auth::Principal {
        user_id: format!("cli:{login}"),
        username: format!("cli:{login}"),
        name: login,
        role: fieldsync::auth::Role::Admin,
        resource_id: None,
        oversees: vec![],
        oversees_parent: None,
        device_id: "command-line".into(),
        family: String::new(),
        request_id: uuid::Uuid::now_v7().to_string(),
        client_request_id: None,
    }
}

/// Records an administrative change made from the command line.
fn audit_cli(
    s: &dyn fieldsync::store::Storage,
    action: &str,
    username: &str,
) -> Result<(), String> {
    let who = operator();
    fieldsync::features::audit::record(
        s,
        &who,
        fieldsync::features::audit::Event {
            action,
            object: username.to_string(),
            resource_id: None,
            activity_id: None,
            request_id: who.request_id.clone(),
            detail: serde_json::Value::Null,
        },
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}

fn manage_users(dir: &std::path::Path, action: UsersCommand) -> Result<(), String> {
    let store = SledStore::open(dir).map_err(|e| format!("cannot open {}: {e}", dir.display()))?;
    let s: &dyn fieldsync::store::Storage = &store;
    match action {
        UsersCommand::Add {
            username,
            name,
            role,
            resource,
            oversees,
            parent,
        } => {
            let password = read_password()?;
            let u = users::add(
                s,
                users::NewUser {
                    username,
                    name,
                    role,
                    resource_id: resource,
                    oversees,
                    oversees_parent: parent,
                    password,
                },
            )
            .map_err(|e| e.to_string())?;
            audit_cli(s, "user.add", &u.username)?;
            println!("added {} ({:?}, id {})", u.username, u.role, u.id);
        }
        UsersCommand::List => {
            for u in users::list(s).map_err(|e| e.to_string())? {
                println!(
                    "{}\t{:?}\tresource={}\toversees={}{}\t{}{}",
                    u.username,
                    u.role,
                    u.resource_id.as_deref().unwrap_or("-"),
                    u.oversees.join(","),
                    u.oversees_parent
                        .map(|p| format!(" parent={p}"))
                        .unwrap_or_default(),
                    if u.disabled { "disabled" } else { "active" },
                    if u.totp_secret.is_some() { " totp" } else { "" },
                );
            }
        }
        UsersCommand::Disable { username } => {
            users::disable(s, &username).map_err(|e| e.to_string())?;
            audit_cli(s, "user.disable", &username)?;
            println!("disabled {username}; their sessions are revoked");
        }
        UsersCommand::SetPassword { username } => {
            let password = read_password()?;
            users::set_password(s, &username, &password).map_err(|e| e.to_string())?;
            audit_cli(s, "user.set-password", &username)?;
            println!("password set for {username}; their sessions are revoked");
        }
        UsersCommand::EnrollTotp { username } => {
            let uri = users::enroll_totp(s, &username).map_err(|e| e.to_string())?;
            audit_cli(s, "user.enroll-totp", &username)?;
            println!("{uri}");
        }
    }
    fieldsync::store::Storage::flush_blocking(&store).map_err(|e| e.to_string())
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
