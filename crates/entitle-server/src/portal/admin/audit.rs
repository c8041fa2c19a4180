//! The organization's audit log, readable: actions by name, filters by who did it and
//! to whom, changes as before → after, names instead of ids, and pages.

use askama::Template;
use axum::extract::State;
use entitle_proto::AuditEvent;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::{date, OrgPage, PageResult};
use crate::{
    app::AppState,
    audit::{self, AuditQuery},
    db::DbError,
    error::{ApiError, Path, Query},
    on_db,
    orgs::{members, roles::Action, roles::Role},
    portal::{Chrome, FormError, Page},
};

/// Every action an organization's log holds, with the words the page shows.
pub const ACTION_NAMES: &[(&str, &str)] = &[
    ("account.created", "Person added and invited"),
    ("org.member_added", "Person added"),
    ("org.member_auto_approved", "Joined by Auto Approval"),
    ("org.member_updated", "Details changed"),
    ("org.roles_changed", "Roles changed"),
    ("org.member_removed", "Removed"),
    ("org.invitation_resent", "Invitation sent again"),
    ("org.password_reset_sent", "Password-reset link sent"),
    ("account.sessions_revoked", "Signed out everywhere"),
    ("account.email_change_requested", "Email change requested"),
    ("account.email_changed", "Email address changed"),
    ("account.email_change_cancelled", "Email change cancelled"),
    ("account.password_changed", "Password changed"),
    ("account.password_set", "Password set"),
    ("org.import_staged", "File staged for bulk registration"),
    ("org.import_committed", "Bulk registration committed"),
    ("org.import_discarded", "Staged file discarded"),
    ("org.access_requested", "Asked to join"),
    ("org.access_approved", "Request to join approved"),
    ("org.access_rejected", "Request to join rejected"),
    ("org.domain_claimed", "Domain claimed"),
    ("org.domain_verified", "Domain verified"),
    ("org.domain_unverified", "Domain no longer verified"),
    ("org.domain_removed", "Domain removed"),
    ("org.auto_approval_changed", "Auto Approval switched"),
    ("org.scim_token_created", "SCIM token created"),
    ("org.scim_token_revoked", "SCIM token revoked"),
    ("org.group_created", "SCIM group created"),
    ("org.group_updated", "SCIM group changed"),
    ("org.group_mapped", "SCIM group mapped to a role"),
    ("org.group_deleted", "SCIM group deleted"),
    ("org.created", "Organization created"),
];

#[derive(Deserialize, Default)]
pub struct AuditFilter {
    /// Part of who did it: an email address, a domain, "scim".
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    /// Everything done to one person: their account id.
    #[serde(default)]
    target: Option<Uuid>,
    /// `YYYY-MM-DD`, UTC.
    #[serde(default)]
    from: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    before: Option<Uuid>,
}

/// Midnight UTC at the start of `YYYY-MM-DD`, in Unix milliseconds; `None` when empty.
fn day_start(field: &str, raw: &str) -> Result<Option<i64>, ApiError> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(raw.trim(), &format)
        .map(|d| Some(d.midnight().assume_utc().unix_timestamp() * 1000))
        .map_err(|_| ApiError::field(field, "invalid_date", "Give a date as YYYY-MM-DD."))
}

/// One line of "what changed": a field, and its value before and after (or just a value).
struct Change {
    field: String,
    before: Option<String>,
    after: String,
}

struct EventRow {
    at: String,
    actor: String,
    ip: String,
    action: String,
    target: String,
    target_href: Option<String>,
    changes: Vec<Change>,
}

struct ActionOption {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

#[derive(Template)]
#[template(path = "pages/org_audit.html")]
struct AuditLogPage {
    chrome: Chrome,
    org_id: Uuid,
    actor: String,
    from: String,
    until: String,
    actions: Vec<ActionOption>,
    /// "Bob Birch (bob@acme.example)" when the log shows what was done to one person.
    target: Option<(Uuid, String)>,
    events: Vec<EventRow>,
    csv_href: String,
    older: Option<String>,
    newest: Option<String>,
    notice: Option<String>,
    errors: Vec<(String, String)>,
    form_error: Option<FormError>,
}

/// A stored value as words: role names as their labels, lists joined, true as yes.
fn words(field: &str, value: &Value) -> String {
    match value {
        Value::Null => "—".to_owned(),
        Value::Bool(true) => "yes".to_owned(),
        Value::Bool(false) => "no".to_owned(),
        Value::String(s) if field == "roles" || field.ends_with("role") => {
            Role::parse(s).map(Role::label).unwrap_or(s).to_owned()
        }
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let names: Vec<String> = items.iter().map(|i| words(field, i)).collect();
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        }
        other => other.to_string(),
    }
}

