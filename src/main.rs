//! The `siemgate` binary: `serve` runs the gateway, `check` validates a config, `normalize`
//! prints the events a payload would become. The only place `anyhow` is used.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use siemgate::config::{self, ConfigError};
use siemgate::normalize_cli;

#[derive(Parser)]
#[command(
    name = "siemgate",
    version,
    about = "Webhook receiver and SIEM forwarding gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        #[arg(long, short, default_value = "config/siemgate.toml")]
        config: PathBuf,
        /// What this process runs: intake and delivery together, or one of them in a cluster
        /// on Kafka.
        #[arg(long, value_enum, default_value_t = RoleArg::All)]
        role: RoleArg,
    },
    /// Validate a config file and list every problem found.
    Check {
        #[arg(long, short, default_value = "config/siemgate.toml")]
        config: PathBuf,
        /// Also check that the config can run in this role (`serve --role`).
        #[arg(long, value_enum, default_value_t = RoleArg::All)]
        role: RoleArg,
    },
    /// Print the events a webhook body would become, one JSON event a line, exactly as the file
    /// sink writes them, without a server. The body is read from standard input with the
    /// default request limits (`[server.limits]`: 1 MiB, 10,000 events).
    #[command(after_help = NORMALIZE_HELP)]
    Normalize {
        /// The payload family, as a source's `vendor`: generic, prisma_cloud, wallarm,
        /// coralogix or immuta.
        #[arg(long)]
        vendor: String,
        /// A TOML file with the keys of a `[sources.mapping]` table (without the header),
        /// for `--vendor generic`.
        #[arg(long, value_name = "FILE")]
        mapping: Option<PathBuf>,
        /// The source id the events carry.
        #[arg(long = "source", value_name = "ID", default_value = normalize_cli::DEFAULT_SOURCE)]
        source: String,
        /// A JSON pointer to redact in every event besides the vendor's credential fields, as
        /// a source's `redact`; may be given several times.
        #[arg(long, value_name = "POINTER")]
        redact: Vec<String>,
        /// `siemgate` (the Event) or `ocsf` (one OCSF class object per event), as a sink's
        /// `encoding`.
        #[arg(long, value_name = "ENCODING", default_value = "siemgate")]
        encoding: String,
        /// With `--encoding ocsf`: 1.1.0 (the default) or 1.8.0, as a sink's `ocsf_version`.
        #[arg(long, value_name = "VERSION")]
        ocsf_version: Option<String>,
    },
}

/// What `serve` runs in a cluster (`config::role`).
#[derive(Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    /// Intake and delivery in one process (any queue).
    All,
    /// Only the hooks listener: every sink's events go to its Kafka topic; nothing is
    /// delivered here. Every sink's queue must be kafka.
    Intake,
    /// Only delivery: each sink's consumer group and worker; no hooks listener (admin and
    /// metrics still serve). Every sink's queue must be kafka.
    Deliver,
}

impl From<RoleArg> for config::role::Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::All => config::role::Role::All,
            RoleArg::Intake => config::role::Role::Intake,
            RoleArg::Deliver => config::role::Role::Deliver,
        }
    }
}

const NORMALIZE_HELP: &str = "\
Example:
  siemgate normalize --vendor wallarm --source wallarm < fixtures/vendors/wallarm-new_hits-array-2023.json

Exit codes:
  0  the events were printed (none for a body without events)
  1  standard input could not be read or standard output written
  2  usage error: unknown vendor, bad --source, --mapping file, --redact pointer,
     --encoding or --ocsf-version
  3  the gateway would refuse the body: over the size cap, not UTF-8, nested too deep,
     malformed JSON (the message gives the byte offset), the wrong shape, or too many events
Nothing is printed on standard output for a refused body.";

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SIEMGATE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let result = match cli.command {
        Command::Serve { config, role } => serve(config, role.into()),
        Command::Check { config, role } => return check(&config, role.into()),
        Command::Normalize {
            vendor,
            mapping,
            source,
            redact,
            encoding,
            ocsf_version,
        } => {
            return normalize(normalize_cli::Options {
                vendor,
                mapping,
                source,
                redact,
                encoding,
                ocsf_version,
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("siemgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &std::path::Path, role: config::role::Role) -> ExitCode {
    let loaded = config::load(path).and_then(|mut settings| {
        settings.role = role;
        let issues = config::role::check(&settings);
        match issues.is_empty() {
            true => Ok(settings),
            false => Err(ConfigError::Invalid(issues)),
        }
    });
    match loaded {
        Ok(settings) => {
            println!(
                "{}: ok ({} sources, {} sinks)",
                path.display(),
                settings.sources.len(),
                settings.sinks.len()
            );
            ExitCode::SUCCESS
        }
        Err(ConfigError::Invalid(issues)) => {
            eprintln!("{}: {} problems", path.display(), issues.len());
            for issue in issues {
                eprintln!("  {issue}");
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn normalize(options: normalize_cli::Options) -> ExitCode {
    let result = normalize_cli::prepare(&options).and_then(|prepared| {
        normalize_cli::run(
            &prepared,
            normalize_cli::Limits::default(),
            std::io::stdin().lock(),
            std::io::stdout().lock(),
            siemgate::normalize::Timestamp::now(),
        )
    });
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("siemgate normalize: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn serve(path: PathBuf, role: config::role::Role) -> anyhow::Result<()> {
    let mut settings = config::load(&path)?;
    settings.role = role;
    let issues = config::role::check(&settings);
    if !issues.is_empty() {
        // Before any listener or Kafka client starts.
        return Err(ConfigError::Invalid(issues).into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async {
        let mut signals = siemgate::shutdown::Signals::install()
            .context("cannot install SIGTERM/SIGINT handlers")?;
        let gateway = siemgate::start(settings).await?;
        match gateway.hooks_listener() {
            Some(addr) => tracing::info!(addr = %addr, role = %role, "hooks listener ready"),
            None => tracing::info!(role = %role, "no hooks listener: this node only delivers"),
        }
        if let Some(addr) = gateway.metrics_addr() {
            tracing::info!(addr = %addr, "metrics listener ready");
        }
        if let Some(addr) = gateway.admin_addr() {
            tracing::info!(addr = %addr, "admin listener ready");
        }
        while signals.recv().await == siemgate::shutdown::Request::Reload {
            // The outcome is logged by `reload`; a refused reload leaves the running config.
            let _ = gateway.reload().await;
        }
        gateway.shutdown();
        gateway.wait().await;
        anyhow::Ok(())
    });
    // A sink write stuck in the kernel (a full pipe, a hung NFS mount) holds a blocking-pool
    // thread that nothing can interrupt; the gateway has already stopped and kept what it
    // could not deliver, so the process does not wait for that thread.
    runtime.shutdown_timeout(RUNTIME_EXIT_WAIT);
    result
}

/// How long the exiting process waits for blocking-pool threads after the gateway stopped.
const RUNTIME_EXIT_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
