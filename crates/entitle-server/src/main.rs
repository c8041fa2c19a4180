//! `entitled`: the server binary.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use entitle_proto::ClientRegistration;
use entitle_server::entitlements::catalog;
use entitle_server::{
    audit::Actor,
    config::{CliOverrides, Config, LogFormat, EXAMPLE_CONFIG},
    error::ApiError,
    identity::bootstrap,
    oidc, AppState,
};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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

#[derive(Args, Default, Clone)]
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
    /// Create the first operator account (you, the vendor's staff) and email it a
    /// set-password link.
    Bootstrap {
        /// Your email address: you sign in with it.
        #[arg(long)]
        email: String,
        #[arg(long)]
        first_name: String,
        #[arg(long)]
        last_name: String,
        /// Your country: its name or ISO 3166-1 code (such as "United Kingdom" or GB).
        #[arg(long)]
        country: String,
        /// Add an operator even though one exists.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Manage the OpenID Connect signing keys.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Manage OAuth / OpenID Connect clients.
    Clients {
        #[command(subcommand)]
        action: ClientsAction,
    },
    /// Manage the products the vendor sells.
    Products {
        #[command(subcommand)]
        action: ProductsAction,
    },
    /// Manage organizations' subscriptions.
    Subscriptions {
        #[command(subcommand)]
        action: SubscriptionsAction,
    },
    /// Print the newest emails of the outbox (where mail goes without [smtp]), with their
    /// links whole.
    Outbox {
        /// How many of the newest to print.
        #[arg(long, default_value_t = 1)]
        count: usize,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Print a commented example configuration file.
    DefaultConfig,
    /// Print the OpenAPI document.
    Openapi,
}

#[derive(Subcommand)]
enum KeysAction {
    /// Add new signing keys; the old ones stay published until their tokens expire.
    Rotate {
        /// Rotate the license signing key instead (the old one stays published for a
        /// year and a day, as long as files it signed may live).
        #[arg(long)]
        license: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List the signing keys.
    List {
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
enum ProductsAction {
    /// Add a product.
    Add {
        /// What applications ask for: lowercase letters, digits and dashes.
        #[arg(long)]
        code: String,
        #[arg(long)]
        name: String,
        /// A version offered (repeatable).
        #[arg(long = "version")]
        versions: Vec<String>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Rename a product or replace its versions.
    Change {
        code: String,
        #[arg(long)]
        name: Option<String>,
        /// The versions offered (repeatable; replaces the list).
        #[arg(long = "version")]
        versions: Vec<String>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List the products.
    List {
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
enum SubscriptionsAction {
    /// Add a subscription for an organization.
    Add {
        /// The organization's id.
        #[arg(long)]
        org: uuid::Uuid,
        /// A product code (repeatable).
        #[arg(long = "product", required = true)]
        products: Vec<String>,
        /// Machines at once, for each product.
        #[arg(long)]
        seats: i64,
        /// YYYY-MM-DD (midnight UTC) or RFC 3339 [default: now].
        #[arg(long)]
        starts: Option<String>,
        /// YYYY-MM-DD (midnight UTC) or RFC 3339.
        #[arg(long)]
        ends: String,
        /// deny, allow or allow_up_to.
        #[arg(long, default_value = "deny")]
        overage: String,
        /// With allow_up_to: how many times the seats (such as 1.25).
        #[arg(long)]
        overage_factor: Option<f64>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Change the seats, dates or products of a subscription.
    Change {
        id: uuid::Uuid,
        #[arg(long)]
        seats: Option<i64>,
        #[arg(long)]
        starts: Option<String>,
        #[arg(long)]
        ends: Option<String>,
        /// The products (repeatable; replaces the list).
        #[arg(long = "product")]
        products: Vec<String>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// End a subscription now: it grants nothing new from this moment.
    End {
        id: uuid::Uuid,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List subscriptions, newest first.
    List {
        /// One organization's.
        #[arg(long)]
        org: Option<uuid::Uuid>,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
enum ClientsAction {
    /// Register a client and print its id (and secret, shown only now).
    Create {
        /// What people see on the device-approval page.
        #[arg(long)]
        name: String,
        /// A confidential client (gets a secret; may use client_credentials).
        #[arg(long)]
        confidential: bool,
        /// Where codes may be sent (repeatable). Loopback URIs accept any port.
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// Where RP-initiated logout may return (repeatable).
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// authorization_code, refresh_token, client_credentials or
        /// urn:ietf:params:oauth:grant-type:device_code (repeatable)
        /// [default: authorization_code and refresh_token].
        #[arg(long = "grant-type")]
        grant_types: Vec<String>,
        /// Scopes the client may ask for (repeatable) [default: openid profile email offline_access org].
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// The organization a service client acts for.
        #[arg(long)]
        org: Option<uuid::Uuid>,
        #[arg(long)]
        access_token_ttl_secs: Option<i64>,
        #[arg(long)]
        refresh_token_ttl_secs: Option<i64>,
        /// RS256, ES256 or EdDSA [default: RS256].
        #[arg(long)]
        id_token_alg: Option<String>,
        /// A confidential client serving APIs: may introspect other clients' tokens.
        #[arg(long)]
        resource_server: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List the registered clients.
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Disable a client and revoke everything it holds.
    Disable {
        client_id: String,
        #[command(flatten)]
        db: DbArgs,
    },
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
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("ENTITLE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    // Colours only for a person at a terminal, never into files or log collectors.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
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

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
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
            if state.config.smtp.is_none() {
                println!("No [smtp] is configured: `entitled outbox` prints the message.");
            }
            state.db.close().await;
        }
        Command::Outbox { count, db } => {
            let config = load(cli.config.as_deref(), db, None)?;
            let dir = config.data_dir.join("outbox");
            let messages = entitle_server::mail::newest_in_outbox(&dir, count)?;
            if messages.is_empty() {
                println!("No email in {}.", dir.display());
            }
            for message in messages {
                println!("{message}");
            }
        }
        Command::Keys { action } => keys_command(cli.config.as_deref(), action).await?,
        Command::Clients { action } => clients_command(cli.config.as_deref(), action).await?,
        Command::Products { action } => products_command(cli.config.as_deref(), action).await?,
        Command::Subscriptions { action } => {
            subscriptions_command(cli.config.as_deref(), action).await?
        }
        Command::Serve { listen, db } => {
            let mut config = load(cli.config.as_deref(), db, listen)?;
            tracing::debug!(config = ?config, "configuration");
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("listening on {}", config.listen))?;
            config.listen = listener.local_addr()?;
            if config.public_url.is_none() {
                if config.listens_beyond_loopback() {
                    tracing::warn!(
                        "listening on {} without public_url: links in emails and the OpenID Connect issuer use {}; set public_url to the address people reach this server at",
                        config.listen,
                        config.public_base()
                    );
                }
                config.public_url = Some(config.public_base());
            }
            tracing::info!("starting: {}", config.summary());
            let outbox = config
                .smtp
                .is_none()
                .then(|| config.data_dir.join("outbox"));
            let state = AppState::open(config).await?;
            if let Some(outbox) = outbox {
                tracing::info!(
                    "no [smtp] configured: emails are written to {}; `entitled outbox` prints the newest",
                    outbox.display()
                );
            }
            tracing::info!(address = %listener.local_addr()?, backend = state.db.backend(), "entitled listening");
            entitle_server::serve(state.clone(), listener, shutdown_signal()).await?;
            state.db.close().await;
            tracing::info!("stopped");
        }
    }
    Ok(())
}

fn time_of(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

async fn keys_command(config: Option<&std::path::Path>, action: KeysAction) -> anyhow::Result<()> {
    let db = match &action {
        KeysAction::Rotate { db, .. } | KeysAction::List { db } => db.clone(),
    };
    let state = AppState::open(load(config, db, None)?).await?;
    match action {
        KeysAction::Rotate { license: true, .. } => {
            let kid =
                entitle_server::entitlements::keys::rotate(&state, &command_actor("keys")).await?;
            println!(
                "New license signing key: {kid}. The previous key stays published for a year and a day, while files it signed may be in use."
            );
        }
        KeysAction::Rotate { .. } => {
            let (kids, retention) = oidc::api::rotate_keys(&state, &command_actor("keys"))
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.detail()))?;
            println!(
                "New signing keys: {}. The previous keys stay published for {} s, until every token they signed has expired.",
                kids.join(", "),
                retention / 1000
            );
        }
        KeysAction::List { .. } => {
            println!("{:<45} {:<6} {:<21} STATE", "KID", "ALG", "CREATED");
            let keys = oidc::api::signing_keys(&state)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.detail()))?;
            for key in keys {
                let status = match (key.retired_at, key.publish_until) {
                    (None, _) => "active".to_owned(),
                    (Some(_), Some(until)) if until > entitle_server::db::now_ms() => {
                        format!("retired, published until {}", time_of(until))
                    }
                    _ => "retired, unpublished".to_owned(),
                };
                println!(
                    "{:<45} {:<6} {:<21} {status}",
                    key.kid,
                    key.alg,
                    time_of(key.created_at)
                );
            }
        }
    }
    state.db.close().await;
    Ok(())
}

/// Who a command line change is recorded as.
fn command_actor(command: &str) -> Actor {
    Actor {
        id: None,
        label: Some(format!("entitled {command} (command line)")),
        ip: None,
    }
}

/// A refused command: each field and why, and exit code 2.
fn refuse(error: ApiError) -> anyhow::Error {
    if let ApiError::Validation(fields) = &error {
        for field in fields {
            eprintln!("error: {}: {}", field.field, field.message);
        }
        std::process::exit(2);
    }
    anyhow::anyhow!("{}", error.detail())
}

/// `YYYY-MM-DD` (midnight UTC) or RFC 3339, as Unix milliseconds.
fn parse_when(flag: &str, raw: &str) -> anyhow::Result<i64> {
    use time::format_description::well_known::Rfc3339;
    let day = time::macros::format_description!("[year]-[month]-[day]");
    let at = time::Date::parse(raw, &day)
        .map(|d| d.midnight().assume_utc())
        .or_else(|_| time::OffsetDateTime::parse(raw, &Rfc3339))
        .map_err(|_| {
            anyhow::anyhow!("--{flag} {raw:?}: give a date as YYYY-MM-DD or an RFC 3339 time")
        })?;
    Ok((at.unix_timestamp_nanos() / 1_000_000) as i64)
}

fn print_subscription(s: &entitle_proto::Subscription) {
    println!(
        "{}  org {}  {}  {} seats  {} → {}  overage {}{}  [{}]",
        s.id,
        s.org_id,
        s.products.join(","),
        s.seats,
        time_of(s.starts_at),
        time_of(s.ends_at),
        serde_json::to_value(s.overage)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        s.overage_factor
            .map(|f| format!(" ×{f}"))
            .unwrap_or_default(),
        s.status
    );
}

async fn products_command(
    config: Option<&std::path::Path>,
    action: ProductsAction,
) -> anyhow::Result<()> {
    let db = match &action {
        ProductsAction::Add { db, .. }
        | ProductsAction::Change { db, .. }
        | ProductsAction::List { db } => db.clone(),
    };
    let state = AppState::open(load(config, db, None)?).await?;
    let actor = command_actor("products");
    match action {
        ProductsAction::Add {
            code,
            name,
            versions,
            ..
        } => {
            let new = entitle_proto::NewProduct {
                code,
                name,
                versions,
            };
            let product = catalog::add_product(&state, &actor, &new)
                .await
                .map_err(refuse)?;
            println!(
                "Product {} ({}) added: {}",
                product.code, product.name, product.id
            );
        }
        ProductsAction::Change {
            code,
            name,
            versions,
            ..
        } => {
            let change = entitle_proto::ProductChange {
                name,
                versions: (!versions.is_empty()).then_some(versions),
            };
            let product = catalog::change_product(&state, &actor, &code, &change)
                .await
                .map_err(refuse)?;
            println!(
                "Product {} is now {:?}, versions {}",
                product.code,
                product.name,
                product.versions.join(", ")
            );
        }
        ProductsAction::List { .. } => {
            let mut conn = state.db.reader().await?;
            println!("{:<24} {:<32} VERSIONS", "CODE", "NAME");
            for p in catalog::products(&mut conn).await? {
                println!("{:<24} {:<32} {}", p.code, p.name, p.versions.join(", "));
            }
        }
    }
    state.db.close().await;
    Ok(())
}

async fn subscriptions_command(
    config: Option<&std::path::Path>,
    action: SubscriptionsAction,
) -> anyhow::Result<()> {
    let db = match &action {
        SubscriptionsAction::Add { db, .. }
        | SubscriptionsAction::Change { db, .. }
        | SubscriptionsAction::End { db, .. }
        | SubscriptionsAction::List { db, .. } => db.clone(),
    };
    let state = AppState::open(load(config, db, None)?).await?;
    let actor = command_actor("subscriptions");
    match action {
        SubscriptionsAction::Add {
            org,
            products,
            seats,
            starts,
            ends,
            overage,
            overage_factor,
            ..
        } => {
            let overage = serde_json::from_value(serde_json::Value::String(overage.clone()))
                .map_err(|_| {
                    anyhow::anyhow!("--overage {overage:?}: use deny, allow or allow_up_to")
                })?;
            let new = entitle_proto::NewSubscription {
                org_id: org,
                products,
                seats,
                starts_at: starts.map(|s| parse_when("starts", &s)).transpose()?,
                ends_at: parse_when("ends", &ends)?,
                overage,
                overage_factor,
            };
            let created = catalog::add_subscription(&state, &actor, &new)
                .await
                .map_err(refuse)?;
            print_subscription(&created);
        }
        SubscriptionsAction::Change {
            id,
            seats,
            starts,
            ends,
            products,
            ..
        } => {
            let change = entitle_proto::SubscriptionChange {
                seats,
                starts_at: starts.map(|s| parse_when("starts", &s)).transpose()?,
                ends_at: ends.map(|s| parse_when("ends", &s)).transpose()?,
                products: (!products.is_empty()).then_some(products),
            };
            let changed = catalog::change_subscription(&state, &actor, id, &change)
                .await
                .map_err(refuse)?;
            print_subscription(&changed);
        }
        SubscriptionsAction::End { id, .. } => {
            let ended = catalog::end_subscription(&state, &actor, id)
                .await
                .map_err(refuse)?;
            print_subscription(&ended);
        }
        SubscriptionsAction::List { org, .. } => {
            let mut conn = state.db.reader().await?;
            for s in catalog::subscriptions(&mut conn, org).await? {
                print_subscription(&s);
            }
        }
    }
    state.db.close().await;
    Ok(())
}

async fn clients_command(
    config: Option<&std::path::Path>,
    action: ClientsAction,
) -> anyhow::Result<()> {
    let db = match &action {
        ClientsAction::Create { db, .. }
        | ClientsAction::List { db }
        | ClientsAction::Disable { db, .. } => db.clone(),
    };
    let state = AppState::open(load(config, db, None)?).await?;
    let actor = command_actor("clients");
    match action {
        ClientsAction::Create {
            name,
            confidential,
            redirect_uris,
            post_logout_redirect_uris,
            grant_types,
            scopes,
            org,
            access_token_ttl_secs,
            refresh_token_ttl_secs,
            id_token_alg,
            resource_server,
            ..
        } => {
            let request = ClientRegistration {
                name,
                confidential,
                redirect_uris,
                post_logout_redirect_uris,
                grant_types,
                scopes,
                org_id: org,
                access_token_ttl_secs,
                refresh_token_ttl_secs,
                id_token_signed_response_alg: id_token_alg,
                resource_server,
            };
            let client = oidc::api::register(&state, &actor, &request)
                .await
                .map_err(refuse)?;
            println!("client_id: {}", client.client_id);
            if let Some(secret) = &client.client_secret {
                println!("client_secret: {secret}");
                println!("(The secret is shown only now; store it safely.)");
            }
        }
        ClientsAction::List { .. } => {
            let mut conn = state.db.reader().await?;
            println!("{:<34} {:<13} {:<30} GRANTS", "CLIENT_ID", "TYPE", "NAME");
            for client in oidc::clients::list(&mut conn).await? {
                let kind = if client.confidential {
                    "confidential"
                } else {
                    "public"
                };
                println!(
                    "{:<34} {:<13} {:<30} {}",
                    client.client_id, kind, client.name, client.grant_types
                );
            }
        }
        ClientsAction::Disable { client_id, .. } => {
            oidc::api::disable(&state, &actor, &client_id)
                .await
                .map_err(|_| {
                    anyhow::anyhow!(
                        "no enabled client {client_id:?} (built-in clients cannot be disabled)"
                    )
                })?;
            println!("Client {client_id} disabled; its tokens are revoked.");
        }
    }
    state.db.close().await;
    Ok(())
}
