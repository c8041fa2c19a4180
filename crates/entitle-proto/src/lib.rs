//! entitle's wire types: what the JSON API accepts and returns.
//!
//! The server and every client share these; they carry no behaviour beyond serde.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// The media type of every error document (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document with entitle's stable machine-readable `code`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Problem {
    /// A URI naming the problem type; `about:blank` style URIs under `urn:entitle:problem:`.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable, machine-readable error code, e.g. `invalid_email` or `tos_required`.
    pub code: String,
    /// The id of the request, also sent as the `x-request-id` header; quote it to support.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Per-field problems for validation errors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct FieldError {
    pub field: String,
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUpRequest {
    #[schema(max_length = 254)]
    pub email: String,
    #[schema(max_length = 256)]
    pub password: String,
    #[schema(max_length = 100)]
    pub first_name: String,
    #[schema(max_length = 100)]
    pub last_name: String,
    /// ISO 3166-1 alpha-2 code, alpha-3 code or English name; stored as alpha-2.
    #[schema(max_length = 80)]
    pub country: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInRequest {
    #[schema(max_length = 254)]
    pub email: String,
    #[schema(max_length = 256)]
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SignInResponse {
    pub account: Account,
    /// Bearer token for programmatic clients; browsers use the session cookie instead.
    pub session_token: String,
    pub expires_at: i64,
    /// True when the current Terms of Service must be accepted before anything else.
    pub tos_required: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailRequest {
    #[schema(max_length = 254)]
    pub email: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmailRequest {
    #[schema(max_length = 43)]
    pub token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordRequest {
    #[schema(max_length = 43)]
    pub token: String,
    /// The user confirms the email address the link was sent to.
    #[schema(max_length = 254)]
    pub email: String,
    #[schema(max_length = 256)]
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    #[schema(max_length = 256)]
    pub current_password: String,
    #[schema(max_length = 256)]
    pub new_password: String,
}

/// A new sign-in address for the signed-in person, with their password. The old address
/// keeps working until the new one is confirmed from the link sent there.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeEmailRequest {
    #[schema(max_length = 254)]
    pub email: String,
    #[schema(max_length = 256)]
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseAccountRequest {
    #[schema(max_length = 256)]
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptTermsRequest {
    #[schema(max_length = 64)]
    pub version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishTermsRequest {
    #[schema(max_length = 64)]
    pub version: String,
    #[schema(max_length = 200)]
    pub title: String,
    #[schema(max_length = 200000)]
    pub body: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Terms {
    pub version: String,
    pub title: String,
    pub body: String,
    pub published_at: i64,
}

/// A generic acknowledgement; identical whatever the outcome where enumeration matters.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Accepted {
    pub message: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    Active,
    Disabled,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Account {
    pub id: Uuid,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub country: String,
    pub status: AccountStatus,
    pub email_verified: bool,
    pub has_password: bool,
    pub is_operator: bool,
    pub home_org_id: Option<Uuid>,
    pub tos_accepted_version: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPerson {
    #[schema(max_length = 254)]
    pub email: String,
    #[schema(max_length = 100)]
    pub first_name: String,
    #[schema(max_length = 100)]
    pub last_name: String,
    #[schema(max_length = 80)]
    pub country: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrgRequest {
    #[schema(max_length = 200)]
    pub name: String,
    pub fulfillment_contact: NewPerson,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Org {
    pub id: Uuid,
    pub name: String,
    pub created_at: i64,
    pub fulfillment_contacts: Vec<Uuid>,
    /// People who verify an email address in one of the organization's verified
    /// domains become Users at once.
    pub auto_approval: bool,
}

/// An organization in a list: the operator's console, or one's own organizations.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct OrgSummary {
    pub id: Uuid,
    pub name: String,
    pub created_at: i64,
    pub member_count: i64,
}

/// A page of organizations.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct OrgList {
    pub orgs: Vec<OrgSummary>,
    /// Organizations matching the search, on every page.
    pub total: i64,
    pub offset: i64,
    pub limit: i64,
}

/// A signing key of the OpenID Connect provider and the license files.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct SigningKey {
    pub kid: String,
    /// `RS256`, `ES256` or `EdDSA`.
    pub alg: String,
    pub created_at: i64,
    /// When it stopped signing; none while it signs.
    pub retired_at: Option<i64>,
    /// Until when a retired key stays published in the JWKS.
    pub publish_until: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct AuditEvent {
    pub id: Uuid,
    pub at: i64,
    pub actor_id: Option<Uuid>,
    pub actor: Option<String>,
    pub ip: Option<String>,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<Uuid>,
    pub target: Option<String>,
    pub org_id: Option<Uuid>,
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    /// Pass as `before` to get the next (older) page; absent on the last page.
    pub next_before: Option<Uuid>,
}

/// Everything entitle holds about the signed-in person.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DataExport {
    pub account: Account,
    pub memberships: Vec<Membership>,
    pub sessions: Vec<SessionSummary>,
    /// Devices and applications signed in as the person (OpenID Connect grants).
    #[serde(default)]
    pub devices: Vec<SignedInDevice>,
    pub audit_events: Vec<AuditEvent>,
    pub exported_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Membership {
    pub org_id: Uuid,
    pub org_name: String,
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct SessionSummary {
    pub id: Uuid,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
}

/// A client registration by an operator (`POST /api/v1/clients`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ClientRegistration {
    #[schema(max_length = 200)]
    pub name: String,
    /// Confidential clients get a secret and may use `client_credentials`.
    #[serde(default)]
    pub confidential: bool,
    #[serde(default)]
    #[schema(max_items = 20)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    #[schema(max_items = 20)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Defaults to `authorization_code` and `refresh_token`.
    #[serde(default)]
    pub grant_types: Vec<String>,
    /// Defaults to `openid profile email offline_access org`.
    #[serde(default)]
    #[schema(max_items = 50)]
    pub scopes: Vec<String>,
    /// The organization a service client acts for (`client_credentials`).
    #[serde(default)]
    pub org_id: Option<Uuid>,
    #[serde(default)]
    pub access_token_ttl_secs: Option<i64>,
    #[serde(default)]
    pub refresh_token_ttl_secs: Option<i64>,
    /// `RS256` (default), `ES256` or `EdDSA`.
    #[serde(default)]
    pub id_token_signed_response_alg: Option<String>,
    /// A confidential client that serves APIs and may introspect (RFC 7662) the tokens of
    /// other clients; any other client introspects only its own tokens.
    #[serde(default)]
    pub resource_server: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OAuthClient {
    pub id: Uuid,
    pub client_id: String,
    pub name: String,
    pub confidential: bool,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub org_id: Option<Uuid>,
    pub access_token_ttl_secs: i64,
    pub refresh_token_ttl_secs: i64,
    pub id_token_signed_response_alg: String,
    pub resource_server: bool,
    pub built_in: bool,
    /// Present only in the answer to the registration: it is never shown again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

/// A client signed in on a person's behalf: a device or application with their tokens.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SignedInDevice {
    pub id: Uuid,
    pub client_id: String,
    pub client_name: String,
    pub scope: String,
    /// Keeps the person signed in (automatic sign-in) until `expires_at`.
    pub automatic_sign_in: bool,
    pub created_at: i64,
    pub last_used_at: i64,
    pub expires_at: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A member of an organization as its administrators see them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct OrgMember {
    pub account_id: Uuid,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub country: String,
    pub roles: Vec<String>,
    /// False while an invited member has not set a password yet.
    pub registered: bool,
    /// A disabled member can do nothing in the organization (nor sign in, when it is
    /// their home organization).
    pub disabled: bool,
    pub joined_at: i64,
    /// A new sign-in address waiting for its owner to confirm it from the link sent there;
    /// until then the person signs in with `email`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_email: Option<String>,
}

/// One member with what their page shows: when they last signed in, their invitation,
/// their SCIM groups and which roles came from a group.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct MemberDetail {
    #[serde(flatten)]
    pub member: OrgMember,
    /// Whether this organization is the person's home (only it edits their details).
    pub home: bool,
    pub last_sign_in_at: Option<i64>,
    /// The last link sent to set a password, while the person has none.
    pub invitation: Option<MemberInvitation>,
    pub groups: Vec<MemberGroup>,
    /// The roles a mapped SCIM group gave; the others were given by hand.
    pub roles_from_groups: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct MemberInvitation {
    pub sent_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct MemberGroup {
    pub id: Uuid,
    pub display_name: String,
    /// The role the group gives its members, if it is mapped to one.
    pub role: Option<String>,
}

/// How many members have each status (`active`, `invited`, `disabled`), each role, and
/// the most common email domains: the member list's filters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct MemberCounts {
    pub total: i64,
    pub statuses: std::collections::BTreeMap<String, i64>,
    pub roles: std::collections::BTreeMap<String, i64>,
    /// At most 20, the largest first.
    pub domains: Vec<DomainCount>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct DomainCount {
    pub domain: String,
    pub members: i64,
}

/// What a bulk action does to each member it names.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BulkMemberAction {
    Disable,
    Enable,
    Remove,
    /// Gives `role`.
    AddRole,
    /// Takes `role` away.
    RemoveRole,
    /// Sends a new invitation to those who have not set a password.
    ResendInvitation,
}

/// One action on many members; each is checked under the same rules as one at a time.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkMemberRequest {
    pub action: BulkMemberAction,
    /// For `add_role` and `remove_role`.
    #[serde(default)]
    pub role: Option<String>,
    /// 1 to 200 members of the organization.
    #[schema(min_items = 1, max_items = 200)]
    pub account_ids: Vec<Uuid>,
}

/// What a bulk action did to each member, and what it refused and why.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct BulkMemberOutcome {
    pub done: Vec<BulkMemberDone>,
    pub refused: Vec<BulkMemberRefusal>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct BulkMemberDone {
    pub account_id: Uuid,
    pub email: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct BulkMemberRefusal {
    pub account_id: Uuid,
    /// Absent when the id is no member of the organization.
    pub email: Option<String>,
    pub name: Option<String>,
    /// The error code one-at-a-time would have answered (`forbidden`, `not_found`,
    /// `last_fulfillment_contact`, `already_registered`, …).
    pub code: String,
    pub reason: String,
}

/// Changes to a member; absent fields stay as they are. Details change only in the
/// person's home organization.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMemberRequest {
    #[schema(max_length = 100)]
    pub first_name: Option<String>,
    #[schema(max_length = 100)]
    pub last_name: Option<String>,
    #[schema(max_length = 80)]
    pub country: Option<String>,
    /// A new sign-in address. A registered person keeps the old one until they confirm
    /// the new one from the link sent there; the old address is told and can cancel.
    #[schema(max_length = 254)]
    pub email: Option<String>,
    pub disabled: Option<bool>,
}

/// One page of members.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MemberPage {
    pub members: Vec<OrgMember>,
    /// Members matching the search, on every page.
    pub total: i64,
    pub offset: i64,
    pub limit: i64,
}

/// Claiming a domain for an organization.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimDomainRequest {
    /// Such as `acme.example` (internationalized names are accepted and stored in their
    /// ASCII form).
    #[schema(max_length = 253)]
    pub domain: String,
}

/// A domain an organization claims, and the DNS record that proves it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct OrgDomain {
    pub id: Uuid,
    pub domain: String,
    /// Publish a TXT record with `record_value` at this name, then verify.
    pub record_name: String,
    pub record_value: String,
    pub created_at: i64,
    /// When the record was found; absent while unverified (or after it disappeared).
    pub verified_at: Option<i64>,
    /// The last time the record was looked up.
    pub checked_at: Option<i64>,
    /// What the last lookup found wrong, if anything.
    pub check_error: Option<String>,
}

/// Switching Auto Approval on or off.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoApprovalRequest {
    pub enabled: bool,
}

/// Asking to join an organization: by its id (an organization with a verified domain
/// of one's email address) or by the email address of one of its administrators.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccessRequest {
    #[serde(default)]
    pub org_id: Option<Uuid>,
    #[serde(default)]
    #[schema(max_length = 254)]
    pub administrator_email: Option<String>,
    /// A few words for the administrators (at most 500 characters).
    #[serde(default)]
    #[schema(max_length = 500)]
    pub message: String,
}

/// An organization a person may ask to join: one with a verified domain of their email.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct JoinableOrg {
    pub id: Uuid,
    pub name: String,
    pub domain: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct AccessRequest {
    pub id: Uuid,
    pub org_id: Uuid,
    pub account_id: Uuid,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub message: String,
    pub created_at: i64,
    /// `pending`, `approved` or `rejected`.
    pub status: String,
    pub decided_at: Option<i64>,
    pub reason: Option<String>,
    /// How the request came: `domain` (the person's address is in a verified domain of
    /// the organization) or `administrator` (they named one of its administrators).
    pub via: String,
    /// The administrator's address they named, when `via` is `administrator`.
    pub named_administrator: Option<String>,
    /// Who decided, by email address.
    pub decided_by: Option<String>,
    /// The roles an approval gave besides User.
    pub roles: Vec<String>,
}

/// Approving or rejecting an access request.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessDecision {
    /// Told to the requester when rejecting.
    #[serde(default)]
    #[schema(max_length = 500)]
    pub reason: Option<String>,
    /// When approving: roles to give besides User, each one the approver may give.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// Something an organization's administrators should do, and where.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct RequiredAction {
    /// `verify_domain`, `enable_auto_approval`, `decide_access_requests` or
    /// `invited_not_registered`.
    pub code: String,
    pub message: String,
    /// The portal page where it is resolved.
    pub href: String,
    /// How many (requests waiting, people invited), where that applies.
    pub count: Option<i64>,
}

/// Creating a SCIM bearer token for an identity provider.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewScimToken {
    /// What it is for, such as "Okta" (1 to 100 characters).
    #[schema(max_length = 100)]
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ScimToken {
    pub id: Uuid,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// The bearer token: returned once, when it is created, and never again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// One of the identity provider's groups, as the organization's administrators see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ScimGroupSummary {
    pub id: Uuid,
    pub display_name: String,
    pub external_id: Option<String>,
    /// The role the group's members hold because they are in it, if it is mapped.
    pub role: Option<String>,
    pub member_count: i64,
}

/// Maps a group to a role, or (null) unmaps it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MapGroupRequest {
    #[schema(max_length = 64)]
    pub role: Option<String>,
}

/// Someone a member can turn to: "How do I find my Administrator?"
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct OrgAdministrator {
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub roles: Vec<String>,
}

/// Adding one person to an organization.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMemberRequest {
    #[schema(max_length = 254)]
    pub email: String,
    #[schema(max_length = 100)]
    pub first_name: String,
    #[schema(max_length = 100)]
    pub last_name: String,
    /// ISO 3166-1 alpha-2 code, or the country's name.
    #[schema(max_length = 80)]
    pub country: String,
    /// Role names; none means `user`.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// The complete set of roles a member is to hold.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRolesRequest {
    pub roles: Vec<String>,
}

/// A staged CSV import and its rows.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImportBatch {
    pub id: Uuid,
    pub org_id: Uuid,
    pub file_name: String,
    pub created_at: i64,
    pub committed_at: Option<i64>,
    /// How the file was read: `utf-8`, or `windows-1252` (what Excel on Windows saves as
    /// plain "CSV").
    pub encoding: String,
    /// Rows by status (`valid`, `invalid`, `duplicate`, `already_member`,
    /// `other_organization`), not counting removed ones; and `removed`.
    pub counts: std::collections::BTreeMap<String, i64>,
    pub rows: Vec<ImportRow>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ImportRow {
    pub number: i64,
    pub line: i64,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// As written in the file.
    pub country: String,
    /// The ISO 3166-1 alpha-2 code the country was read as; none when it is no country.
    pub country_code: Option<String>,
    pub roles: String,
    pub status: String,
    pub details: String,
    pub removed: bool,
    /// What the commit did: `added_and_invited`, `added` (they had an account already),
    /// `not_added` or `removed`; absent until committed.
    pub result: Option<String>,
    /// Values that start like a spreadsheet formula (`=`, `+`, `-`, `@`): kept as typed,
    /// but worth a look.
    #[serde(default)]
    pub warnings: Vec<String>,
}

// ---- Entitlements ----------------------------------------------------------------------

/// A product the vendor sells.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Product {
    pub id: Uuid,
    /// What applications ask for and license files name: 2 to 64 lowercase letters,
    /// digits and dashes.
    pub code: String,
    pub name: String,
    /// The versions offered (informational: a checkout names the version it covers).
    pub versions: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Adding a product.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    #[schema(max_length = 64)]
    pub code: String,
    #[schema(max_length = 200)]
    pub name: String,
    #[serde(default)]
    #[schema(max_items = 100)]
    pub versions: Vec<String>,
}

/// Changes to a product; absent fields stay as they are. The code never changes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductChange {
    #[schema(max_length = 200)]
    pub name: Option<String>,
    #[schema(max_items = 100)]
    pub versions: Option<Vec<String>>,
}

