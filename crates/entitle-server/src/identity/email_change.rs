//! Changing the address a person signs in with, whoever asks (the person, an
//! administrator, an identity provider through SCIM). A registered person keeps signing
//! in, and recovering, with the old address until the owner of the new one confirms it
//! from a link sent there; the old address is told at once and can cancel. When the
//! change takes effect, every session and client grant of the account ends and the old
//! address is told again. Someone who has not registered yet (no password) has nothing
//! to take over: their address changes at once and the invitation goes to the new one.

use serde_json::json;
use uuid::Uuid;

use crate::{
    app::{AppState, Client},
    audit::{self, Actor},
    db::{now_ms, DbError, Executor, Tx},
    error::{ApiError, ApiResult},
    execute,
    identity::{
        flows::{self, actor_of},
        person::Email,
        store::{self, AccountRow, TokenPurpose},
        tokens,
    },
    mail::Email as Message,
    on_db,
};

/// What a request to change an address did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailChange {
    /// The address is the one the account has.
    Unchanged,
    /// Waiting for the owner of this address to confirm it.
    Pending(String),
    /// Changed at once (the person had not registered yet).
    Applied,
}

fn invalid_link() -> ApiError {
    ApiError::bad_request(
        "invalid_token",
        "This link is invalid, has expired or was already used.",
    )
}

fn taken(email: &str) -> ApiError {
    ApiError::conflict("email_taken", format!("Another account uses {email}."))
}

/// Starts changing `account`'s address to `new`, inside the caller's transaction.
/// `requested_by` says who asked, as the messages word it ("You", "An administrator of
/// Acme"); `invited_to` names the organization an unregistered person was invited to.
/// Returns what happened and the messages to send once the transaction commits.
pub async fn request(
    tx: &mut Tx,
    state: &AppState,
    account: &AccountRow,
    new: &Email,
    actor: &Actor,
    requested_by: &str,
    invited_to: Option<&str>,
) -> ApiResult<(EmailChange, Vec<Message>)> {
    let now = now_ms();
    if new.as_str() == account.email {
        execute!(
            &mut *tx,
            "DELETE FROM email_changes WHERE account_id = $1",
            account.id
        )?;
        return Ok((EmailChange::Unchanged, Vec::new()));
    }
    if store::account_by_email(&mut *tx, new.as_str())
        .await?
        .is_some()
    {
        return Err(taken(new.as_str()));
    }
    if account.password_hash.is_none() {
        return apply_unregistered(tx, state, account, new, actor, invited_to, now).await;
    }
    let confirm = tokens::issue();
    let cancel = tokens::issue();
    let expires_at = now + state.config.tokens.email_verification_ttl_secs * 1000;
    execute!(
        &mut *tx,
        "INSERT INTO email_changes (account_id, new_email, confirm_hash, cancel_hash, \
         requested_by, requested_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (account_id) DO UPDATE SET new_email = $2, confirm_hash = $3, \
         cancel_hash = $4, requested_by = $5, requested_at = $6, expires_at = $7",
        account.id,
        new.as_str(),
        &confirm.hash,
        &cancel.hash,
        &actor.label,
        now,
        expires_at
    )?;
    audit::record(
        &mut *tx,
        actor,
        flows::account_event(
            "account.email_change_requested",
            account,
            json!({"before": account.email, "after": new.as_str()}),
        ),
    )
    .await?;
    let base = state.config.public_base();
    let old = &account.email;
    let messages = vec![
        Message {
            to: new.as_str().to_owned(),
            subject: "Confirm your new entitle sign-in address".to_owned(),
            greeting: format!("Hello {},", account.first_name),
            paragraphs: vec![
                format!("{requested_by} asked to make this the address you sign in to entitle with, in place of {old}."),
                format!("Until you confirm, you keep signing in with {old}. Once you confirm, you are signed out everywhere (browsers, the desktop client and applications) and sign in again with this address."),
                "If you did not expect this, ignore this message: nothing changes.".to_owned(),
            ],
            action: Some((
                "Confirm this address".to_owned(),
                format!("{base}/confirm-email-change?token={}", confirm.secret),
            )),
        },
        Message {
            to: old.clone(),
            subject: "Your entitle sign-in address is being changed".to_owned(),
            greeting: format!("Hello {},", account.first_name),
            paragraphs: vec![
                format!("{requested_by} asked to change the address you sign in to entitle with from {old} to {}.", new.as_str()),
                "Nothing changes until the new address is confirmed from the message sent to it. If you did not expect this, cancel the change with the link below and tell your organization's administrator.".to_owned(),
            ],
            action: Some((
                "Cancel the change".to_owned(),
                format!("{base}/cancel-email-change?token={}", cancel.secret),
            )),
        },
    ];
    Ok((EmailChange::Pending(new.as_str().to_owned()), messages))
}

/// Someone without a password: the address changes now and the invitation is sent
/// again to the new one; links sent to the old one stop working.
async fn apply_unregistered(
    tx: &mut Tx,
    state: &AppState,
    account: &AccountRow,
    new: &Email,
    actor: &Actor,
    invited_to: Option<&str>,
    now: i64,
) -> ApiResult<(EmailChange, Vec<Message>)> {
    let moved = set_email(tx, state, account, new, false, now).await?;
    let token = flows::issue_account_token(
        tx,
        account.id,
        TokenPurpose::SetPassword,
        state.config.tokens.invitation_ttl_secs,
    )
    .await?;
    audit::record(
        &mut *tx,
        actor,
        flows::account_event(
            "account.email_changed",
            &moved,
            json!({"before": account.email, "after": new.as_str(), "registered": false}),
        ),
    )
    .await?;
    let invitation = flows::set_password_message(state, &moved, &token.secret, invited_to);
    Ok((EmailChange::Applied, vec![invitation]))
}

