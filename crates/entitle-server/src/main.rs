//! `entitled`: the server binary.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use entitle_server::{
    config::{CliOverrides, Config, LogFormat, EXAMPLE_CONFIG},
    identity::bootstrap,
    AppState,
};

#[derive(Parser)]
#[command(
    name = "entitled",
    version,
    about = "entitle server: identity, organizations and entitlements"
)]
struct Cli {
    /// TOML configuration file (also ENTITLE_CONFIG).
    #[arg(long, global = true, env = "ENTITLE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Default)]
struct DbArgs {
    /// Data directory holding the embedded SQLite database and the mail outbox [default: ./data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// postgres://… to use PostgreSQL instead of the embedded SQLite file.
    #[arg(long)]
    database_url: Option<String>,
    /// Log format: text or json.
    #[arg(long, value_parser = parse_log_format)]
    log_format: Option<LogFormat>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (migrates the database first).
    Serve {
        /// Address to listen on [default: 127.0.0.1:8080].
        #[arg(long)]
        listen: Option<SocketAddr>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Apply database migrations and exit.
    Migrate {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Create the first operator account and email it a set-password link.
    Bootstrap {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "entitle")]
        first_name: String,
        #[arg(long, default_value = "Operator")]
        last_name: String,
        /// ISO 3166-1 country of the operator.
        #[arg(long, default_value = "US")]
        country: String,
        /// Add an operator even though one exists.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Print a commented example configuration file.
    DefaultConfig,
    /// Print the OpenAPI document.
    Openapi,
}

fn parse_log_format(raw: &str) -> Result<LogFormat, String> {
    match raw {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("unknown log format {other:?}; use text or json")),
    }
}

fn load(
    config: Option<&std::path::Path>,
    db: DbArgs,
    listen: Option<SocketAddr>,
) -> anyhow::Result<Config> {
    let config = Config::load(
        config,
        CliOverrides {
            listen,
            data_dir: db.data_dir,
            database_url: db.database_url,
            log_format: db.log_format,
        },
    )?;
    init_logging(config.log_format);
    Ok(config)
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ENTITLE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::DefaultConfig => print!("{EXAMPLE_CONFIG}"),
        Command::Openapi => println!(
            "{}",
            serde_json::to_string_pretty(&entitle_server::http::openapi())?
        ),
        Command::Migrate { db } => {
            let config = load(cli.config.as_deref(), db, None)?;
            let state = AppState::open(config).await?;
            tracing::info!(backend = state.db.backend(), "migrations applied");
            state.db.close().await;
        }
        Command::Bootstrap {
            email,
            first_name,
            last_name,
            country,
            force,
            db,
        } => {
            let config = load(cli.config.as_deref(), db, None)?;
            let state = AppState::open(config).await?;
            let outcome = bootstrap::bootstrap_operator(
                &state,
                &email,
                &first_name,
                &last_name,
                &country,
                force,
            )
            .await?;
            match outcome {
                bootstrap::Outcome::Created => {
                    println!("Operator account created; a set-password link was sent to {email}.")
                }
                bootstrap::Outcome::Promoted => println!(
                    "Existing account made an operator; a set-password link was sent to {email}."
                ),
            }
            state.db.close().await;
        }
        Command::Serve { listen, db } => {
            let config = load(cli.config.as_deref(), db, listen)?;
            tracing::info!(config = ?config, "starting");
            let listen = config.listen;
            let state = AppState::open(config).await?;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("listening on {listen}"))?;
            tracing::info!(address = %listener.local_addr()?, backend = state.db.backend(), "entitled listening");
            entitle_server::serve(state.clone(), listener, shutdown_signal()).await?;
            state.db.close().await;
            tracing::info!("stopped");
        }
    }
    Ok(())
}