/// What happens when every seat is taken.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OveragePolicy {
    /// Refuse: no more machines than seats, ever.
    Deny,
    /// Grant, and bill the use above the seats as overage.
    Allow,
    /// Grant up to `overage_factor` times the seats, billing the use above the seats.
    AllowUpTo,
}

/// An organization's right to use products: for each product, `seats` machines at once
/// between `starts_at` and `ends_at` (Unix milliseconds).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Subscription {
    pub id: Uuid,
    pub org_id: Uuid,
    pub org_name: String,
    /// Product codes.
    pub products: Vec<String>,
    pub seats: i64,
    pub starts_at: i64,
    pub ends_at: i64,
    /// When an operator ended it early.
    pub ended_at: Option<i64>,
    pub overage: OveragePolicy,
    /// For `allow_up_to`: how many times the seats may be used (1.25).
    pub overage_factor: Option<f64>,
    /// `scheduled`, `active` or `ended`, as of now.
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Adding a subscription.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSubscription {
    pub org_id: Uuid,
    /// Product codes, at least one.
    #[schema(min_items = 1, max_items = 100)]
    pub products: Vec<String>,
    pub seats: i64,
    /// Unix milliseconds; now when absent.
    #[serde(default)]
    pub starts_at: Option<i64>,
    pub ends_at: i64,
    pub overage: OveragePolicy,
    /// Required with `allow_up_to`: more than 1, at most 10 (three decimals).
    #[serde(default)]
    pub overage_factor: Option<f64>,
}

