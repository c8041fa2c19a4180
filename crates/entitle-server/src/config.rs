//! Configuration: defaults, then a TOML file, then `ENTITLE_*` variables, then flags.

use std::{fmt, net::SocketAddr, path::PathBuf};

use figment::{
    providers::{Env, Format, Serialized, Toml},
    Figment,
};
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// Holds the SQLite database, the mail outbox and anything else on local disk.
    pub data_dir: PathBuf,
    /// `postgres://…` to run on PostgreSQL; empty runs on `<data_dir>/entitle.db`.
    pub database_url: Option<String>,
    /// The URL people reach this server at; links in emails start with it.
    pub public_url: Option<String>,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// Honour `X-Forwarded-For` from a reverse proxy when deciding a client's address.
    pub trust_forwarded_for: bool,
    pub password: PasswordConfig,
    pub tokens: TokenConfig,
    pub throttle: ThrottleConfig,
    pub smtp: Option<SmtpConfig>,
    pub oidc: OidcConfig,
    pub domains: DomainConfig,
    pub metrics: MetricsConfig,
    pub licensing: LicensingConfig,
    pub metering: MeteringConfig,
}

/// Usage metering: how long the raw usage events are kept. The per-interval aggregates
/// reports read are kept forever.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MeteringConfig {
    /// Days raw usage events are kept; `entitled usage recompute` reaches back this far.
    pub raw_retention_days: i64,
}

impl Default for MeteringConfig {
    fn default() -> Self {
        MeteringConfig {
            raw_retention_days: 400,
        }
    }
}

/// Online leases: how long a signed lease works offline, and how often its holder renews it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LicensingConfig {
    /// How long a lease keeps working without the server (seconds).
    pub lease_grace_secs: i64,
    /// How often a lease's holder sends a heartbeat (seconds). A lease whose heartbeats
    /// stop gives its seat back one interval after the last.
    pub heartbeat_secs: i64,
}

impl Default for LicensingConfig {
    fn default() -> Self {
        LicensingConfig {
            lease_grace_secs: 7 * 86_400,
            heartbeat_secs: 300,
        }
    }
}

/// Where Prometheus scrapes `/metrics`: never public by default.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve `/metrics` on the main address to requests with this bearer token.
    pub bearer_token: Option<String>,
    /// Serve `/metrics` alone on this address (such as 127.0.0.1:9464), without a token.
    pub listen: Option<SocketAddr>,
}

impl fmt::Debug for MetricsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsConfig")
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .field("listen", &self.listen)
            .finish()
    }
}

/// Organizations' domain claims, verified by a DNS TXT record.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DomainConfig {
    /// The DNS server to ask (`address:port`); the system's resolvers when unset. Point
    /// it at the site's own resolver where the server cannot reach public DNS.
    pub resolver: Option<SocketAddr>,
    /// How often verified domains are checked again, in seconds.
    pub recheck_interval_secs: i64,
    /// Mail domains anyone can have an address at: never claimable.
    pub public_mail_domains: Vec<String>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Argon2id parameters; the defaults are OWASP's minimum (19 MiB, 2 passes, 1 lane).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordConfig {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Hashing threads, so hashes running at once; each holds `memory_kib` of memory.
    /// Defaults to the number of cores.
    pub max_concurrent_hashes: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenConfig {
    pub password_reset_ttl_secs: i64,
    pub email_verification_ttl_secs: i64,
    pub invitation_ttl_secs: i64,
    pub session_ttl_secs: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleConfig {
    /// Failed sign-ins for one account before delays start.
    pub account_free_failures: i64,
    /// Failed sign-ins from one client address before delays start.
    pub address_free_failures: i64,
    /// The longest delay, in seconds; delays double from one second up to it.
    pub max_delay_secs: i64,
    /// Recovery and sign-up emails per address per hour.
    pub emails_per_hour: i64,
}

/// The OpenID Connect provider. Clients may shorten the token lifetimes for themselves.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcConfig {
    /// 32 bytes, base64: encrypts the signing keys and keys refresh tokens. Every server
    /// process on one database needs the same value; by default it is generated into
    /// `<data_dir>/key-encryption.key`.
    pub key_encryption_key: Option<String>,
    pub access_token_ttl_secs: i64,
    pub id_token_ttl_secs: i64,
    /// Refresh tokens for `offline_access` (automatic sign-in); sliding: each use extends.
    pub refresh_token_ttl_secs: i64,
    pub authorization_code_ttl_secs: i64,
    pub device_code_ttl_secs: i64,
    pub device_poll_interval_secs: i64,
    /// `ES256`, `EdDSA` or `RS256`: the signature of JWT access tokens.
    pub access_token_alg: String,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    /// `none` (plain, for a local relay), `starttls` or `tls`.
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The From address of every message.
    pub from: String,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    None,
    Starttls,
    Tls,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            public_url: None,
            log_format: LogFormat::Text,
            trust_forwarded_for: false,
            password: PasswordConfig::default(),
            tokens: TokenConfig::default(),
            throttle: ThrottleConfig::default(),
            smtp: None,
            oidc: OidcConfig::default(),
            domains: DomainConfig::default(),
            metrics: MetricsConfig::default(),
            licensing: LicensingConfig::default(),
            metering: MeteringConfig::default(),
        }
    }
}

