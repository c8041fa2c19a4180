//! Domains an organization claims: a random challenge published as a DNS TXT record at
//! `_entitle-challenge.<domain>`, looked up over real DNS, and checked again while the
//! domain stays verified. A verified domain belongs to one organization only.

use std::{net::SocketAddr, time::Duration};

use entitle_proto::OrgDomain;
use hickory_resolver::{
    config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts},
    net::runtime::TokioRuntimeProvider,
    proto::rr::RData,
    TokioResolver,
};
use serde_json::json;
use uuid::Uuid;

use super::{access::OrgAccess, roles::Action, store};
use crate::{
    app::{AppState, Client},
    audit::{self, Actor, Entry},
    config::DomainConfig,
    db::{now_ms, DbError, Executor},
    error::{ApiError, ApiResult},
    execute,
    identity::{flows::actor_of, store::AccountRow, tokens},
    mail::Email,
    on_db,
};

pub const CHALLENGE_PREFIX: &str = "_entitle-challenge";
const VALUE_PREFIX: &str = "entitle-domain-verification=";

/// A domain name as entitle stores it: lowercase ASCII (internationalized names in
/// their `xn--` form), at least two labels, no trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainName(String);

impl DomainName {
    pub fn parse(raw: &str) -> Result<DomainName, String> {
        let trimmed = raw.trim().trim_end_matches('.');
        if trimmed.is_empty() {
            return Err("Give a domain name, such as acme.example.".to_owned());
        }
        if trimmed.chars().count() > 253 {
            return Err("Domain names are at most 253 characters.".to_owned());
        }
        if trimmed.contains(['@', '/', ':', ' ']) {
            return Err(format!(
                "\"{trimmed}\" is not a domain name: give only the part after the @, such as acme.example."
            ));
        }
        let ascii = match url::Host::parse(trimmed) {
            Ok(url::Host::Domain(ascii)) => ascii,
            Ok(_) => return Err("Give a domain name, not an IP address.".to_owned()),
            Err(_) => return Err(format!("\"{trimmed}\" is not a domain name.")),
        };
        let labels: Vec<&str> = ascii.split('.').collect();
        let valid_label = |l: &&str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        if labels.len() < 2 || ascii.len() > 253 || !labels.iter().all(valid_label) {
            return Err(format!(
                "\"{trimmed}\" is not a domain name an organization can own, such as acme.example."
            ));
        }
        Ok(DomainName(ascii))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Where the challenge is published.
    pub fn record_name(&self) -> String {
        format!("{CHALLENGE_PREFIX}.{}", self.0)
    }

    /// Whether it is, or is below, one of the public mail domains.
    pub fn is_public_mail(&self, config: &DomainConfig) -> bool {
        config.public_mail_domains.iter().any(|public| {
            let public = public.trim().trim_end_matches('.').to_ascii_lowercase();
            self.0 == public || self.0.ends_with(&format!(".{public}"))
        })
    }
}

/// The TXT record value for a challenge.
pub fn record_value(challenge: &str) -> String {
    format!("{VALUE_PREFIX}{challenge}")
}

/// Whether the TXT strings found prove `challenge` (compared in constant time).
pub fn proves(found: &[String], challenge: &str) -> bool {
    let expected = record_value(challenge);
    found
        .iter()
        .any(|txt| tokens::constant_time_eq(txt.trim().as_bytes(), expected.as_bytes()))
}

/// What a lookup of the challenge record found.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    Found(Vec<String>),
    /// The name or its TXT records do not exist.
    Missing,
    /// DNS did not answer: nothing is concluded from it.
    Failed(String),
}

/// DNS as domain verification uses it.
pub struct Dns {
    resolver: Result<TokioResolver, String>,
}

impl Dns {
    pub fn from_config(config: &DomainConfig) -> Dns {
        let resolver = match config.resolver {
            Some(address) => Self::resolver_at(address).map_err(|e| e.to_string()),
            None => TokioResolver::builder_tokio()
                .and_then(|builder| builder.build())
                .map_err(|e| format!("no system DNS configuration: {e}")),
        };
        Dns { resolver }
    }

    fn resolver_at(address: SocketAddr) -> Result<TokioResolver, hickory_resolver::net::NetError> {
        let mut udp = ConnectionConfig::udp();
        udp.port = address.port();
        let mut tcp = ConnectionConfig::tcp();
        tcp.port = address.port();
        let server = NameServerConfig::new(address.ip(), true, vec![udp, tcp]);
        let config = ResolverConfig::from_parts(None, Vec::new(), vec![server]);
        let mut options = ResolverOpts::default();
        // Verification must see a record as soon as it is published or withdrawn.
        options.cache_size = 0;
        options.timeout = Duration::from_secs(3);
        options.attempts = 2;
        TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(options)
            .build()
    }