/// Changes to a subscription; absent fields stay as they are.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionChange {
    pub seats: Option<i64>,
    pub starts_at: Option<i64>,
    pub ends_at: Option<i64>,
    #[schema(max_items = 100)]
    pub products: Option<Vec<String>>,
}

/// A product a person may use, through one of their organizations' active subscriptions.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Entitlement {
    pub product: String,
    pub product_name: String,
    pub versions: Vec<String>,
    /// The organization whose subscription it is (who pays).
    pub org_id: Uuid,
    pub org_name: String,
    pub subscription_id: Uuid,
    pub seats: i64,
    pub ends_at: i64,
}

/// Asking for an online lease: what an application runs, where.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    /// The product's code.
    #[schema(max_length = 64)]
    pub product: String,
    /// The version running.
    #[schema(max_length = 50)]
    pub version: String,
    /// A stable id of the machine (such as a hash of its hardware ids): 8 to 128
    /// characters of letters, digits, `-`, `_`, `.` and `:`.
    #[schema(max_length = 128)]
    pub machine_id: String,
    /// The machine's name, for people.
    #[schema(max_length = 200)]
    pub machine_name: String,
    /// A fresh random value; the signed lease echoes it, so a captured answer cannot be
    /// played back (8 to 128 characters).
    #[schema(max_length = 128)]
    pub nonce: String,
}