fn field_words(field: &str) -> String {
    field.replace('_', " ")
}

/// An event's details as changes: `before` and `after` compared field by field (only
/// what changed), else each detail as a value.
fn changes(action: &str, details: &Value) -> Vec<Change> {
    match (details.get("before"), details.get("after")) {
        (Some(Value::Object(before)), Some(Value::Object(after))) => after
            .iter()
            .filter(|(field, value)| before.get(*field) != Some(*value))
            .map(|(field, value)| Change {
                field: field_words(field),
                before: before.get(field).map(|b| words(field, b)),
                after: words(field, value),
            })
            .collect(),
        (Some(before), Some(after)) => {
            let field = if action == "org.roles_changed" {
                "roles"
            } else {
                "value"
            };
            vec![Change {
                field: field.to_owned(),
                before: Some(words(field, before)),
                after: words(field, after),
            }]
        }
        _ => match details {
            Value::Object(map) => map
                .iter()
                .map(|(field, value)| Change {
                    field: field_words(field),
                    before: None,
                    after: words(field, value),
                })
                .collect(),
            _ => Vec::new(),
        },
    }
}

/// The organization's SCIM tokens by id, to name them where the log says "scim token <id>".
async fn token_names(state: &AppState, org_id: Uuid) -> Result<Vec<(String, String)>, DbError> {
    let mut conn = state.db.reader().await?;
    let rows: Vec<(Uuid, String)> = on_db!(&mut conn, |c| sqlx::query_as(
        "SELECT id, name FROM scim_tokens WHERE org_id = $1"
    )
    .bind(org_id)
    .fetch_all(c)
    .await)?;
    Ok(rows
        .into_iter()
        .map(|(id, name)| (format!("scim token {id}"), format!("SCIM token “{name}”")))
        .collect())
}

fn event_row(org_id: Uuid, event: AuditEvent, tokens: &[(String, String)]) -> EventRow {
    let actor = event.actor.unwrap_or_else(|| "system".to_owned());
    let actor = tokens
        .iter()
        .find(|(label, _)| *label == actor)
        .map(|(_, name)| name.clone())
        .unwrap_or(actor);
    let target_href = (event.target_type == "account")
        .then_some(event.target_id)
        .flatten()
        .map(|id| format!("/orgs/{org_id}/audit?target={id}"));
    EventRow {
        at: date(event.at),
        actor,
        ip: event.ip.unwrap_or_default(),
        changes: changes(&event.action, &event.details),
        action: super::members::action_words(&event.action),
        target: event.target.unwrap_or(event.target_type),
        target_href,
    }
}

