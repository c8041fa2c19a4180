//! The identity flows as plain functions: sign-up, verification, sign-in, recovery,
//! password change, Terms of Service, export and erasure. The JSON API and the pages
//! both call these, so the rules live in one place.

use entitle_proto::{FieldError, SignUpRequest};
use serde_json::json;
use uuid::Uuid;

use crate::{
    app::{AppState, Client},
    audit::{self, Actor, Entry},
    db::now_ms,
    error::{ApiError, ApiResult},
    identity::{
        password::Verdict,
        person::{check_new_password, CountryCode, Email, Invalid, PersonName},
        store::{self, AccountRow, SessionRow, TermsRow, TokenPurpose},
        throttle,
        tokens::{self, IssuedToken},
    },
    mail::Email as Message,
};

/// The longest version name of the Terms of Service.
const MAX_TERMS_VERSION_CHARS: usize = 64;

/// Same words whether or not the address has an account.
pub const CHECK_YOUR_EMAIL: &str =
    "If that address can be used, we have sent it a message. Follow the link in it to continue.";

/// Collects field problems so a form shows every mistake at once.
#[derive(Default)]
pub struct Fields(Vec<FieldError>);

impl Fields {
    pub fn add(&mut self, field: &str, code: &str, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.to_owned(),
            code: code.to_owned(),
            message: message.into(),
        });
    }

    pub fn check<T>(&mut self, field: &str, result: Result<T, Invalid>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(invalid) => {
                self.0.push(FieldError {
                    field: field.to_owned(),
                    code: invalid.code.to_owned(),
                    message: invalid.message,
                });
                None
            }
        }
    }

    pub fn finish(self) -> ApiResult<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.0))
        }
    }
}

pub fn actor_of(account: &AccountRow, client: &Client) -> Actor {
    Actor {
        id: Some(account.id),
        label: Some(account.email.clone()),
        ip: Some(client.ip.clone()),
    }
}

/// An audit entry about one person's own account.
pub(crate) fn account_event<'a>(
    action: &'a str,
    account: &'a AccountRow,
    details: serde_json::Value,
) -> Entry<'a> {
    Entry {
        action,
        target_type: "account",
        target_id: Some(account.id),
        target_label: Some(&account.email),
        org_id: None,
        details,
    }
}

pub(crate) fn link(state: &AppState, path: &str, token: &str) -> String {
    format!("{}{path}?token={token}", state.config.public_base())
}

fn invalid_link() -> ApiError {
    ApiError::bad_request(
        "invalid_token",
        "This link is invalid, has expired or was already used. Ask for a new one.",
    )
}

/// A validated new person: email, names and country.
#[derive(Clone)]
pub struct Person {
    pub email: Email,
    pub first_name: PersonName,
    pub last_name: PersonName,
    pub country: CountryCode,
}

pub fn parse_person(
    fields: &mut Fields,
    email: &str,
    first_name: &str,
    last_name: &str,
    country: &str,
) -> Option<Person> {
    let email = fields.check("email", Email::parse(email));
    let first_name = fields.check("first_name", PersonName::parse(first_name));
    let last_name = fields.check("last_name", PersonName::parse(last_name));
    let country = fields.check("country", CountryCode::parse(country));
    Some(Person {
        email: email?,
        first_name: first_name?,
        last_name: last_name?,
        country: country?,
    })
}

pub fn new_account_row(person: &Person, password_hash: Option<String>, now: i64) -> AccountRow {
    AccountRow {
        id: Uuid::now_v7(),
        email: person.email.as_str().to_owned(),
        first_name: person.first_name.as_str().to_owned(),
        last_name: person.last_name.as_str().to_owned(),
        country: person.country.as_str().to_owned(),
        password_hash,
        status: "active".to_owned(),
        email_verified: false,
        is_operator: false,
        home_org_id: None,
        tos_accepted_version: None,
        tos_accepted_at: None,
        created_at: now,
        updated_at: now,
    }
}

/// Issues a one-time token for the account inside the caller's transaction.
pub async fn issue_account_token(
    tx: &mut crate::db::Tx,
    account_id: Uuid,
    purpose: TokenPurpose,
    ttl_secs: i64,
) -> ApiResult<IssuedToken> {
    let token = tokens::issue();
    let now = now_ms();
    store::insert_token(
        tx,
        &token.hash,
        purpose,
        account_id,
        now,
        now + ttl_secs * 1000,
    )
    .await?;
    Ok(token)
}