/// Renewing a lease.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    /// A fresh nonce for the renewed signed lease.
    #[schema(max_length = 128)]
    pub nonce: String,
}

/// An online lease, with the signed lease the application keeps (docs/license-format.md).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Lease {
    pub id: Uuid,
    pub product: String,
    pub version: String,
    pub machine_id: String,
    pub machine_name: String,
    /// The paying organization.
    pub org_id: Uuid,
    pub org_name: String,
    /// Granted above the seats owned, as the overage policy allows: billed as overage.
    pub overage: bool,
    /// Send a heartbeat this often (seconds).
    pub heartbeat_secs: i64,
    /// When the seat lapses without a heartbeat (Unix milliseconds).
    pub expires_at: i64,
    /// When the signed lease stops working offline (Unix milliseconds).
    pub grace_until: i64,
    /// The signed lease, armored.
    pub license: String,
}

/// Checking a license out for a person: a reserved license file for one machine and
/// version, until an expiry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    /// The person's email address: a member, or someone of another organization.
    #[schema(max_length = 254)]
    pub email: String,
    /// The product's code.
    #[schema(max_length = 64)]
    pub product: String,
    /// The version covered: exact, `*`, or a prefix ending in `.*` (`24.*`).
    #[schema(max_length = 50)]
    pub version: String,
    /// The machine the file is for (its name, as the application reports it).
    #[schema(max_length = 200)]
    pub machine_name: String,
    /// Unix milliseconds: at most a year from now and not past the subscription's end.
    pub expires_at: i64,
}