pub async fn audit_log(
    State(state): State<AppState>,
    page: Page,
    Path(org_id): Path<Uuid>,
    Query(filter): Query<AuditFilter>,
) -> PageResult {
    let org = org_page!(&state, page, org_id, &format!("/orgs/{org_id}/audit"));
    org.access.require(Action::ViewAudit)?;
    let mut errors = Vec::new();
    let from = day_start("from", &filter.from).unwrap_or_else(|e| {
        errors.push(("from".to_owned(), e.detail()));
        None
    });
    let until = day_start("until", &filter.until).unwrap_or_else(|e| {
        errors.push(("until".to_owned(), e.detail()));
        None
    });
    let text = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
    let action = text(&filter.action).filter(|a| ACTION_NAMES.iter().any(|(code, _)| code == a));
    let query = AuditQuery {
        actor_contains: text(&filter.actor),
        action: action.clone(),
        target_id: filter.target,
        from,
        // The whole of the "until" day.
        until: until.map(|ms| ms + 86_400_000),
        before: filter.before,
        limit: Some(50),
        ..AuditQuery::default()
    };
    let target = match filter.target {
        Some(id) => match members::get(&state, &org.current.account, org_id, id).await {
            Ok((m, _)) => Some((
                id,
                format!("{} {} ({})", m.first_name, m.last_name, m.email),
            )),
            // Someone no longer a member: the events still name them.
            Err(ApiError::NotFound) => Some((id, "a former member".to_owned())),
            Err(error) => return Err(error.into()),
        },
        None => None,
    };
    let mut conn = state.db.reader().await?;
    let found = audit::page(&mut conn, &query, Some(org_id)).await?;
    drop(conn);
    let tokens = token_names(&state, org_id).await?;
    let chrome = org.chrome(&state, "audit").await?;
    let params = |before: Option<Uuid>| {
        let mut params = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("actor", filter.actor.as_str()),
            ("action", action.as_deref().unwrap_or("")),
            ("from", &filter.from),
            ("until", &filter.until),
        ] {
            if !value.trim().is_empty() {
                params.append_pair(name, value.trim());
            }
        }
        if let Some(target) = filter.target {
            params.append_pair("target", &target.to_string());
        }
        if let Some(before) = before {
            params.append_pair("before", &before.to_string());
        }
        params.finish()
    };
    let mut csv = url::form_urlencoded::Serializer::new(String::new());
    if let Some(actor) = &query.actor_contains {
        csv.append_pair("actor_contains", actor);
    }
    if let Some(action) = &query.action {
        csv.append_pair("action", action);
    }
    if let Some(target) = query.target_id {
        csv.append_pair("target_id", &target.to_string());
    }
    for (name, value) in [("from", query.from), ("until", query.until)] {
        if let Some(value) = value {
            csv.append_pair(name, &value.to_string());
        }
    }
    let template = AuditLogPage {
        chrome,
        org_id,
        actions: ACTION_NAMES
            .iter()
            .map(|(value, label)| ActionOption {
                value,
                label,
                selected: action.as_deref() == Some(*value),
            })
            .collect(),
        target,
        events: found
            .events
            .into_iter()
            .map(|e| event_row(org_id, e, &tokens))
            .collect(),
        csv_href: format!("/api/v1/orgs/{org_id}/audit.csv?{}", csv.finish()),
        older: found
            .next_before
            .map(|before| format!("/orgs/{org_id}/audit?{}", params(Some(before)))),
        newest: filter
            .before
            .map(|_| format!("/orgs/{org_id}/audit?{}", params(None))),
        notice: None,
        errors,
        form_error: None,
        actor: filter.actor,
        from: filter.from,
        until: filter.until,
    };
    Ok(org.respond(&template))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dates_are_whole_utc_days() {
        assert!(matches!(day_start("from", " "), Ok(None)));
        assert_eq!(day_start("from", "1970-01-02").ok(), Some(Some(86_400_000)));
        assert!(day_start("from", "02/01/1970").is_err());
        assert!(day_start("from", "2026-02-30").is_err());
    }

    #[test]
    fn details_read_as_changes() {
        let edited = json!({
            "before": {"first_name": "Bob", "last_name": "Birch, Jr.", "disabled": false},
            "after": {"first_name": "Bob", "last_name": "Birch", "disabled": true}
        });
        let lines: Vec<(String, Option<String>, String)> = changes("org.member_updated", &edited)
            .into_iter()
            .map(|c| (c.field, c.before, c.after))
            .collect();
        assert_eq!(
            lines,
            vec![
                ("disabled".into(), Some("no".into()), "yes".into()),
                (
                    "last name".into(),
                    Some("Birch, Jr.".into()),
                    "Birch".into()
                ),
            ]
        );
        let roles = json!({"before": ["user"], "after": ["co_administrator", "usage_reports"]});
        let line = &changes("org.roles_changed", &roles)[0];
        assert_eq!(line.before.as_deref(), Some("User"));
        assert_eq!(line.after, "Co-Administrator, Usage Reports");
        let staged = changes("org.import_staged", &json!({"rows": 6}));
        assert_eq!(
            (staged[0].field.as_str(), staged[0].after.as_str()),
            ("rows", "6")
        );
        assert!(ACTION_NAMES
            .iter()
            .all(|(code, words)| code.contains('.') && !words.is_empty()));
    }
}