impl Default for DomainConfig {
    fn default() -> Self {
        DomainConfig {
            resolver: None,
            recheck_interval_secs: 6 * 3600,
            public_mail_domains: [
                "gmail.com",
                "googlemail.com",
                "outlook.com",
                "hotmail.com",
                "live.com",
                "msn.com",
                "yahoo.com",
                "ymail.com",
                "icloud.com",
                "me.com",
                "mac.com",
                "aol.com",
                "proton.me",
                "protonmail.com",
                "gmx.com",
                "gmx.de",
                "gmx.net",
                "web.de",
                "mail.com",
                "yandex.ru",
                "mail.ru",
                "qq.com",
                "163.com",
                "zoho.com",
                "fastmail.com",
                "tutanota.com",
            ]
            .map(str::to_owned)
            .to_vec(),
        }
    }
}

impl Default for OidcConfig {
    fn default() -> Self {
        OidcConfig {
            key_encryption_key: None,
            access_token_ttl_secs: 600,
            id_token_ttl_secs: 3600,
            refresh_token_ttl_secs: 90 * 24 * 3600,
            authorization_code_ttl_secs: 60,
            device_code_ttl_secs: 600,
            device_poll_interval_secs: 5,
            access_token_alg: "ES256".to_owned(),
        }
    }
}

impl fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcConfig")
            .field(
                "key_encryption_key",
                &self.key_encryption_key.as_ref().map(|_| "<redacted>"),
            )
            .field("access_token_ttl_secs", &self.access_token_ttl_secs)
            .field("id_token_ttl_secs", &self.id_token_ttl_secs)
            .field("refresh_token_ttl_secs", &self.refresh_token_ttl_secs)
            .field(
                "authorization_code_ttl_secs",
                &self.authorization_code_ttl_secs,
            )
            .field("device_code_ttl_secs", &self.device_code_ttl_secs)
            .field("device_poll_interval_secs", &self.device_poll_interval_secs)
            .field("access_token_alg", &self.access_token_alg)
            .finish()
    }
}

impl Default for PasswordConfig {
    fn default() -> Self {
        PasswordConfig {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
            max_concurrent_hashes: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
        }
    }
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            password_reset_ttl_secs: 3600,
            email_verification_ttl_secs: 24 * 3600,
            invitation_ttl_secs: 7 * 24 * 3600,
            session_ttl_secs: 12 * 3600,
        }
    }
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            account_free_failures: 5,
            address_free_failures: 20,
            max_delay_secs: 15 * 60,
            emails_per_hour: 10,
        }
    }
}

