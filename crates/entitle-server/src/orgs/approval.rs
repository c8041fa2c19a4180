//! Who joins an organization without being added by hand: Auto Approval for people who
//! verify an email address in one of its verified domains, and requests to join that
//! its administrators approve or reject. Also the organization's required actions.

use entitle_proto::{
    AccessDecision, AccessRequest, JoinableOrg, NewAccessRequest, Org, RequiredAction,
};
use serde_json::json;
use uuid::Uuid;

use crate::words::plural;

use super::{
    access::OrgAccess,
    roles::{Action, Role},
    store::{self, OrgRow},
};
use crate::{
    app::{AppState, Client},
    audit::{self, Actor, Entry},
    db::{now_ms, DbError, Executor, Tx},
    error::{ApiError, ApiResult},
    execute,
    identity::{
        flows::actor_of,
        store::{self as accounts, AccountRow},
    },
    mail::Email,
    on_db,
};

const MAX_MESSAGE_CHARS: usize = 500;

async fn has_verified_domain(ex: &mut impl Executor, org_id: Uuid) -> Result<bool, DbError> {
    let (count,): (i64,) = on_db!(ex, |c| sqlx::query_as(
        "SELECT COUNT(*) FROM org_domains WHERE org_id = $1 AND verified_at IS NOT NULL"
    )
    .bind(org_id)
    .fetch_one(c)
    .await)?;
    Ok(count > 0)
}

/// Organizations with `domain` verified, and whether they approve automatically.
async fn orgs_with_domain(ex: &mut impl Executor, domain: &str) -> Result<Vec<OrgRow>, DbError> {
    Ok(on_db!(ex, |c| sqlx::query_as(
        "SELECT o.id, o.name, o.created_at, o.auto_approval FROM org_domains d \
         JOIN orgs o ON o.id = d.org_id WHERE d.domain = $1 AND d.verified_at IS NOT NULL"
    )
    .bind(domain)
    .fetch_all(c)
    .await)?)
}

/// Switches Auto Approval (Fulfillment Contacts and Administrators); on only while the
/// organization has a verified domain.
pub async fn set_auto_approval(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    enabled: bool,
    from: &Client,
) -> ApiResult<Org> {
    let mut tx = state.db.begin().await?;
    OrgAccess::of(&mut tx, caller, org_id)
        .await?
        .require(Action::ToggleAutoApproval)?;
    if enabled && !has_verified_domain(&mut tx, org_id).await? {
        return Err(ApiError::conflict(
            "no_verified_domain",
            "Auto Approval needs a verified domain: claim and verify one first.",
        ));
    }
    execute!(
        &mut tx,
        "UPDATE orgs SET auto_approval = $1 WHERE id = $2",
        enabled,
        org_id
    )?;
    audit::record(
        &mut tx,
        &actor_of(caller, from),
        Entry {
            action: "org.auto_approval_changed",
            target_type: "org",
            target_id: Some(org_id),
            target_label: None,
            org_id: Some(org_id),
            details: json!({ "enabled": enabled }),
        },
    )
    .await?;
    tx.commit().await?;
    super::visible_org(state, caller, org_id).await
}

/// Adds `account` as a User of `org`, with `actor` in the audit log.
async fn join(
    tx: &mut Tx,
    org: &OrgRow,
    account: &AccountRow,
    actor: &Actor,
    action: &str,
) -> ApiResult<()> {
    let now = now_ms();
    store::add_member(tx, org.id, account, &[Role::User.as_str()], now).await?;
    accounts::set_home_org_if_none(tx, &[account.id], org.id, now).await?;
    audit::record(
        tx,
        actor,
        Entry {
            action,
            target_type: "account",
            target_id: Some(account.id),
            target_label: Some(&account.email),
            org_id: Some(org.id),
            details: json!({ "roles": [Role::User.as_str()] }),
        },
    )
    .await?;
    Ok(())
}

fn message_to(
    to: String,
    subject: String,
    paragraphs: Vec<String>,
    action: Option<(String, String)>,
) -> Email {
    Email {
        to,
        subject,
        greeting: "Hello,".to_owned(),
        paragraphs,
        action,
    }
}

