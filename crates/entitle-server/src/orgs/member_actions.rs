//! What an administrator does to members beyond editing them: send a new invitation or a
//! password-reset link, read a member's whole record, and act on many members at once.
//! Every action on one member goes through the same rule functions as the single-member
//! API, so a bulk request can do nothing one request at a time could not.

use entitle_proto::{
    BulkMemberAction, BulkMemberDone, BulkMemberOutcome, BulkMemberRefusal, BulkMemberRequest,
    MemberDetail, MemberGroup, MemberInvitation, UpdateMemberRequest,
};
use serde_json::json;
use uuid::Uuid;

use super::{
    access::OrgAccess,
    members::{self, changeable_member},
    roles::Role,
    store,
};
use crate::{
    app::{AppState, Client},
    audit::{self, Entry},
    db::DbError,
    error::{ApiError, ApiResult},
    identity::{
        flows::{self, actor_of},
        store::{self as accounts, AccountRow, TokenPurpose},
    },
    mail::Email as Message,
    on_db,
};

/// The most members one bulk request may name: a page of the member list.
pub const MAX_BULK: usize = 200;

/// One member with their last sign-in, invitation, SCIM groups and where each role came
/// from, for those who may list members.
pub async fn detail(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    account_id: Uuid,
) -> ApiResult<MemberDetail> {
    let (member, home) = members::get(state, caller, org_id, account_id).await?;
    let mut conn = state.db.reader().await?;
    let last_sign_in_at = accounts::last_sign_in(&mut conn, account_id).await?;
    let invitation = if member.registered {
        None
    } else {
        accounts::last_set_password_link(&mut conn, account_id)
            .await?
            .map(|(sent_at, expires_at)| MemberInvitation {
                sent_at,
                expires_at,
            })
    };
    let groups: Vec<(Uuid, String, Option<String>)> = on_db!(&mut conn, |c| sqlx::query_as(
        "SELECT g.id, g.display_name, g.role FROM scim_group_members gm \
         JOIN scim_groups g ON g.id = gm.group_id \
         WHERE gm.org_id = $1 AND gm.account_id = $2 ORDER BY g.display_key"
    )
    .bind(org_id)
    .bind(account_id)
    .fetch_all(c)
    .await)
    .map_err(DbError::from)?;
    let roles_from_groups: Vec<(String,)> = on_db!(&mut conn, |c| sqlx::query_as(
        "SELECT role FROM org_member_roles \
         WHERE org_id = $1 AND account_id = $2 AND from_group = TRUE ORDER BY role"
    )
    .bind(org_id)
    .bind(account_id)
    .fetch_all(c)
    .await)
    .map_err(DbError::from)?;
    Ok(MemberDetail {
        member,
        home,
        last_sign_in_at,
        invitation,
        groups: groups
            .into_iter()
            .map(|(id, display_name, role)| MemberGroup {
                id,
                display_name,
                role,
            })
            .collect(),
        roles_from_groups: roles_from_groups.into_iter().map(|(r,)| r).collect(),
    })
}

/// The two links an administrator sends a member to set a password.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Link {
    /// A new invitation, to someone who has not set a password yet.
    Invitation,
    /// A password-reset link, to a registered member of their home organization.
    PasswordReset,
}

/// Sends a member who has not set a password yet a new invitation (a fresh link; older
/// ones keep working until they expire).
pub async fn resend_invitation(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    account_id: Uuid,
    from: &Client,
) -> ApiResult<AccountRow> {
    send_link(state, caller, org_id, account_id, from, Link::Invitation).await
}

/// Sends a registered member of their home organization a link to set a new password.
/// Their password keeps working until they use it.
pub async fn send_password_reset(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    account_id: Uuid,
    from: &Client,
) -> ApiResult<AccountRow> {
    send_link(state, caller, org_id, account_id, from, Link::PasswordReset).await
}