/// A reserved checkout.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Checkout {
    pub id: Uuid,
    /// The organization that checked it out, and pays.
    pub org_id: Uuid,
    pub org_name: String,
    pub product: String,
    pub version: String,
    pub email: String,
    pub account_id: Option<Uuid>,
    pub machine_name: String,
    /// Held above the seats owned, as the overage policy allows.
    pub overage: bool,
    pub created_at: i64,
    pub expires_at: i64,
    pub checked_in_at: Option<i64>,
    /// `reserved` (holding its seat), `checked_in` or `expired`.
    pub status: String,
}

/// A checkout just made, with its license file.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct CheckoutCreated {
    pub checkout: Checkout,
    /// The license file, armored (docs/license-format.md).
    pub license: String,
}

/// A staged bulk checkout file and its rows.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CheckoutBatch {
    pub id: Uuid,
    pub org_id: Uuid,
    pub file_name: String,
    pub created_at: i64,
    pub committed_at: Option<i64>,
    /// How the file was read: `utf-8` or `windows-1252`.
    pub encoding: String,
    /// Rows by status (`valid`, `invalid`, `duplicate`, `not_entitled`, `no_seat`), not
    /// counting removed ones; and `removed`.
    pub counts: std::collections::BTreeMap<String, i64>,
    pub rows: Vec<CheckoutBatchRow>,
}