/// Counts a message to `email` against its hourly cap; false when the cap is reached.
pub(crate) async fn may_email(
    tx: &mut crate::db::Tx,
    state: &AppState,
    email: &str,
) -> ApiResult<bool> {
    let now = now_ms();
    let counted = store::update_throttle(tx, &throttle::email_key(email), |row| {
        throttle::after_email(row, now, state.config.throttle.emails_per_hour).ok_or(())
    })
    .await?;
    Ok(counted.is_ok())
}

pub fn set_password_message(
    state: &AppState,
    account: &AccountRow,
    token: &str,
    invited_by: Option<&str>,
) -> Message {
    let url = link(state, "/reset-password", token);
    let minutes = state.config.tokens.password_reset_ttl_secs / 60;
    let (subject, paragraphs) = match invited_by {
        Some(org) => (
            format!("You have been added to {org} on entitle"),
            vec![
                format!("An administrator of {org} added you as a user. To register, confirm your email address and choose a password."),
                "The link can be used once. If it has expired, use “Forgot password?” on the sign-in page.".to_owned(),
            ],
        ),
        None => (
            "Set your entitle password".to_owned(),
            vec![
                "Someone, hopefully you, asked to set the password of this entitle account.".to_owned(),
                format!("The link works once and for {minutes} minutes. If you did not ask, ignore this message: your password is unchanged."),
            ],
        ),
    };
    Message {
        to: account.email.clone(),
        subject,
        greeting: format!("Hello {},", account.first_name),
        paragraphs,
        action: Some(("Confirm your email and set a password".to_owned(), url)),
    }
}