async fn send_link(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    account_id: Uuid,
    from: &Client,
    link: Link,
) -> ApiResult<AccountRow> {
    let mut tx = state.db.begin().await?;
    let access = OrgAccess::of(&mut tx, caller, org_id).await?;
    let (account, _, disabled) = changeable_member(&mut tx, &access, account_id).await?;
    let registered = account.password_hash.is_some();
    match link {
        Link::Invitation if registered => {
            return Err(ApiError::conflict(
                "already_registered",
                "They have set a password already: send a password-reset link instead.",
            ))
        }
        Link::PasswordReset if account.home_org_id != Some(org_id) => {
            return Err(ApiError::forbidden(
                "not_home_organization",
                "Only their own organization can send them a password-reset link.",
            ))
        }
        Link::PasswordReset if !registered => {
            return Err(ApiError::conflict(
                "not_registered",
                "They have not set a password yet: resend the invitation instead.",
            ))
        }
        _ => {}
    }
    if disabled || !account.is_active() {
        return Err(ApiError::conflict(
            "member_disabled",
            "They are disabled: enable them first.",
        ));
    }
    if !flows::may_email(&mut tx, state, &account.email).await? {
        return Err(ApiError::TooManyRequests {
            retry_after_secs: 3600,
        });
    }
    let (ttl_secs, action) = match link {
        Link::Invitation => (
            state.config.tokens.invitation_ttl_secs,
            "org.invitation_resent",
        ),
        Link::PasswordReset => (
            state.config.tokens.password_reset_ttl_secs,
            "org.password_reset_sent",
        ),
    };
    let token =
        flows::issue_account_token(&mut tx, account.id, TokenPurpose::SetPassword, ttl_secs)
            .await?;
    let org = &access.org.name;
    let message = match link {
        Link::Invitation => flows::set_password_message(state, &account, &token.secret, Some(org)),
        Link::PasswordReset => reset_message(state, &account, &token.secret, org),
    };
    record(&mut tx, caller, from, org_id, &account, action).await?;
    tx.commit().await?;
    state.mailer.send_in_background(message);
    Ok(account)
}

fn reset_message(state: &AppState, account: &AccountRow, token: &str, org: &str) -> Message {
    let minutes = state.config.tokens.password_reset_ttl_secs / 60;
    Message {
        to: account.email.clone(),
        subject: "Set a new entitle password".to_owned(),
        greeting: format!("Hello {},", account.first_name),
        paragraphs: vec![
            format!("An administrator of {org} sent you this link to set a new password."),
            format!("The link works once and for {minutes} minutes. Your current password keeps working until you use it."),
        ],
        action: Some((
            "Set a new password".to_owned(),
            flows::link(state, "/reset-password", token),
        )),
    }
}

async fn record(
    tx: &mut crate::db::Tx,
    caller: &AccountRow,
    from: &Client,
    org_id: Uuid,
    account: &AccountRow,
    action: &'static str,
) -> ApiResult<()> {
    audit::record(
        tx,
        &actor_of(caller, from),
        Entry {
            action,
            target_type: "account",
            target_id: Some(account.id),
            target_label: Some(&account.email),
            org_id: Some(org_id),
            details: json!({}),
        },
    )
    .await?;
    Ok(())
}

/// The role a bulk role change names, checked before anyone is touched.
fn bulk_role(request: &BulkMemberRequest) -> ApiResult<Option<Role>> {
    let wants_role = matches!(
        request.action,
        BulkMemberAction::AddRole | BulkMemberAction::RemoveRole
    );
    match (wants_role, request.role.as_deref()) {
        (false, None) => Ok(None),
        (false, Some(_)) => Err(ApiError::field(
            "role",
            "unexpected",
            "Only add_role and remove_role take a role.",
        )),
        (true, None) => Err(ApiError::field(
            "role",
            "required",
            "Name the role to give or take away.",
        )),
        (true, Some(name)) => Role::parse(name).map(Some).ok_or_else(|| {
            ApiError::field("role", "unknown_role", super::roles::unknown_role(name))
        }),
    }
}

