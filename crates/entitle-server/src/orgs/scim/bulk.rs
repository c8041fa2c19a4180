//! SCIM `/Bulk` (RFC 7644 §3.7): up to 1,000 operations on Users and Groups in one
//! request, each applied under the same rules as on its own, with `bulkId` references to
//! resources created earlier in the request and `failOnErrors`.

use std::collections::HashMap;

use axum::http::StatusCode;
use serde_json::{json, Value as Json};

use super::{groups, provisioning, query::ListQuery, ScimClient, ScimError};
use crate::app::{AppState, Client};

pub const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
pub const BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";
/// The most operations one request may carry (advertised in ServiceProviderConfig).
pub const MAX_OPERATIONS: usize = 1000;
/// The largest bulk request body (advertised too).
pub const MAX_PAYLOAD_BYTES: usize = 4 * 1024 * 1024;

fn bad(detail: impl Into<String>) -> ScimError {
    ScimError::new(StatusCode::BAD_REQUEST, Some("invalidSyntax"), detail)
}

/// `bulkId:x` replaced by the id the operation that carried `bulkId` x created.
fn resolve(text: &str, created: &HashMap<String, String>) -> Result<String, ScimError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("bulkId:") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "bulkId:".len()..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(after.len());
        let key = &after[..end];
        let id = created.get(key).ok_or_else(|| {
            ScimError::new(
                StatusCode::CONFLICT,
                Some("invalidValue"),
                format!("bulkId {key} names nothing created earlier in this request."),
            )
        })?;
        out.push_str(id);
        rest = &after[end..];
    }
    out.push_str(rest);
    Ok(out)
}

/// What an operation's path names.
#[derive(Debug, PartialEq)]
enum Target<'a> {
    Users,
    User(&'a str),
    Groups,
    Group(&'a str),
}

fn target(path: &str) -> Option<Target<'_>> {
    let one = |prefix: &str| {
        path.strip_prefix(prefix)
            .filter(|id| !id.is_empty() && !id.contains('/'))
    };
    match path {
        "/Users" => Some(Target::Users),
        "/Groups" => Some(Target::Groups),
        _ => one("/Users/")
            .map(Target::User)
            .or_else(|| one("/Groups/").map(Target::Group)),
    }
}

/// One operation's outcome in the response.
fn outcome(
    method: &str,
    bulk_id: Option<&str>,
    location: Option<String>,
    status: StatusCode,
    error: Option<&ScimError>,
) -> Json {
    let mut result = json!({ "method": method, "status": status.as_u16().to_string() });
    if let Some(bulk_id) = bulk_id {
        result["bulkId"] = json!(bulk_id);
    }
    if let Some(location) = location {
        result["location"] = json!(location);
    }
    if let Some(error) = error {
        let mut response = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
            "status": error.status.as_u16().to_string(),
            "detail": error.detail,
        });
        if let Some(scim_type) = error.scim_type {
            response["scimType"] = json!(scim_type);
        }
        result["response"] = response;
    }
    result
}