/// The base URL of a server listening on `listen` that was given no public URL: the
/// address itself, or the machine's name when it listens on every interface.
fn derived_base(listen: SocketAddr) -> String {
    if listen.ip().is_unspecified() {
        let host = hostname::get()
            .ok()
            .and_then(|h| h.into_string().ok())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_owned());
        format!("http://{host}:{}", listen.port())
    } else {
        format!("http://{listen}")
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("public_url", &self.public_url)
            .field("log_format", &self.log_format)
            .field("trust_forwarded_for", &self.trust_forwarded_for)
            .field("password", &self.password)
            .field("tokens", &self.tokens)
            .field("throttle", &self.throttle)
            .field("smtp", &self.smtp)
            .field("oidc", &self.oidc)
            .field("domains", &self.domains)
            .field("metrics", &self.metrics)
            .finish()
    }
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .finish()
    }
}

/// Hides the password of a `scheme://user:password@host/db` URL.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("redacted"));
            url.to_string()
        }
        Ok(url) => url.to_string(),
        Err(_) => "<unparseable url>".to_owned(),
    }
}

/// Overrides given on the command line; `None` leaves the lower layers' value.
#[derive(Debug, Default, Serialize)]
pub struct CliOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
}

/// Variables whose value is a secret may instead name a file holding it.
const FILE_VARIABLES: &[(&str, &str)] = &[
    ("ENTITLE_DATABASE_URL_FILE", "database_url"),
    ("ENTITLE_SMTP__PASSWORD_FILE", "smtp.password"),
    (
        "ENTITLE_OIDC__KEY_ENCRYPTION_KEY_FILE",
        "oidc.key_encryption_key",
    ),
    ("ENTITLE_METRICS__BEARER_TOKEN_FILE", "metrics.bearer_token"),
];

impl Config {
    pub fn load(file: Option<&std::path::Path>, cli: CliOverrides) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            anyhow::ensure!(
                path.exists(),
                "config file {} does not exist",
                path.display()
            );
            figment = figment.merge(Toml::file(path));
        }
        let fields = top_level_fields();
        let is_setting = move |name: &str| {
            let first = name
                .split("__")
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            fields.contains(&first)
        };
        for (name, _) in std::env::vars() {
            if let Some(rest) = name.strip_prefix("ENTITLE_") {
                let is_other = rest == "CONFIG"
                    || rest == "LOG"
                    || rest.starts_with("TEST_")
                    || rest.ends_with("_FILE");
                if !is_other && !is_setting(rest) {
                    // Logging is not set up yet: its format comes from this very config.
                    eprintln!("warning: unknown environment variable {name} ignored");
                }
            }
        }
        figment = figment.merge(
            Env::prefixed("ENTITLE_")
                .filter(move |key| {
                    is_setting(key.as_str())
                        && !key.as_str().to_ascii_lowercase().ends_with("_file")
                })
                .split("__"),
        );
        for (variable, key) in FILE_VARIABLES {
            if let Ok(path) = std::env::var(variable) {
                let value = std::fs::read_to_string(&path)
                    .map_err(|e| anyhow::anyhow!("reading {variable}={path}: {e}"))?;
                figment = figment.merge(Serialized::default(key, value.trim().to_owned()));
            }
        }
        figment = figment.merge(Serialized::defaults(cli));
        let config: Config = figment.extract()?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.password.memory_kib >= 8 * self.password.parallelism.max(1),
            "password.memory_kib must be at least 8 × parallelism"
        );
        anyhow::ensure!(
            self.password.iterations >= 1,
            "password.iterations must be ≥ 1"
        );
        anyhow::ensure!(
            self.password.max_concurrent_hashes >= 1,
            "password.max_concurrent_hashes must be ≥ 1"
        );
        let oidc = &self.oidc;
        for (name, value) in [
            ("access_token_ttl_secs", oidc.access_token_ttl_secs),
            ("id_token_ttl_secs", oidc.id_token_ttl_secs),
            ("refresh_token_ttl_secs", oidc.refresh_token_ttl_secs),
            (
                "authorization_code_ttl_secs",
                oidc.authorization_code_ttl_secs,
            ),
            ("device_code_ttl_secs", oidc.device_code_ttl_secs),
            ("device_poll_interval_secs", oidc.device_poll_interval_secs),
        ] {
            anyhow::ensure!(value >= 1, "oidc.{name} must be ≥ 1");
        }
        anyhow::ensure!(
            crate::oidc::keys::Alg::parse(&oidc.access_token_alg).is_some(),
            "oidc.access_token_alg must be ES256, EdDSA or RS256"
        );
        // A quarter's report is recomputed from its raw events: they outlive a quarter.
        anyhow::ensure!(
            self.metering.raw_retention_days >= 100,
            "metering.raw_retention_days must be ≥ 100 (a quarter and a margin)"
        );
        if let Some(url) = &self.public_url {
            url::Url::parse(url).map_err(|e| anyhow::anyhow!("public_url: {e}"))?;
        }
        if let Some(url) = &self.database_url {
            anyhow::ensure!(
                url.starts_with("postgres://")
                    || url.starts_with("postgresql://")
                    || url.starts_with("sqlite:"),
                "database_url must start with postgres:// or sqlite:"
            );
        }
        Ok(())
    }

    /// The base of links in emails and redirects, without a trailing slash.
    pub fn public_base(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => derived_base(self.listen),
        }
    }

    /// Whether people on other machines can reach the server at its listen address.
    pub fn listens_beyond_loopback(&self) -> bool {
        !self.listen.ip().is_loopback()
    }

    /// One line for the start-up log: where it listens and is reached, its database and
    /// mail; the whole configuration is logged at debug.
    pub fn summary(&self) -> String {
        let database = match &self.database_url {
            Some(url) => redact_url(url),
            None => format!("sqlite {}", self.data_dir.join("entitle.db").display()),
        };
        let mail = match &self.smtp {
            Some(smtp) => format!("smtp {}:{}", smtp.host, smtp.port),
            None => format!("outbox {}", self.data_dir.join("outbox").display()),
        };
        format!(
            "listen {}, public URL {}, database {database}, mail {mail}",
            self.listen,
            self.public_base()
        )
    }

    /// A configuration for tests: cheap password hashing, no SMTP, a given data directory.
    pub fn for_test(data_dir: PathBuf) -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir,
            password: PasswordConfig {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
                max_concurrent_hashes: 2,
            },
            ..Config::default()
        }
    }
}

