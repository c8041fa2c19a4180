//! What the SCIM server says about itself (RFC 7644 §4, RFC 7643 §5–7): the features it
//! has, its resource types and their schemas. Only what is implemented is advertised.

use serde_json::{json, Value as Json};

use super::{
    groups::GROUP_SCHEMA,
    query::{LIST_SCHEMA, MAX_COUNT},
    users::USER_SCHEMA,
};

pub const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
pub const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
pub const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

pub fn service_provider_config(base: &str) -> Json {
    json!({
        "schemas": [SPC_SCHEMA],
        "patch": {"supported": true},
        "bulk": {
            "supported": true,
            "maxOperations": super::bulk::MAX_OPERATIONS,
            "maxPayloadSize": super::bulk::MAX_PAYLOAD_BYTES,
        },
        "filter": {"supported": true, "maxResults": MAX_COUNT},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "SCIM token",
            "description": "A bearer token an administrator of the organization creates in entitle.",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base}/scim/v2/ServiceProviderConfig"),
        },
    })
}

pub fn resource_types(base: &str) -> Vec<Json> {
    vec![
        json!({
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": "User",
            "name": "User",
            "endpoint": "/Users",
            "description": "A member of the organization",
            "schema": USER_SCHEMA,
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/scim/v2/ResourceTypes/User")},
        }),
        json!({
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": "Group",
            "name": "Group",
            "endpoint": "/Groups",
            "description": "A group of the organization's members; mapped to a role, its members hold that role",
            "schema": GROUP_SCHEMA,
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/scim/v2/ResourceTypes/Group")},
        }),
    ]
}

#[allow(clippy::too_many_arguments)]
fn attribute(
    name: &str,
    kind: &str,
    multi_valued: bool,
    required: bool,
    case_exact: bool,
    mutability: &str,
    uniqueness: &str,
    description: &str,
) -> Json {
    json!({
        "name": name,
        "type": kind,
        "multiValued": multi_valued,
        "description": description,
        "required": required,
        "caseExact": case_exact,
        "mutability": mutability,
        "returned": "default",
        "uniqueness": uniqueness,
    })
}

fn complex(
    name: &str,
    multi_valued: bool,
    mutability: &str,
    description: &str,
    sub: Vec<Json>,
) -> Json {
    let mut attribute = attribute(
        name,
        "complex",
        multi_valued,
        false,
        false,
        mutability,
        "none",
        description,
    );
    attribute["subAttributes"] = Json::Array(sub);
    attribute
}

/// entitle needs a name and an email address for every person it invites.
fn required(mut attribute: Json) -> Json {
    attribute["required"] = json!(true);
    attribute
}

pub fn schemas(base: &str) -> Vec<Json> {
    let string = |name: &str, required: bool, mutability: &str, description: &str| {
        attribute(
            name,
            "string",
            false,
            required,
            false,
            mutability,
            "none",
            description,
        )
    };
    vec![
        json!({
            "schemas": [SCHEMA_SCHEMA],
            "id": USER_SCHEMA,
            "name": "User",
            "description": "A member of the organization",
            "attributes": [
                attribute("userName", "string", false, true, false, "readWrite", "server",
                    "Unique in the organization; the email address unless the identity provider sends another."),
                required(complex("name", false, "readWrite", "The person's name", vec![
                    string("givenName", true, "readWrite", "First name"),
                    string("familyName", true, "readWrite", "Last name"),
                ])),
                string("displayName", false, "readOnly", "First and last name"),
                required(complex("emails", true, "readWrite",
                    "The person's email address, which they sign in with; changeable only in their home organization", vec![
                    string("value", true, "readWrite", "The address"),
                ])),
                attribute("active", "boolean", false, true, false, "readWrite", "none",
                    "False disables the member (and, in their home organization, their account)."),
                complex("groups", true, "readOnly", "The groups the person is in; change them through /Groups", vec![
                    string("value", false, "readOnly", "The group's id"),
                    reference("$ref", "readOnly", "Group", "The group"),
                    string("display", false, "readOnly", "The group's displayName"),
                    string("type", false, "readOnly", "Always direct"),
                ]),
                complex("roles", true, "readOnly",
                    "The person's roles in the organization: given in entitle, or by a group mapped to a role", vec![
                    string("value", false, "readOnly", "The role, such as co_administrator"),
                    string("display", false, "readOnly", "The role's name"),
                ]),
            ],
            "meta": {"resourceType": "Schema", "location": format!("{base}/scim/v2/Schemas/{USER_SCHEMA}")},
        }),
        json!({
            "schemas": [SCHEMA_SCHEMA],
            "id": GROUP_SCHEMA,
            "name": "Group",
            "description": "A group of the organization's members",
            "attributes": [
                attribute("displayName", "string", false, true, false, "readWrite", "server",
                    "Unique in the organization. A group named after a role is mapped to it when created."),
                complex("members", true, "readWrite", "The users in the group", vec![
                    attribute("value", "string", false, false, true, "immutable", "none", "The user's id"),
                    reference("$ref", "immutable", "User", "The user"),
                    {
                        let mut kind = string("type", false, "immutable", "Always User: groups do not nest");
                        kind["canonicalValues"] = json!(["User"]);
                        kind
                    },
                ]),
            ],
            "meta": {"resourceType": "Schema", "location": format!("{base}/scim/v2/Schemas/{GROUP_SCHEMA}")},
        }),
    ]
}

fn reference(name: &str, mutability: &str, to: &str, description: &str) -> Json {
    let mut reference = attribute(
        name,
        "reference",
        false,
        false,
        false,
        mutability,
        "none",
        description,
    );
    reference["referenceTypes"] = json!([to]);
    reference
}

/// A list response of every item (discovery lists are small and unfiltered).
pub fn list(resources: Vec<Json>) -> Json {
    json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": resources.len(),
        "startIndex": 1,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}
