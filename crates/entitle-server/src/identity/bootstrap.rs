//! `entitled bootstrap`: the first operator account.

use serde_json::json;

use crate::{
    app::AppState,
    audit::{self, Actor, Entry},
    db::now_ms,
    identity::{
        flows::{self, Fields},
        store::{self, TokenPurpose},
    },
};

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Promoted,
}

/// Creates (or promotes) the operator account and emails it a set-password link.
/// Refuses when an operator already exists, unless `force`.
pub async fn bootstrap_operator(
    state: &AppState,
    email: &str,
    first_name: &str,
    last_name: &str,
    country: &str,
    force: bool,
) -> anyhow::Result<Outcome> {
    let mut fields = Fields::default();
    let person = flows::parse_person(&mut fields, email, first_name, last_name, country);
    if let Err(crate::error::ApiError::Validation(errors)) = fields.finish() {
        let reasons: Vec<String> = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        anyhow::bail!("invalid operator details: {}", reasons.join("; "));
    }
    let person = person.ok_or_else(|| anyhow::anyhow!("validated person missing"))?;
    let now = now_ms();
    let mut tx = state.db.begin().await?;
    if store::any_operator(&mut tx).await? && !force {
        anyhow::bail!("an operator account already exists; pass --force to add another");
    }
    let (account, outcome) = match store::account_by_email(&mut tx, person.email.as_str()).await? {
        Some(existing) => {
            store::set_operator(&mut tx, existing.id, now).await?;
            (existing, Outcome::Promoted)
        }
        None => {
            let account = store::AccountRow {
                is_operator: true,
                ..flows::new_account_row(&person, None, now)
            };
            store::insert_account(&mut tx, &account).await?;
            (account, Outcome::Created)
        }
    };
    audit::record(
        &mut tx,
        &Actor::system(),
        Entry {
            action: "operator.bootstrapped",
            target_type: "account",
            target_id: Some(account.id),
            target_label: Some(&account.email),
            org_id: None,
            details: json!({"promoted": outcome == Outcome::Promoted}),
        },
    )
    .await
    .map_err(anyhow::Error::from)?;
    let token = flows::issue_account_token(
        &mut tx,
        account.id,
        TokenPurpose::SetPassword,
        state.config.tokens.invitation_ttl_secs,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    tx.commit().await?;
    let url = format!(
        "{}/reset-password?token={}",
        state.config.public_base(),
        token.secret
    );
    let message = crate::mail::Email {
        to: account.email.clone(),
        subject: "Your entitle operator account".to_owned(),
        greeting: format!("Hello {},", account.first_name),
        paragraphs: vec![
            "An operator account of entitle was set up for this address with `entitled bootstrap`. Operators create products, organizations and their first Fulfillment Contacts.".to_owned(),
            format!("Confirm your email address and choose a password to sign in. The link works once and for {} hours.", state.config.tokens.invitation_ttl_secs / 3600),
            "If you did not set up entitle, ignore this message.".to_owned(),
        ],
        action: Some(("Confirm your email and set a password".to_owned(), url)),
    };
    state.mailer.send(&message).await?;
    Ok(outcome)
}