fn top_level_fields() -> Vec<String> {
    serde_json::to_value(Config::default())
        .ok()
        .and_then(|v| v.as_object().map(|o| o.keys().cloned().collect()))
        .unwrap_or_default()
}

/// The commented example printed by `entitled default-config`.
pub const EXAMPLE_CONFIG: &str = r#"# entitled configuration. Every key is optional; shown are the defaults.
# Each key can also be set as an ENTITLE_* environment variable, with "__" for
# nesting (ENTITLE_SMTP__HOST), and the main ones as command-line flags.
# Secrets may be read from files: ENTITLE_DATABASE_URL_FILE, ENTITLE_SMTP__PASSWORD_FILE,
# ENTITLE_OIDC__KEY_ENCRYPTION_KEY_FILE.

# Address the HTTP server listens on.
listen = "127.0.0.1:8080"

# Directory for the embedded SQLite database and the mail outbox.
data_dir = "./data"

# Run on PostgreSQL instead of the embedded SQLite file:
# database_url = "postgres://entitle:secret@db.example.com/entitle"

# The URL people use to reach this server; links in emails start with it.
# public_url = "https://id.example.com"

# "text" or "json".
log_format = "text"

# Trust X-Forwarded-For from a reverse proxy for client addresses (throttling, audit).
trust_forwarded_for = false

[password]
# Argon2id. Defaults are OWASP's minimum; raise them on faster machines.
# Stored hashes are upgraded on the next successful sign-in.
memory_kib = 19456
iterations = 2
parallelism = 1
# Hashing threads (hashes at once); defaults to the number of cores.
# max_concurrent_hashes = 2

[tokens]
password_reset_ttl_secs = 3600
email_verification_ttl_secs = 86400
invitation_ttl_secs = 604800
session_ttl_secs = 43200

[throttle]
account_free_failures = 5
address_free_failures = 20
max_delay_secs = 900
emails_per_hour = 10