/// Does `request.action` to each member it names, each under the rules of doing it to
/// one member, in a transaction of its own: what is allowed is done, what is not is
/// refused with the reason, and nobody is changed by a refused action. Ids of people who
/// are not members of the organization are refused as not found.
pub async fn bulk(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    request: &BulkMemberRequest,
    from: &Client,
) -> ApiResult<BulkMemberOutcome> {
    let role = bulk_role(request)?;
    let mut ids: Vec<Uuid> = Vec::with_capacity(request.account_ids.len());
    for id in &request.account_ids {
        if !ids.contains(id) {
            ids.push(*id);
        }
    }
    if ids.is_empty() || ids.len() > MAX_BULK {
        return Err(ApiError::field(
            "account_ids",
            "invalid",
            format!("Choose 1 to {MAX_BULK} members."),
        ));
    }
    {
        // Anyone without the right to manage members is refused as a whole.
        let mut conn = state.db.reader().await?;
        OrgAccess::of(&mut conn, caller, org_id)
            .await?
            .require(super::roles::Action::ManageUsers)?;
    }
    let mut outcome = BulkMemberOutcome::default();
    for id in ids {
        let member = {
            let mut conn = state.db.reader().await?;
            match store::membership(&mut conn, org_id, id).await? {
                Some(_) => accounts::account_by_id(&mut conn, id).await?,
                None => None,
            }
        };
        let Some(member) = member else {
            outcome.refused.push(BulkMemberRefusal {
                account_id: id,
                email: None,
                name: None,
                code: "not_found".to_owned(),
                reason: "Not a member of this organization.".to_owned(),
            });
            continue;
        };
        let result = match request.action {
            BulkMemberAction::Disable | BulkMemberAction::Enable => {
                let change = UpdateMemberRequest {
                    disabled: Some(request.action == BulkMemberAction::Disable),
                    ..UpdateMemberRequest::default()
                };
                members::update(state, caller, org_id, id, &change, from)
                    .await
                    .map(drop)
            }
            BulkMemberAction::Remove => members::remove(state, caller, org_id, id, from).await,
            BulkMemberAction::AddRole | BulkMemberAction::RemoveRole => {
                change_role(state, caller, org_id, id, role, request.action, from).await
            }
            BulkMemberAction::ResendInvitation => {
                resend_invitation(state, caller, org_id, id, from)
                    .await
                    .map(drop)
            }
        };
        let name = format!("{} {}", member.first_name, member.last_name);
        match result {
            Ok(()) => outcome.done.push(BulkMemberDone {
                account_id: id,
                email: member.email,
                name,
            }),
            Err(error @ (ApiError::Internal(_) | ApiError::Unavailable)) => return Err(error),
            Err(error) => outcome.refused.push(BulkMemberRefusal {
                account_id: id,
                email: Some(member.email),
                name: Some(name),
                code: error.code().to_owned(),
                reason: error.detail(),
            }),
        }
    }
    Ok(outcome)
}

async fn change_role(
    state: &AppState,
    caller: &AccountRow,
    org_id: Uuid,
    account_id: Uuid,
    role: Option<Role>,
    action: BulkMemberAction,
    from: &Client,
) -> ApiResult<()> {
    let role = role.ok_or_else(|| anyhow::anyhow!("bulk role checked before"))?;
    let (member, _) = members::get(state, caller, org_id, account_id).await?;
    let holds = member.roles.iter().any(|r| r == role.as_str());
    let mut wanted: Vec<String> = member
        .roles
        .iter()
        .filter(|r| r.as_str() != role.as_str())
        .cloned()
        .collect();
    match (action, holds) {
        (BulkMemberAction::AddRole, false) => wanted.push(role.as_str().to_owned()),
        (BulkMemberAction::AddRole, true) => {
            return Err(ApiError::conflict(
                "role_held",
                format!("They hold the role {} already.", role.label()),
            ))
        }
        (_, false) => {
            return Err(ApiError::conflict(
                "role_not_held",
                format!("They do not hold the role {}.", role.label()),
            ))
        }
        (_, true) => {}
    }
    members::set_roles(state, caller, org_id, account_id, &wanted, from)
        .await
        .map(drop)
}