    pub async fn txt(&self, name: &str) -> Lookup {
        let resolver = match &self.resolver {
            Ok(resolver) => resolver,
            Err(error) => return Lookup::Failed(error.clone()),
        };
        match resolver.txt_lookup(format!("{name}.")).await {
            Ok(lookup) => Lookup::Found(
                lookup
                    .answers()
                    .iter()
                    .filter_map(|record| match &record.data {
                        RData::TXT(txt) => Some(
                            txt.txt_data
                                .iter()
                                .map(|part| String::from_utf8_lossy(part).into_owned())
                                .collect::<String>(),
                        ),
                        _ => None,
                    })
                    .collect(),
            ),
            Err(error) if error.is_no_records_found() || error.is_nx_domain() => Lookup::Missing,
            Err(error) => Lookup::Failed(error.to_string()),
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct DomainRow {
    id: Uuid,
    org_id: Uuid,
    domain: String,
    challenge: String,
    created_at: i64,
    verified_at: Option<i64>,
    checked_at: Option<i64>,
    check_error: Option<String>,
}

impl DomainRow {
    fn to_proto(&self) -> OrgDomain {
        OrgDomain {
            id: self.id,
            domain: self.domain.clone(),
            record_name: format!("{CHALLENGE_PREFIX}.{}", self.domain),
            record_value: record_value(&self.challenge),
            created_at: self.created_at,
            verified_at: self.verified_at,
            checked_at: self.checked_at,
            check_error: self.check_error.clone(),
        }
    }
}

const COLUMNS: &str =
    "id, org_id, domain, challenge, created_at, verified_at, checked_at, check_error";

async fn domain_row(
    ex: &mut impl Executor,
    org_id: Uuid,
    id: Uuid,
) -> Result<Option<DomainRow>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM org_domains WHERE org_id = $1 AND id = $2");
    Ok(on_db!(ex, |c| sqlx::query_as(&sql)
        .bind(org_id)
        .bind(id)
        .fetch_optional(c)
        .await)?)
}

/// Whether another organization has `domain` verified.
async fn verified_elsewhere(
    ex: &mut impl Executor,
    org_id: Uuid,
    domain: &str,
) -> Result<bool, DbError> {
    let found: Option<(Uuid,)> = on_db!(ex, |c| {
        sqlx::query_as(
        "SELECT org_id FROM org_domains WHERE domain = $1 AND verified_at IS NOT NULL AND org_id <> $2"
    )
    .bind(domain)
    .bind(org_id)
    .fetch_optional(c)
    .await
    })?;
    Ok(found.is_some())
}

fn taken() -> ApiError {
    ApiError::conflict(
        "domain_taken",
        "Another organization has verified this domain. If it is yours, ask the vendor's operators for help.",
    )
}

/// The organization's domains, for those who may see its members.
pub async fn list(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
) -> ApiResult<Vec<OrgDomain>> {
    let mut conn = state.db.reader().await?;
    OrgAccess::of(&mut conn, caller, org_id)
        .await?
        .require(Action::ListUsers)?;
    let sql = format!("SELECT {COLUMNS} FROM org_domains WHERE org_id = $1 ORDER BY domain");
    let rows: Vec<DomainRow> = on_db!(&mut conn, |c| sqlx::query_as(&sql)
        .bind(org_id)
        .fetch_all(c)
        .await)
    .map_err(DbError::from)?;
    Ok(rows.iter().map(DomainRow::to_proto).collect())
}

/// Claims a domain: it gets a challenge to publish; nothing is verified yet.
pub async fn claim(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    raw: &str,
    from: &Client,
) -> ApiResult<OrgDomain> {
    let domain =
        DomainName::parse(raw).map_err(|message| ApiError::field("domain", "invalid", message))?;
    if domain.is_public_mail(&state.config.domains) {
        return Err(ApiError::field(
            "domain",
            "public_mail_domain",
            format!(
                "{} is a public mail service: anyone can have an address there, so no organization can claim it.",
                domain.as_str()
            ),
        ));
    }
    let mut tx = state.db.begin().await?;
    let access = OrgAccess::of(&mut tx, caller, org_id).await?;
    access.require(Action::ManageDomains)?;
    if verified_elsewhere(&mut tx, org_id, domain.as_str()).await? {
        return Err(taken());
    }
    let row = DomainRow {
        id: Uuid::now_v7(),
        org_id,
        domain: domain.as_str().to_owned(),
        challenge: tokens::issue().secret,
        created_at: now_ms(),
        verified_at: None,
        checked_at: None,
        check_error: None,
    };
    let inserted = execute!(
        &mut tx,
        "INSERT INTO org_domains (id, org_id, domain, challenge, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org_id, domain) DO NOTHING",
        row.id,
        org_id,
        &row.domain,
        &row.challenge,
        caller.id,
        row.created_at
    )?;
    if inserted == 0 {
        return Err(ApiError::conflict(
            "domain_already_claimed",
            "This organization has already claimed this domain.",
        ));
    }
    audit::record(
        &mut tx,
        &actor_of(caller, from),
        Entry {
            action: "org.domain_claimed",
            target_type: "domain",
            target_id: Some(row.id),
            target_label: Some(&row.domain),
            org_id: Some(org_id),
            details: json!({ "domain": row.domain }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(row.to_proto())
}

/// Looks the challenge up in DNS and marks the domain verified when it is there.
pub async fn verify(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    id: Uuid,
    from: &Client,
) -> ApiResult<OrgDomain> {
    let row = {
        let mut conn = state.db.reader().await?;
        OrgAccess::of(&mut conn, caller, org_id)
            .await?
            .require(Action::ManageDomains)?;
        domain_row(&mut conn, org_id, id)
            .await?
            .ok_or(ApiError::NotFound)?
    };
    if row.verified_at.is_some() {
        return Ok(row.to_proto());
    }
    let record_name = format!("{CHALLENGE_PREFIX}.{}", row.domain);
    // DNS is asked outside any transaction: it may take seconds.
    let lookup = state.dns.txt(&record_name).await;
    let now = now_ms();
    let problem = match &lookup {
        Lookup::Found(found) if proves(found, &row.challenge) => None,
        Lookup::Found(found) => Some(format!(
            "The TXT record at {record_name} does not hold {}. Found: {}.",
            record_value(&row.challenge),
            found
                .iter()
                .take(5)
                .map(|value| format!("“{}”", value.chars().take(100).collect::<String>()))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Lookup::Missing => Some(format!(
            "No TXT record was found at {record_name}. Publish it and try again; DNS changes can take a while to spread."
        )),
        Lookup::Failed(error) => Some(format!("DNS did not answer ({error}). Try again later.")),
    };
    let mut tx = state.db.begin().await?;
    if let Some(problem) = problem {
        execute!(
            &mut tx,
            "UPDATE org_domains SET checked_at = $1, check_error = $2 WHERE id = $3",
            now,
            &problem,
            id
        )?;
        tx.commit().await?;
        let code = if matches!(lookup, Lookup::Failed(_)) {
            return Err(ApiError::conflict("dns_unavailable", problem));
        } else {
            "record_not_found"
        };
        return Err(ApiError::field("domain", code, problem));
    }
    if verified_elsewhere(&mut tx, org_id, &row.domain).await? {
        return Err(taken());
    }
    let updated = execute!(
        &mut tx,
        "UPDATE org_domains SET verified_at = $1, checked_at = $1, check_error = NULL WHERE id = $2 AND verified_at IS NULL",
        now,
        id
    );
    match updated {
        // Two organizations verifying at once: the unique index lets one win.
        Err(error) if error.is_unique_violation() => return Err(taken()),
        other => other?,
    };
    audit::record(
        &mut tx,
        &actor_of(caller, from),
        Entry {
            action: "org.domain_verified",
            target_type: "domain",
            target_id: Some(id),
            target_label: Some(&row.domain),
            org_id: Some(org_id),
            details: json!({ "domain": row.domain }),
        },
    )
    .await?;
    let row = domain_row(&mut tx, org_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    Ok(row.to_proto())
}

/// Gives a domain up.
pub async fn remove(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    id: Uuid,
    from: &Client,
) -> ApiResult<()> {
    let mut tx = state.db.begin().await?;
    OrgAccess::of(&mut tx, caller, org_id)
        .await?
        .require(Action::ManageDomains)?;
    let row = domain_row(&mut tx, org_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    execute!(&mut tx, "DELETE FROM org_domains WHERE id = $1", id)?;
    audit::record(
        &mut tx,
        &actor_of(caller, from),
        Entry {
            action: "org.domain_removed",
            target_type: "domain",
            target_id: Some(id),
            target_label: Some(&row.domain),
            org_id: Some(org_id),
            details: json!({ "domain": row.domain, "was_verified": row.verified_at.is_some() }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Checks again every verified domain last checked before `now - interval`: one whose
/// record is gone becomes unverified, and the organization's administrators are told.
/// A lookup that fails (DNS down) changes nothing but the time of the check. Each
/// domain is claimed with a conditional update first, so several server processes
/// never check the same one at once. Returns how many were checked.
pub async fn recheck_due(state: &AppState, now: i64) -> ApiResult<usize> {
    let due_before = now - state.config.domains.recheck_interval_secs * 1000;
    let due: Vec<DomainRow> = {
        let mut conn = state.db.reader().await?;
        let sql = format!(
            "SELECT {COLUMNS} FROM org_domains WHERE verified_at IS NOT NULL \
             AND (checked_at IS NULL OR checked_at < $1) ORDER BY checked_at LIMIT 100"
        );
        on_db!(&mut conn, |c| sqlx::query_as(&sql)
            .bind(due_before)
            .fetch_all(c)
            .await)
        .map_err(DbError::from)?
    };
    let mut checked = 0;
    for row in due {
        let mut conn = state.db.writer().await?;
        let claimed = execute!(
            &mut conn,
            "UPDATE org_domains SET checked_at = $1 WHERE id = $2 AND checked_at IS NOT DISTINCT FROM $3",
            now,
            row.id,
            row.checked_at
        )?;
        drop(conn);
        if claimed == 0 {
            continue;
        }
        checked += 1;
        let record_name = format!("{CHALLENGE_PREFIX}.{}", row.domain);
        let gone = match state.dns.txt(&record_name).await {
            Lookup::Found(found) => !proves(&found, &row.challenge),
            Lookup::Missing => true,
            Lookup::Failed(error) => {
                tracing::warn!(domain = %row.domain, error, "re-checking a verified domain: DNS did not answer");
                false
            }
        };
        if gone {
            unverify(state, &row).await?;
        }
    }
    Ok(checked)
}

async fn unverify(state: &AppState, row: &DomainRow) -> ApiResult<()> {
    let problem = format!(
        "The TXT record at {CHALLENGE_PREFIX}.{} disappeared; the domain is no longer verified.",
        row.domain
    );
    let mut tx = state.db.begin().await?;
    let changed = execute!(
        &mut tx,
        "UPDATE org_domains SET verified_at = NULL, check_error = $1 WHERE id = $2 AND verified_at IS NOT NULL",
        &problem,
        row.id
    )?;
    if changed == 0 {
        return Ok(());
    }
    audit::record(
        &mut tx,
        &Actor::system(),
        Entry {
            action: "org.domain_unverified",
            target_type: "domain",
            target_id: Some(row.id),
            target_label: Some(&row.domain),
            org_id: Some(row.org_id),
            details: json!({ "domain": row.domain, "reason": "record_disappeared" }),
        },
    )
    .await?;
    let org = store::org_by_id(&mut tx, row.org_id).await?;
    let admins = store::administrator_emails(&mut tx, row.org_id).await?;
    tx.commit().await?;
    let org_name = org.map(|o| o.name).unwrap_or_default();
    for to in admins {
        state.mailer.send_in_background(Email {
            to,
            subject: format!("{} is no longer a verified domain of {org_name}", row.domain),
            greeting: "Hello,".to_owned(),
            paragraphs: vec![
                problem.clone(),
                format!(
                    "Publish the TXT record again and verify the domain in entitle. Until then, Auto Approval for {} does not apply.",
                    row.domain
                ),
            ],
            action: None,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_names_are_normalized_or_refused() {
        for (raw, stored) in [
            ("Acme.Example", "acme.example"),
            (" acme.example. ", "acme.example"),
            ("sub.acme.co.uk", "sub.acme.co.uk"),
            ("bücher.example", "xn--bcher-kva.example"),
        ] {
            assert_eq!(
                DomainName::parse(raw).map(|d| d.0),
                Ok(stored.to_owned()),
                "{raw}"
            );
        }
        for bad in [
            "",
            "localhost",
            "anna@acme.example",
            "https://acme.example",
            "10.0.0.1",
            "acme..example",
            "-acme.example",
            "acme_corp.example",
            "acme example",
            &format!("{}.example", "a".repeat(64)),
        ] {
            assert!(DomainName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn public_mail_domains_and_their_subdomains_cannot_be_claimed() {
        let config = DomainConfig::default();
        for public in ["gmail.com", "GMAIL.com", "eu.outlook.com"] {
            assert!(DomainName::parse(public)
                .expect("name")
                .is_public_mail(&config));
        }
        for own in ["acme.example", "notgmail.com", "gmail.com.acme.example"] {
            assert!(!DomainName::parse(own)
                .expect("name")
                .is_public_mail(&config));
        }
    }

    #[test]
    fn only_the_exact_challenge_proves_a_domain() {
        let found = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(proves(
            &found(&["v=spf1 -all", "entitle-domain-verification=abc"]),
            "abc"
        ));
        assert!(proves(
            &found(&[" entitle-domain-verification=abc "]),
            "abc"
        ));
        assert!(!proves(
            &found(&["entitle-domain-verification=abcd"]),
            "abc"
        ));
        assert!(!proves(&found(&["entitle-domain-verification=ab"]), "abc"));
        assert!(!proves(&found(&[]), "abc"));
    }
}