/// A row of a bulk checkout file: as written, its status, and what committing did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct CheckoutBatchRow {
    pub number: i64,
    pub line: i64,
    pub email: String,
    pub product: String,
    pub version: String,
    pub machine: String,
    /// As written: a date (the license runs through that day, UTC) or an RFC 3339 time.
    pub expires: String,
    /// The expiry as read, in Unix milliseconds, when it is one.
    pub expires_at: Option<i64>,
    pub status: String,
    pub details: String,
    pub removed: bool,
    /// What the commit did: `checked_out`, `removed` or `not_checked_out`.
    pub result: Option<String>,
    pub checkout_id: Option<Uuid>,
    /// Values that start like a spreadsheet formula.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// An organization's seats of one product now: owned, and held by leases and checkouts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ProductSeats {
    pub product: String,
    pub product_name: String,
    /// Seats owned through active subscriptions.
    pub seats: i64,
    /// How many may be held with overage; none when the policy sets no limit.
    pub cap: Option<i64>,
    /// Machines holding a seat through online leases.
    pub leased: i64,
    /// Machines holding a seat through reserved checkouts.
    pub reserved: i64,
    /// Of those, how many are above the seats owned (billed as overage).
    pub overage: i64,
    /// The end of the latest active subscription covering the product.
    pub ends_at: i64,
}