/// Writes the new address and retires every link sent to the old one.
async fn set_email(
    tx: &mut Tx,
    state: &AppState,
    account: &AccountRow,
    new: &Email,
    verified: bool,
    now: i64,
) -> ApiResult<AccountRow> {
    match store::set_email(&mut *tx, account.id, new.as_str(), verified, now).await {
        Err(error) if error.is_unique_violation() => return Err(taken(new.as_str())),
        other => other?,
    }
    for purpose in [TokenPurpose::SetPassword, TokenPurpose::VerifyEmail] {
        store::retire_tokens(&mut *tx, account.id, purpose, now).await?;
    }
    execute!(
        &mut *tx,
        "DELETE FROM email_changes WHERE account_id = $1",
        account.id
    )?;
    let moved = AccountRow {
        email: new.as_str().to_owned(),
        email_verified: verified,
        updated_at: now,
        ..account.clone()
    };
    state.hooks.details_changed(tx, &moved, now).await?;
    Ok(moved)
}

/// The owner of the new address confirms it: it becomes the sign-in address, verified,
/// and every session and client grant of the account ends.
pub async fn confirm(state: &AppState, token: &str, client: &Client) -> ApiResult<AccountRow> {
    if !tokens::looks_valid(token) {
        return Err(invalid_link());
    }
    let now = now_ms();
    let mut tx = state.db.begin().await?;
    let row: Option<(Uuid, String, i64)> = on_db!(&mut tx, |c| sqlx::query_as(
        "DELETE FROM email_changes WHERE confirm_hash = $1 RETURNING account_id, new_email, expires_at"
    )
    .bind(tokens::hash(token))
    .fetch_optional(c)
    .await)
    .map_err(DbError::from)?;
    let (account_id, new_email, expires_at) = row.ok_or_else(invalid_link)?;
    if expires_at <= now {
        tx.commit().await?;
        return Err(invalid_link());
    }
    let account = store::account_by_id(&mut tx, account_id)
        .await?
        .ok_or_else(invalid_link)?;
    let new = Email::parse(&new_email)
        .map_err(|e| anyhow::anyhow!("stored email invalid: {}", e.message))?;
    let moved = set_email(&mut tx, state, &account, &new, true, now).await?;
    flows::end_sign_ins(&mut tx, state, &moved, None, now).await?;
    audit::record(
        &mut tx,
        &actor_of(&moved, client),
        flows::account_event(
            "account.email_changed",
            &moved,
            json!({"before": account.email, "after": moved.email, "registered": true}),
        ),
    )
    .await?;
    tx.commit().await?;
    state.mailer.send_in_background(Message {
        to: account.email.clone(),
        subject: "Your entitle sign-in address was changed".to_owned(),
        greeting: format!("Hello {},", account.first_name),
        paragraphs: vec![
            format!(
                "The address you sign in to entitle with is now {}. You were signed out everywhere.",
                moved.email
            ),
            "If you did not expect this, contact your organization's administrator at once."
                .to_owned(),
        ],
        action: None,
    });
    Ok(moved)
}

/// The holder of the old address cancels a pending change.
pub async fn cancel(state: &AppState, token: &str, client: &Client) -> ApiResult<()> {
    if !tokens::looks_valid(token) {
        return Err(invalid_link());
    }
    let mut tx = state.db.begin().await?;
    let row: Option<(Uuid, String)> = on_db!(&mut tx, |c| sqlx::query_as(
        "DELETE FROM email_changes WHERE cancel_hash = $1 RETURNING account_id, new_email"
    )
    .bind(tokens::hash(token))
    .fetch_optional(c)
    .await)
    .map_err(DbError::from)?;
    let (account_id, new_email) = row.ok_or_else(invalid_link)?;
    let account = store::account_by_id(&mut tx, account_id)
        .await?
        .ok_or_else(invalid_link)?;
    audit::record(
        &mut tx,
        &Actor {
            id: None,
            label: Some(format!("holder of {}", account.email)),
            ip: Some(client.ip.clone()),
        },
        flows::account_event(
            "account.email_change_cancelled",
            &account,
            json!({"before": account.email, "after": new_email}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The address waiting for confirmation, if any.
pub async fn pending(
    ex: &mut impl Executor,
    account_id: Uuid,
    now: i64,
) -> Result<Option<String>, DbError> {
    Ok(on_db!(ex, |c| sqlx::query_scalar(
        "SELECT new_email FROM email_changes WHERE account_id = $1 AND expires_at > $2"
    )
    .bind(account_id)
    .bind(now)
    .fetch_optional(c)
    .await)?)
}

/// A signed-in person asks to change their own address, proving it is them with their
/// password.
pub async fn request_own(
    state: &AppState,
    account: &AccountRow,
    new_email: &str,
    password: &str,
    client: &Client,
) -> ApiResult<EmailChange> {
    let new = Email::parse(new_email).map_err(|e| ApiError::field("email", e.code, e.message))?;
    if !flows::is_own_password(state, account, password).await? {
        return Err(ApiError::field(
            "password",
            "wrong_password",
            "Your password is wrong.",
        ));
    }
    let mut tx = state.db.begin().await?;
    let (change, messages) = request(
        &mut tx,
        state,
        account,
        &new,
        &actor_of(account, client),
        "You",
        None,
    )
    .await?;
    tx.commit().await?;
    for message in messages {
        state.mailer.send_in_background(message);
    }
    Ok(change)
}