/// The individual user process: creates an unverified account and emails a link.
/// Answers the same whether or not the address already has an account.
pub async fn sign_up(state: &AppState, req: SignUpRequest, client: &Client) -> ApiResult<()> {
    let mut fields = Fields::default();
    let person = parse_person(
        &mut fields,
        &req.email,
        &req.first_name,
        &req.last_name,
        &req.country,
    );
    if let Some(p) = &person {
        fields.check(
            "password",
            check_new_password(
                &req.password,
                &p.email,
                p.first_name.as_str(),
                p.last_name.as_str(),
            ),
        );
    }
    fields.finish()?;
    let person = person.ok_or_else(|| anyhow::anyhow!("validated person missing"))?;
    // Hash before looking the address up, so both outcomes take the hash's time.
    let hash = state.hasher.hash(&req.password).await?;
    let now = now_ms();
    let mut tx = state.db.begin().await?;
    let existing = store::account_by_email(&mut tx, person.email.as_str()).await?;
    let allowed = may_email(&mut tx, state, person.email.as_str()).await?;
    let message = match existing {
        Some(account) => {
            if !allowed {
                None
            } else {
                let token = issue_account_token(
                    &mut tx,
                    account.id,
                    TokenPurpose::SetPassword,
                    state.config.tokens.password_reset_ttl_secs,
                )
                .await?;
                let url = link(state, "/reset-password", &token.secret);
                Some(Message {
                    to: account.email.clone(),
                    subject: "You already have an entitle account".to_owned(),
                    greeting: format!("Hello {},", account.first_name),
                    paragraphs: vec![
                        "Someone tried to sign up with this email address, which already has an account.".to_owned(),
                        "If it was you and you do not know your password, set a new one with the link below. Otherwise ignore this message.".to_owned(),
                    ],
                    action: Some(("Set a password".to_owned(), url)),
                })
            }
        }
        None => {
            let account = new_account_row(&person, Some(hash), now);
            store::insert_account(&mut tx, &account).await?;
            let token = issue_account_token(
                &mut tx,
                account.id,
                TokenPurpose::VerifyEmail,
                state.config.tokens.email_verification_ttl_secs,
            )
            .await?;
            audit::record(
                &mut tx,
                &actor_of(&account, client),
                account_event(
                    "account.signed_up",
                    &account,
                    json!({"country": account.country}),
                ),
            )
            .await?;
            allowed.then(|| Message {
                to: account.email.clone(),
                subject: "Confirm your email address for entitle".to_owned(),
                greeting: format!("Hello {},", account.first_name),
                paragraphs: vec![
                    "Thanks for signing up. Confirm your email address to finish creating your account.".to_owned(),
                ],
                action: Some(("Confirm your email address".to_owned(), link(state, "/verify-email", &token.secret))),
            })
        }
    };
    match tx.commit().await {
        Ok(()) => {}
        // Two sign-ups racing for one address: the loser answers like the winner.
        Err(e) if e.is_unique_violation() => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    if let Some(message) = message {
        state.mailer.send_in_background(message);
    }
    Ok(())
}

pub async fn verify_email(state: &AppState, token: &str, client: &Client) -> ApiResult<AccountRow> {
    if !tokens::looks_valid(token) {
        return Err(invalid_link());
    }
    let now = now_ms();
    let mut tx = state.db.begin().await?;
    let account_id = store::consume_token(
        &mut tx,
        &tokens::hash(token),
        TokenPurpose::VerifyEmail,
        now,
    )
    .await?
    .ok_or_else(invalid_link)?;
    let account = store::account_by_id(&mut tx, account_id)
        .await?
        .ok_or_else(invalid_link)?;
    store::mark_email_verified(&mut tx, account.id, now).await?;
    audit::record(
        &mut tx,
        &actor_of(&account, client),
        account_event("account.email_verified", &account, json!({})),
    )
    .await?;
    let joined = crate::orgs::approval::join_by_domain(&mut tx, state, &account).await?;
    tx.commit().await?;
    for message in joined {
        state.mailer.send_in_background(message);
    }
    // Read again: Auto Approval may have given the account its organization.
    let mut conn = state.db.reader().await?;
    store::account_by_id(&mut conn, account.id)
        .await?
        .ok_or_else(invalid_link)
}

pub struct SignedIn {
    pub account: AccountRow,
    pub session: SessionRow,
    pub token: String,
}

fn wrong_credentials() -> ApiError {
    ApiError::InvalidCredentials
}

/// Checks the password with throttling per account and per client address, then opens
/// a session.
pub async fn sign_in(
    state: &AppState,
    email: &str,
    password: &str,
    client: &Client,
) -> ApiResult<SignedIn> {
    let email = Email::parse(email).map_err(|e| ApiError::field("email", e.code, e.message))?;
    if password.is_empty() || password.chars().count() > crate::identity::person::PASSWORD_MAX_CHARS
    {
        return Err(wrong_credentials());
    }
    let account_key = throttle::account_key(email.as_str());
    let address_key = throttle::address_key(&client.ip);
    let limits = &state.config.throttle;
    let now = now_ms();
    // The attempt is counted before the password is checked, so that attempts in flight
    // count too: no interleaving of requests gets more guesses than the rule allows.
    {
        let mut conn = state.db.writer().await?;
        for (key, free) in [
            (&address_key, limits.address_free_failures),
            (&account_key, limits.account_free_failures),
        ] {
            let taken = store::update_throttle(&mut conn, key, |row| {
                throttle::take_attempt(row, now, free, limits.max_delay_secs)
            })
            .await?;
            if let Err(wait) = taken {
                return Err(ApiError::TooManyRequests {
                    retry_after_secs: wait,
                });
            }
        }
    }
    let account = {
        let mut conn = state.db.reader().await?;
        store::account_by_email(&mut conn, email.as_str()).await?
    };
    let verdict = state
        .hasher
        .verify(
            password,
            account.as_ref().and_then(|a| a.password_hash.as_deref()),
        )
        .await?;
    let Some(account) = account.filter(|_| verdict != Verdict::Mismatch) else {
        return Err(wrong_credentials());
    };
    // The right password: the attempt was no guess.
    {
        let mut conn = state.db.writer().await?;
        store::clear_throttle(&mut conn, &account_key).await?;
        store::update_throttle(&mut conn, &address_key, |row| {
            row.map(|r| {
                throttle::refund(
                    r,
                    now_ms(),
                    limits.address_free_failures,
                    limits.max_delay_secs,
                )
            })
            .ok_or(())
        })
        .await?
        .ok();
    }
    if !account.is_active() {
        return Err(ApiError::forbidden(
            "account_disabled",
            "This account is disabled. Contact your organization's administrator.",
        ));
    }
    if !account.email_verified {
        return Err(ApiError::forbidden(
            "email_not_verified",
            "Confirm your email address first: follow the link we sent you, or use “Forgot password?”.",
        ));
    }
    let rehash = if verdict == Verdict::MatchNeedsRehash {
        Some(state.hasher.hash(password).await?)
    } else {
        None
    };
    let mut tx = state.db.begin().await?;
    if let Some(hash) = &rehash {
        store::set_password_hash(&mut tx, account.id, hash, now).await?;
    }
    let (session, token) = open_session(&mut tx, state, account.id, client).await?;
    tx.commit().await?;
    Ok(SignedIn {
        account,
        session,
        token,
    })
}

async fn open_session(
    tx: &mut crate::db::Tx,
    state: &AppState,
    account_id: Uuid,
    client: &Client,
) -> ApiResult<(SessionRow, String)> {
    let now = now_ms();
    let token = tokens::issue();
    let session = SessionRow {
        id: Uuid::now_v7(),
        account_id,
        created_at: now,
        last_seen_at: now,
        expires_at: now + state.config.tokens.session_ttl_secs * 1000,
        ip: Some(client.ip.clone()),
        user_agent: client.user_agent.clone(),
    };
    store::insert_session(tx, &session, &token.hash).await?;
    store::record_sign_in(tx, account_id, now).await?;
    Ok((session, token.secret))
}

pub async fn sign_out(state: &AppState, session_id: Uuid) -> ApiResult<()> {
    let mut conn = state.db.writer().await?;
    store::delete_session(&mut conn, session_id).await?;
    Ok(())
}

/// "Forgot password?": emails a single-use link to an existing, active account.
/// Answers the same whatever the address.
pub async fn forgot_password(state: &AppState, email: &str) -> ApiResult<()> {
    let email = Email::parse(email).map_err(|e| ApiError::field("email", e.code, e.message))?;
    let mut tx = state.db.begin().await?;
    let allowed = may_email(&mut tx, state, email.as_str()).await?;
    let account = store::account_by_email(&mut tx, email.as_str()).await?;
    let message = match account {
        Some(account) if allowed && account.is_active() => {
            let token = issue_account_token(
                &mut tx,
                account.id,
                TokenPurpose::SetPassword,
                state.config.tokens.password_reset_ttl_secs,
            )
            .await?;
            Some(set_password_message(state, &account, &token.secret, None))
        }
        _ => None,
    };
    tx.commit().await?;
    if let Some(message) = message {
        state.mailer.send_in_background(message);
    }
    Ok(())
}

/// The account a set-password link belongs to, for showing the form; uses nothing up.
pub async fn peek_set_password(state: &AppState, token: &str) -> ApiResult<AccountRow> {
    if !tokens::looks_valid(token) {
        return Err(invalid_link());
    }
    let mut conn = state.db.reader().await?;
    let id = store::live_token_account(
        &mut conn,
        &tokens::hash(token),
        TokenPurpose::SetPassword,
        now_ms(),
    )
    .await?
    .ok_or_else(invalid_link)?;
    store::account_by_id(&mut conn, id)
        .await?
        .ok_or_else(invalid_link)
}

/// Completes recovery or first registration: the person confirms the email address the
/// link was sent to and chooses a password. Verifies the address and ends other sessions.
pub async fn reset_password(
    state: &AppState,
    token: &str,
    email: &str,
    password: &str,
    client: &Client,
) -> ApiResult<AccountRow> {
    let account = peek_set_password(state, token).await?;
    let confirmed = Email::parse(email).map_err(|e| ApiError::field("email", e.code, e.message))?;
    if !tokens::constant_time_eq(confirmed.as_str().as_bytes(), account.email.as_bytes()) {
        return Err(ApiError::field(
            "email",
            "email_mismatch",
            "This is not the email address the link was sent to.",
        ));
    }
    let email = Email::parse(&account.email)
        .map_err(|e| anyhow::anyhow!("stored email invalid: {}", e.message))?;
    check_new_password(password, &email, &account.first_name, &account.last_name)
        .map_err(|e| ApiError::field("password", e.code, e.message))?;
    let hash = state.hasher.hash(password).await?;
    let now = now_ms();
    let mut tx = state.db.begin().await?;
    let consumed = store::consume_token(
        &mut tx,
        &tokens::hash(token),
        TokenPurpose::SetPassword,
        now,
    )
    .await?;
    if consumed != Some(account.id) {
        return Err(invalid_link());
    }
    store::set_password_hash(&mut tx, account.id, &hash, now).await?;
    store::mark_email_verified(&mut tx, account.id, now).await?;
    store::retire_tokens(&mut tx, account.id, TokenPurpose::SetPassword, now).await?;
    end_sign_ins(&mut tx, state, &account, None, now).await?;
    store::clear_throttle(&mut tx, &throttle::account_key(&account.email)).await?;
    let first_password = account.password_hash.is_none();
    audit::record(
        &mut tx,
        &actor_of(&account, client),
        account_event(
            "account.password_set",
            &account,
            json!({"via": "email_link", "first_password": first_password}),
        ),
    )
    .await?;
    tx.commit().await?;
    if !first_password {
        state
            .mailer
            .send_in_background(password_changed_message(&account, client));
    }
    Ok(AccountRow {
        email_verified: true,
        password_hash: Some(hash),
        ..account
    })
}

/// Ends every way the account is signed in (but `keep`, the session making the change):
/// browser sessions here, and through the hooks the grants of clients, the desktop
/// client's automatic sign-in among them.
pub async fn end_sign_ins(
    tx: &mut crate::db::Tx,
    state: &AppState,
    account: &AccountRow,
    keep: Option<Uuid>,
    now: i64,
) -> ApiResult<u64> {
    let ended = store::delete_sessions_of_except(tx, account.id, keep).await?;
    state.hooks.signed_out_everywhere(tx, account, now).await?;
    Ok(ended)
}

/// Tells a person their password changed, in case it was not them.
fn password_changed_message(account: &AccountRow, client: &Client) -> Message {
    Message {
        to: account.email.clone(),
        subject: "Your entitle password was changed".to_owned(),
        greeting: format!("Hello {},", account.first_name),
        paragraphs: vec![
            format!(
                "The password of your entitle account was changed just now (from address {}). You were signed out everywhere else: browsers, the desktop client and applications.",
                client.ip
            ),
            "If you did not do this, use “Forgot password?” on the sign-in page at once and tell your organization's administrator.".to_owned(),
        ],
        action: None,
    }
}

/// Whether `password` is the account's: proof that a signed-in person is who they say
/// before a change that matters. Longer than any password can be is simply wrong.
pub async fn is_own_password(
    state: &AppState,
    account: &AccountRow,
    password: &str,
) -> ApiResult<bool> {
    if password.chars().count() > crate::identity::person::PASSWORD_MAX_CHARS {
        return Ok(false);
    }
    let verdict = state
        .hasher
        .verify(password, account.password_hash.as_deref())
        .await?;
    Ok(verdict != Verdict::Mismatch)
}

pub async fn change_password(
    state: &AppState,
    account: &AccountRow,
    current_session: Uuid,
    current: &str,
    new: &str,
    client: &Client,
) -> ApiResult<()> {
    if !is_own_password(state, account, current).await? {
        return Err(ApiError::field(
            "current_password",
            "wrong_password",
            "Your current password is wrong.",
        ));
    }
    let email = Email::parse(&account.email)
        .map_err(|e| anyhow::anyhow!("stored email invalid: {}", e.message))?;
    check_new_password(new, &email, &account.first_name, &account.last_name)
        .map_err(|e| ApiError::field("new_password", e.code, e.message))?;
    let hash = state.hasher.hash(new).await?;
    let now = now_ms();
    let mut tx = state.db.begin().await?;
    store::set_password_hash(&mut tx, account.id, &hash, now).await?;
    let others = end_sign_ins(&mut tx, state, account, Some(current_session), now).await?;
    audit::record(
        &mut tx,
        &actor_of(account, client),
        account_event(
            "account.password_changed",
            account,
            json!({"other_sessions_ended": others}),
        ),
    )
    .await?;
    tx.commit().await?;
    state
        .mailer
        .send_in_background(password_changed_message(account, client));
    Ok(())
}

/// The current terms, if any are published, and whether the account must accept them.
pub async fn terms_required(state: &AppState, account: &AccountRow) -> ApiResult<Option<TermsRow>> {
    let mut conn = state.db.reader().await?;
    let current = store::current_terms(&mut conn).await?;
    Ok(current.filter(|t| account.tos_accepted_version.as_deref() != Some(t.version.as_str())))
}

pub async fn accept_terms(
    state: &AppState,
    account: &AccountRow,
    version: &str,
    client: &Client,
) -> ApiResult<()> {
    if version.chars().count() > MAX_TERMS_VERSION_CHARS {
        return Err(ApiError::field(
            "version",
            "too_long",
            format!("Versions are at most {MAX_TERMS_VERSION_CHARS} characters."),
        ));
    }
    let now = now_ms();
    let mut tx = state.db.begin().await?;
    let current = store::current_terms(&mut tx).await?;
    let Some(current) = current else {
        return Err(ApiError::conflict(
            "no_terms",
            "No Terms of Service are published.",
        ));
    };
    if current.version != version {
        return Err(ApiError::conflict(
            "terms_outdated",
            format!(
                "Version {version} is not the current Terms of Service; the current version is {}.",
                current.version
            ),
        ));
    }
    store::set_terms_accepted(&mut tx, account.id, version, now).await?;
    audit::record(
        &mut tx,
        &actor_of(account, client),
        account_event(
            "account.terms_accepted",
            account,
            json!({"version": version}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn publish_terms(
    state: &AppState,
    operator: &AccountRow,
    req: entitle_proto::PublishTermsRequest,
    client: &Client,
) -> ApiResult<TermsRow> {
    let mut fields = Fields::default();
    let version = req.version.trim();
    if version.is_empty()
        || version.len() > MAX_TERMS_VERSION_CHARS
        || !version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c))
    {
        fields.check::<()>(
            "version",
            Err(Invalid {
                code: "invalid_version",
                message: "Versions are 1 to 64 letters, digits, dots, dashes or underscores."
                    .to_owned(),
            }),
        );
    }
    if req.title.trim().is_empty() || req.title.chars().count() > 200 {
        fields.check::<()>(
            "title",
            Err(Invalid {
                code: "invalid_title",
                message: "Titles are 1 to 200 characters.".to_owned(),
            }),
        );
    }
    if req.body.trim().is_empty() || req.body.len() > 200_000 {
        fields.check::<()>(
            "body",
            Err(Invalid {
                code: "invalid_body",
                message: "The text is required and at most 200,000 bytes.".to_owned(),
            }),
        );
    }
    fields.finish()?;
    let terms = TermsRow {
        version: version.to_owned(),
        title: req.title.trim().to_owned(),
        body: req.body,
        published_at: now_ms(),
    };
    let mut tx = state.db.begin().await?;
    if let Err(e) = store::insert_terms(&mut tx, &terms, operator.id).await {
        return Err(if e.is_unique_violation() {
            ApiError::conflict(
                "terms_version_exists",
                format!(
                    "Version {} is already published; publish a new version.",
                    terms.version
                ),
            )
        } else {
            e.into()
        });
    }
    audit::record(
        &mut tx,
        &actor_of(operator, client),
        Entry {
            action: "terms.published",
            target_type: "terms",
            target_id: None,
            target_label: Some(&terms.version),
            org_id: None,
            details: json!({"version": terms.version, "title": terms.title}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(terms)
}

pub async fn export(
    state: &AppState,
    account: &AccountRow,
) -> ApiResult<entitle_proto::DataExport> {
    let mut conn = state.db.reader().await?;
    let memberships = crate::orgs::store::memberships_of(&mut conn, account.id).await?;
    let sessions = store::sessions_of(&mut conn, account.id)
        .await?
        .into_iter()
        .map(|s| entitle_proto::SessionSummary {
            id: s.id,
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
            expires_at: s.expires_at,
            ip: s.ip,
            user_agent: s.user_agent,
        })
        .collect();
    let audit_events = audit::of_account(&mut conn, account.id).await?;
    drop(conn);
    let devices = crate::oidc::api::devices_of(state, account.id).await?;
    Ok(entitle_proto::DataExport {
        account: account.to_proto(),
        memberships,
        sessions,
        devices,
        audit_events,
        exported_at: now_ms(),
    })
}

/// Erases the account and everything that names it, after checking the password.
/// Refused while the person is the last Fulfillment Contact of an organization.
pub async fn erase(
    state: &AppState,
    account: &AccountRow,
    password: &str,
    client: &Client,
) -> ApiResult<()> {
    if !is_own_password(state, account, password).await? {
        return Err(ApiError::field(
            "password",
            "wrong_password",
            "The password is wrong.",
        ));
    }
    let mut tx = state.db.begin().await?;
    if let Some(org) =
        crate::orgs::store::org_where_last_fulfillment_contact(&mut tx, account.id).await?
    {
        return Err(ApiError::conflict(
            "last_fulfillment_contact",
            format!("You are the only Fulfillment Contact of {org}; another must be added before your account can be erased."),
        ));
    }
    audit::forget_labels_of(&mut tx, account.id).await?;
    store::delete_account(&mut tx, account.id).await?;
    audit::record(
        &mut tx,
        &Actor {
            id: Some(account.id),
            label: Some("erased account".to_owned()),
            ip: Some(client.ip.clone()),
        },
        Entry {
            action: "account.erased",
            target_type: "account",
            target_id: Some(account.id),
            target_label: Some("erased account"),
            org_id: account.home_org_id,
            details: json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