/// Called when a person has just verified their email address, inside that
/// transaction: if an organization has their domain verified and approves
/// automatically, they become its User. Returns the emails to send after commit.
pub async fn join_by_domain(
    tx: &mut Tx,
    state: &AppState,
    account: &AccountRow,
) -> ApiResult<Vec<Email>> {
    if account.home_org_id.is_some() {
        return Ok(Vec::new());
    }
    let approving: Vec<OrgRow> = orgs_with_domain(tx, account.email_domain())
        .await?
        .into_iter()
        .filter(|o| o.auto_approval)
        .collect();
    // The verified-domain index allows one organization per domain.
    let Some(org) = approving.first() else {
        return Ok(Vec::new());
    };
    let actor = Actor {
        id: None,
        label: Some("auto approval".to_owned()),
        ip: None,
    };
    join(tx, org, account, &actor, "org.member_auto_approved").await?;
    let members = format!("{}/orgs/{}/members", state.config.public_base(), org.id);
    Ok(store::administrator_emails(tx, org.id)
        .await?
        .into_iter()
        .map(|to| {
            message_to(
                to,
                format!(
                    "{} joined {} through Auto Approval",
                    account.email, org.name
                ),
                vec![format!(
                    "{} {} ({}) verified an address in a domain of {} and is now a User of it.",
                    account.first_name, account.last_name, account.email, org.name
                )],
                Some(("See the members".to_owned(), members.clone())),
            )
        })
        .collect())
}

/// Organizations the caller may ask to join: those with their email's domain verified.
pub async fn joinable(state: &AppState, caller: &AccountRow) -> ApiResult<Vec<JoinableOrg>> {
    if !caller.email_verified {
        return Ok(Vec::new());
    }
    let mut conn = state.db.reader().await?;
    let domain = caller.email_domain();
    Ok(orgs_with_domain(&mut conn, domain)
        .await?
        .into_iter()
        .map(|o| JoinableOrg {
            id: o.id,
            name: o.name,
            domain: domain.to_owned(),
        })
        .collect())
}

/// The organization where `email` is an enabled Fulfillment Contact, Administrator or
/// Co-Administrator.
async fn org_administered_by(
    ex: &mut impl Executor,
    email: &str,
) -> Result<Option<OrgRow>, DbError> {
    Ok(on_db!(ex, |c| sqlx::query_as(
        "SELECT o.id, o.name, o.created_at, o.auto_approval FROM accounts a \
         JOIN org_member_roles r ON r.account_id = a.id \
         JOIN org_members m ON m.org_id = r.org_id AND m.account_id = r.account_id \
         JOIN orgs o ON o.id = r.org_id \
         WHERE a.email = $1 AND r.role IN ($2, $3, $4) AND m.disabled_at IS NULL \
         ORDER BY o.created_at LIMIT 1"
    )
    .bind(email)
    .bind(Role::FulfillmentContact.as_str())
    .bind(Role::Administrator.as_str())
    .bind(Role::CoAdministrator.as_str())
    .fetch_optional(c)
    .await)?)
}

/// A message between people: at most `MAX_MESSAGE_CHARS`, lines but no other control
/// characters.
fn plain_text(text: &str) -> bool {
    text.chars().count() <= MAX_MESSAGE_CHARS && !text.chars().any(|c| c.is_control() && c != '\n')
}