/// Runs the request's operations in order; each commits on its own.
pub async fn run(
    state: &AppState,
    client: &ScimClient,
    from: &Client,
    body: &Json,
) -> Result<Json, ScimError> {
    super::check_schemas(body, BULK_REQUEST)?;
    let operations = body["Operations"]
        .as_array()
        .ok_or_else(|| bad("Operations must be a list."))?;
    if operations.len() > MAX_OPERATIONS {
        return Err(ScimError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("tooMany"),
            format!(
                "{} operations; at most {MAX_OPERATIONS} are accepted at once. Split the request.",
                operations.len()
            ),
        ));
    }
    let fail_on_errors = match &body["failOnErrors"] {
        Json::Null => None,
        value => Some(
            value
                .as_u64()
                .filter(|n| *n >= 1)
                .ok_or_else(|| bad("failOnErrors is a whole number of 1 or more."))?,
        ),
    };
    let base = state.config.public_base();
    let mut created: HashMap<String, String> = HashMap::new();
    let mut results = Vec::with_capacity(operations.len());
    let mut errors = 0u64;
    for operation in operations {
        let method = operation["method"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let bulk_id = operation["bulkId"].as_str();
        let version = operation["version"].as_str();
        let applied: Result<(StatusCode, Option<String>), ScimError> = async {
            let path = resolve(operation["path"].as_str().unwrap_or_default(), &created)?;
            let data = || -> Result<Json, ScimError> {
                let text = resolve(&operation["data"].to_string(), &created)?;
                serde_json::from_str(&text).map_err(|e| bad(format!("data: {e}")))
            };
            let target = target(&path);
            let location = |kind: &str, id: &str| Some(format!("{base}/scim/v2/{kind}/{id}"));
            match (method.as_str(), target) {
                ("POST", Some(kind @ (Target::Users | Target::Groups))) => {
                    let bulk_id = bulk_id.ok_or_else(|| bad("A POST needs a bulkId."))?;
                    let (created_resource, kind) = if kind == Target::Users {
                        (provisioning::create(state, client, from, &data()?).await?, "Users")
                    } else {
                        (groups::create(state, client, from, &data()?).await?, "Groups")
                    };
                    let id = created_resource["id"].as_str().unwrap_or_default().to_owned();
                    created.insert(bulk_id.to_owned(), id.clone());
                    Ok((StatusCode::CREATED, location(kind, &id)))
                }
                ("PUT", Some(Target::User(id))) => {
                    provisioning::replace(state, client, from, id, version, &data()?).await?;
                    Ok((StatusCode::OK, location("Users", id)))
                }
                ("PATCH", Some(Target::User(id))) => {
                    provisioning::patch(state, client, from, id, version, &data()?).await?;
                    Ok((StatusCode::OK, location("Users", id)))
                }
                ("DELETE", Some(Target::User(id))) => {
                    provisioning::delete(state, client, from, id, version).await?;
                    Ok((StatusCode::NO_CONTENT, location("Users", id)))
                }
                ("PUT", Some(Target::Group(id))) => {
                    groups::replace(state, client, from, id, version, &data()?).await?;
                    Ok((StatusCode::OK, location("Groups", id)))
                }
                ("PATCH", Some(Target::Group(id))) => {
                    let query = ListQuery::default();
                    groups::patch(state, client, from, id, version, &data()?, &query).await?;
                    Ok((StatusCode::NO_CONTENT, location("Groups", id)))
                }
                ("DELETE", Some(Target::Group(id))) => {
                    groups::delete(state, client, from, id, version).await?;
                    Ok((StatusCode::NO_CONTENT, location("Groups", id)))
                }
                _ => Err(bad(format!(
                    "\"{method} {path}\" is not an operation here: POST /Users or /Groups, or PUT, PATCH or DELETE /Users/{{id}} or /Groups/{{id}}."
                ))),
            }
        }
        .await;
        match applied {
            Ok((status, location)) => {
                results.push(outcome(&method, bulk_id, location, status, None))
            }
            Err(error) => {
                errors += 1;
                results.push(outcome(&method, bulk_id, None, error.status, Some(&error)));
                if fail_on_errors.is_some_and(|limit| errors >= limit) {
                    break;
                }
            }
        }
    }
    Ok(json!({ "schemas": [BULK_RESPONSE], "Operations": results }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_ids_are_replaced_by_the_ids_they_created() {
        let created = HashMap::from([("ann".to_owned(), "01a2".to_owned())]);
        assert_eq!(
            resolve("/Users/bulkId:ann", &created).ok().as_deref(),
            Some("/Users/01a2")
        );
        assert_eq!(
            resolve(r#"{"members":[{"value":"bulkId:ann"}]}"#, &created)
                .ok()
                .as_deref(),
            Some(r#"{"members":[{"value":"01a2"}]}"#)
        );
        assert_eq!(resolve("/Users", &created).ok().as_deref(), Some("/Users"));
        assert_eq!(
            resolve("/Users/bulkId:bob", &created)
                .expect_err("unknown")
                .status,
            StatusCode::CONFLICT
        );
        assert_eq!(target("/Groups/x"), Some(Target::Group("x")));
        assert_eq!(target("/Users"), Some(Target::Users));
        assert_eq!(target("/Users/"), None);
        assert_eq!(target("/Users/a/b"), None);
        assert_eq!(target("/Roles"), None);
    }
}