[oidc]
# 32 random bytes, base64, that encrypt the signing keys in the database and key the
# refresh tokens. Generated into <data_dir>/key-encryption.key when unset; set it (or
# ENTITLE_OIDC__KEY_ENCRYPTION_KEY_FILE) when several servers share one PostgreSQL.
# key_encryption_key = "…"
access_token_ttl_secs = 600
id_token_ttl_secs = 3600
# Automatic sign-in (offline_access): sliding, each use extends it.
refresh_token_ttl_secs = 7776000
authorization_code_ttl_secs = 60
device_code_ttl_secs = 600
device_poll_interval_secs = 5
# Signature of JWT access tokens: "ES256", "EdDSA" or "RS256". ID tokens are RS256
# unless a client asks for another.
access_token_alg = "ES256"

[domains]
# The DNS server that domain claims are verified against ("address:port"); the system's
# resolvers when unset.
# resolver = "10.0.0.53:53"
# Verified domains are checked again this often (seconds); a domain whose TXT record
# is gone becomes unverified and its organization's administrators are told.
recheck_interval_secs = 21600
# Mail domains anyone can have an address at; they cannot be claimed. Setting this
# replaces the built-in list (gmail.com, outlook.com, yahoo.com, icloud.com, …).
# public_mail_domains = ["gmail.com", "outlook.com"]

[licensing]
# How long an online lease keeps working without the server (7 days), and how often its
# holder sends a heartbeat; a lease whose heartbeats stop gives its seat back one
# interval after the last.
lease_grace_secs = 604800
heartbeat_secs = 300

[metrics]
# Prometheus metrics at /metrics are not public. Serve them on the main address to
# requests with this bearer token (or ENTITLE_METRICS__BEARER_TOKEN_FILE)…
# bearer_token = "a long random string"
# …or alone on a separate address, without a token.
# listen = "127.0.0.1:9464"

# Without [smtp], every message is written to <data_dir>/outbox/ as an .eml file.
# [smtp]
# host = "smtp.example.com"
# port = 587
# tls = "starttls"        # "none", "starttls" or "tls"
# username = "entitle"
# password = "…"          # or ENTITLE_SMTP__PASSWORD_FILE
# from = "entitle <no-reply@example.com>"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_without_a_public_url_follow_the_listen_address() {
        let mut config = Config::default();
        assert_eq!(config.public_base(), "http://127.0.0.1:8080");
        assert!(!config.listens_beyond_loopback());
        config.listen = "10.1.2.3:9000".parse().expect("address");
        assert_eq!(config.public_base(), "http://10.1.2.3:9000");
        assert!(config.listens_beyond_loopback());
        config.listen = "0.0.0.0:9000".parse().expect("address");
        let host = hostname::get()
            .expect("hostname")
            .into_string()
            .expect("utf-8");
        assert_eq!(config.public_base(), format!("http://{host}:9000"));
        config.listen = "[::1]:9000".parse().expect("address");
        assert_eq!(config.public_base(), "http://[::1]:9000");
        config.public_url = Some("https://id.vendor.example/".to_owned());
        assert_eq!(config.public_base(), "https://id.vendor.example");
        assert!(config
            .summary()
            .contains("public URL https://id.vendor.example"));
    }

    #[test]
    fn example_config_parses_to_the_defaults() {
        let parsed: Config = Figment::from(Toml::string(EXAMPLE_CONFIG))
            .extract()
            .expect("example parses");
        let defaults = Config::default();
        assert_eq!(parsed.listen, defaults.listen);
        assert_eq!(parsed.password, defaults.password);
        assert_eq!(parsed.data_dir, defaults.data_dir);
        assert_eq!(parsed.licensing, defaults.licensing);
        assert!(parsed.smtp.is_none());
    }

    #[test]
    fn debug_output_hides_secrets() {
        let config = Config {
            database_url: Some("postgres://u:hunter2@h/db".into()),
            smtp: Some(SmtpConfig {
                host: "h".into(),
                port: 25,
                tls: SmtpTls::None,
                username: Some("u".into()),
                password: Some("hunter2".into()),
                from: "a@b.c".into(),
            }),
            ..Config::default()
        };
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