/// Asks to join an organization. Named by an administrator's address, the answer is
/// the same whether or not that person administers anything, so addresses cannot be
/// probed; the request then only exists if they do.
pub async fn request_access(
    state: &AppState,
    caller: &AccountRow,
    request: &NewAccessRequest,
    from: &Client,
) -> ApiResult<()> {
    let message = request.message.trim().to_owned();
    if !plain_text(&message) {
        return Err(ApiError::field(
            "message",
            "invalid",
            format!("Write at most {MAX_MESSAGE_CHARS} characters of plain text."),
        ));
    }
    if !caller.email_verified {
        return Err(ApiError::forbidden(
            "email_not_verified",
            "Confirm your email address first: use the link we sent you.",
        ));
    }
    if caller.home_org_id.is_some() {
        return Err(ApiError::conflict(
            "already_in_organization",
            "You already belong to an organization; ask its administrators instead.",
        ));
    }
    let mut tx = state.db.begin().await?;
    let (org, named) = match (&request.org_id, &request.administrator_email) {
        (Some(org_id), None) => (
            orgs_with_domain(&mut tx, caller.email_domain())
                .await?
                .into_iter()
                .find(|o| o.id == *org_id)
                .ok_or(ApiError::NotFound)?,
            None,
        ),
        (None, Some(email)) => {
            let email = crate::identity::person::Email::parse(email)
                .map_err(|e| ApiError::field("administrator_email", e.code, e.message))?;
            match org_administered_by(&mut tx, email.as_str()).await? {
                Some(org) => (org, Some(email.as_str().to_owned())),
                None => return Ok(()),
            }
        }
        _ => {
            return Err(ApiError::field(
                "org_id",
                "required",
                "Name the organization, or the email address of one of its administrators (one of the two).",
            ))
        }
    };
    let id = Uuid::now_v7();
    let created = execute!(
        &mut tx,
        "INSERT INTO access_requests (id, org_id, account_id, message, created_at, status, via, named_administrator) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (org_id, account_id) WHERE status = 'pending' DO NOTHING",
        id,
        org.id,
        caller.id,
        &message,
        now_ms(),
        "pending",
        if named.is_some() { "administrator" } else { "domain" },
        named.as_deref()
    )?;
    if created == 0 {
        // Asked already and not yet decided: nothing new to tell anyone.
        return Ok(());
    }
    audit::record(
        &mut tx,
        &actor_of(caller, from),
        Entry {
            action: "org.access_requested",
            target_type: "access_request",
            target_id: Some(id),
            target_label: Some(&caller.email),
            org_id: Some(org.id),
            details: json!({ "message": message }),
        },
    )
    .await?;
    let admins = store::administrator_emails(&mut tx, org.id).await?;
    tx.commit().await?;
    let queue = format!(
        "{}/orgs/{}/access-requests",
        state.config.public_base(),
        org.id
    );
    for to in admins {
        state.mailer.send_in_background(message_to(
            to,
            format!("{} asks to join {}", caller.email, org.name),
            vec![
                format!(
                    "{} {} ({}) asks to join {}.",
                    caller.first_name, caller.last_name, caller.email, org.name
                ),
                if message.is_empty() {
                    "They left no message.".to_owned()
                } else {
                    format!("Their message: {message}")
                },
            ],
            Some(("Approve or reject".to_owned(), queue.clone())),
        ));
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct RequestRow {
    id: Uuid,
    org_id: Uuid,
    account_id: Uuid,
    email: String,
    first_name: String,
    last_name: String,
    message: String,
    created_at: i64,
    status: String,
    decided_at: Option<i64>,
    reason: Option<String>,
    via: String,
    named_administrator: Option<String>,
    decided_by: Option<String>,
    roles: String,
}

impl From<RequestRow> for AccessRequest {
    fn from(r: RequestRow) -> Self {
        AccessRequest {
            id: r.id,
            org_id: r.org_id,
            account_id: r.account_id,
            email: r.email,
            first_name: r.first_name,
            last_name: r.last_name,
            message: r.message,
            created_at: r.created_at,
            status: r.status,
            decided_at: r.decided_at,
            reason: r.reason,
            via: r.via,
            named_administrator: r.named_administrator,
            decided_by: r.decided_by,
            roles: r
                .roles
                .split(';')
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }
}

const REQUEST_SELECT: &str =
    "SELECT q.id, q.org_id, q.account_id, a.email, a.first_name, a.last_name, \
     q.message, q.created_at, q.status, q.decided_at, q.reason, q.via, q.named_administrator, \
     d.email AS decided_by, q.roles \
     FROM access_requests q JOIN accounts a ON a.id = q.account_id \
     LEFT JOIN accounts d ON d.id = q.decided_by";

/// The organization's requests with `status` (`pending` when not given): pending ones
/// oldest first, decided ones (the history) newest first.
pub async fn list_requests(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    status: Option<&str>,
) -> ApiResult<Vec<AccessRequest>> {
    let status = status.unwrap_or("pending");
    if !["pending", "approved", "rejected"].contains(&status) {
        return Err(ApiError::field(
            "status",
            "invalid",
            "Status is pending, approved or rejected.",
        ));
    }
    let mut conn = state.db.reader().await?;
    OrgAccess::of(&mut conn, caller, org_id)
        .await?
        .require(Action::DecideAccessRequests)?;
    let order = if status == "pending" {
        "q.created_at"
    } else {
        "q.decided_at DESC"
    };
    let sql = format!(
        "{REQUEST_SELECT} WHERE q.org_id = $1 AND q.status = $2 ORDER BY {order} LIMIT 500"
    );
    let rows: Vec<RequestRow> = on_db!(&mut conn, |c| sqlx::query_as(&sql)
        .bind(org_id)
        .bind(status)
        .fetch_all(c)
        .await)
    .map_err(DbError::from)?;
    Ok(rows.into_iter().map(AccessRequest::from).collect())
}

/// Approves (the requester becomes a User) or rejects a pending request; the requester
/// is told either way.
pub async fn decide(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    request_id: Uuid,
    approve: bool,
    decision: &AccessDecision,
    from: &Client,
) -> ApiResult<AccessRequest> {
    let reason = decision
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    let mut roles: Vec<Role> = Vec::new();
    for name in &decision.roles {
        let role = Role::parse(name).ok_or_else(|| {
            ApiError::field("roles", "unknown_role", super::roles::unknown_role(name))
        })?;
        if !approve {
            return Err(ApiError::field(
                "roles",
                "unexpected",
                "Roles are given when approving, not rejecting.",
            ));
        }
        if role != Role::User && !roles.contains(&role) {
            roles.push(role);
        }
    }
    if reason.is_some_and(|r| !plain_text(r)) {
        return Err(ApiError::field(
            "reason",
            "invalid",
            format!("Write at most {MAX_MESSAGE_CHARS} characters of plain text."),
        ));
    }
    let mut tx = state.db.begin().await?;
    let access = OrgAccess::of(&mut tx, caller, org_id).await?;
    access.require(Action::DecideAccessRequests)?;
    for role in &roles {
        access.require(Action::AssignRole(*role))?;
    }
    let sql = format!("{REQUEST_SELECT} WHERE q.org_id = $1 AND q.id = $2");
    let row: RequestRow = on_db!(&mut tx, |c| sqlx::query_as(&sql)
        .bind(org_id)
        .bind(request_id)
        .fetch_optional(c)
        .await)
    .map_err(DbError::from)?
    .ok_or(ApiError::NotFound)?;
    if row.status != "pending" {
        return Err(ApiError::conflict(
            "already_decided",
            format!("This request was {} already.", row.status),
        ));
    }
    let requester = accounts::account_by_id(&mut tx, row.account_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let now = now_ms();
    let status = if approve { "approved" } else { "rejected" };
    let actor = actor_of(caller, from);
    if approve {
        if requester.home_org_id.is_some_and(|home| home != org_id) {
            return Err(ApiError::conflict(
                "member_of_other_org",
                "This person has joined another organization since asking.",
            ));
        }
        if store::membership(&mut tx, org_id, requester.id)
            .await?
            .is_none()
        {
            join(
                &mut tx,
                &access.org,
                &requester,
                &actor,
                "org.access_approved",
            )
            .await?;
            if !roles.is_empty() {
                let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
                store::set_roles(&mut tx, org_id, requester.id, &names).await?;
                audit::record(
                    &mut tx,
                    &actor,
                    Entry {
                        action: "org.roles_changed",
                        target_type: "account",
                        target_id: Some(requester.id),
                        target_label: Some(&requester.email),
                        org_id: Some(org_id),
                        details: json!({ "before": [Role::User.as_str()], "after": names }),
                    },
                )
                .await?;
            }
        }
    } else {
        audit::record(
            &mut tx,
            &actor,
            Entry {
                action: "org.access_rejected",
                target_type: "account",
                target_id: Some(requester.id),
                target_label: Some(&requester.email),
                org_id: Some(org_id),
                details: json!({ "reason": reason }),
            },
        )
        .await?;
    }
    let role_names: Vec<String> = roles.iter().map(|r| r.as_str().to_owned()).collect();
    execute!(
        &mut tx,
        "UPDATE access_requests SET status = $1, decided_by = $2, decided_at = $3, reason = $4, roles = $5 \
         WHERE id = $6 AND status = 'pending'",
        status,
        caller.id,
        now,
        reason,
        role_names.join(";"),
        request_id
    )?;
    tx.commit().await?;
    let org_name = &access.org.name;
    let message = if approve {
        message_to(
            requester.email.clone(),
            format!("You are now a member of {org_name}"),
            vec![format!("Your request to join {org_name} was approved.")],
            Some((
                "Open your account".to_owned(),
                format!("{}/account", state.config.public_base()),
            )),
        )
    } else {
        let mut paragraphs = vec![format!("Your request to join {org_name} was not approved.")];
        if let Some(reason) = reason {
            paragraphs.push(format!("The administrator wrote: {reason}"));
        }
        message_to(
            requester.email.clone(),
            format!("Your request to join {org_name}"),
            paragraphs,
            None,
        )
    };
    state.mailer.send_in_background(message);
    Ok(AccessRequest {
        status: status.to_owned(),
        decided_at: Some(now),
        reason: reason.map(str::to_owned),
        decided_by: Some(caller.email.clone()),
        roles: role_names,
        ..row.into()
    })
}

/// What the organization's administrators should do next; each disappears once done.
pub async fn required_actions(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
) -> ApiResult<Vec<RequiredAction>> {
    let mut conn = state.db.reader().await?;
    let access = OrgAccess::of(&mut conn, caller, org_id).await?;
    access.require(Action::ListUsers)?;
    Ok(required_actions_of(&mut conn, &access).await?)
}

/// [`required_actions`] for a caller already authorized (the portal header).
pub async fn required_actions_of(
    conn: &mut impl Executor,
    access: &OrgAccess,
) -> Result<Vec<RequiredAction>, DbError> {
    let org_id = access.org.id;
    let base = format!("/orgs/{org_id}");
    let mut actions = Vec::new();
    let verified = has_verified_domain(conn, org_id).await?;
    if !verified {
        actions.push(RequiredAction {
            code: "verify_domain".to_owned(),
            message:
                "Verify your organization's email domain, so that your people can be recognized."
                    .to_owned(),
            href: format!("{base}/domains"),
            count: None,
        });
    }
    if !access.org.auto_approval {
        actions.push(RequiredAction {
            code: "enable_auto_approval".to_owned(),
            message: "Auto Approval is off: people of your domain must ask to join.".to_owned(),
            href: format!("{base}/domains"),
            count: None,
        });
    }
    let (pending,): (i64,) = on_db!(conn, |c| sqlx::query_as(
        "SELECT COUNT(*) FROM access_requests WHERE org_id = $1 AND status = 'pending'"
    )
    .bind(org_id)
    .fetch_one(c)
    .await)?;
    if pending > 0 {
        actions.push(RequiredAction {
            code: "decide_access_requests".to_owned(),
            message: format!(
                "{} to join {} waiting for a decision.",
                plural(pending, "request", "requests"),
                if pending == 1 { "is" } else { "are" }
            ),
            href: format!("{base}/access-requests"),
            count: Some(pending),
        });
    }
    let (invited,): (i64,) = on_db!(conn, |c| {
        sqlx::query_as(
        // The partial index org_members_invited answers this; its condition is repeated
        // word for word so that SQLite uses it.
        "SELECT COUNT(*) FROM org_members WHERE org_id = $1 AND NOT registered AND disabled_at IS NULL"
    )
    .bind(org_id)
    .fetch_one(c)
    .await
    })?;
    if invited > 0 {
        actions.push(RequiredAction {
            code: "invited_not_registered".to_owned(),
            message: format!(
                "{} {} not set a password yet.",
                plural(invited, "invited person", "invited people"),
                if invited == 1 { "has" } else { "have" }
            ),
            href: format!("{base}/members?status=invited"),
            count: Some(invited),
        });
    }
    Ok(actions)
}
