//! Authorizing a request against the organization it touches: outsiders get 404 (the
//! organization's existence is not revealed), members without the right get 403.

use uuid::Uuid;

use super::{
    roles::{self, Action, Role},
    store,
};
use crate::{
    db::Executor,
    error::{ApiError, ApiResult},
    identity::store::AccountRow,
};

/// The rights of a SCIM token: an Administrator's (docs/permissions.md).
pub const SCIM_TOKEN_ROLES: &[Role] = &[Role::Administrator];

/// Who is acting in an organization, and with which roles.
#[derive(Debug, Clone)]
pub struct OrgAccess {
    pub org: store::OrgRow,
    pub operator: bool,
    pub roles: Vec<Role>,
}

impl OrgAccess {
    /// The caller's standing in `org_id`: 404 unless they are a member or an operator.
    pub async fn of(
        ex: &mut impl Executor,
        caller: &AccountRow,
        org_id: Uuid,
    ) -> ApiResult<OrgAccess> {
        let org = store::org_by_id(ex, org_id)
            .await?
            .ok_or(ApiError::NotFound)?;
        // A disabled member is treated as an outsider.
        let member = store::membership(ex, org_id, caller.id).await? == Some(false);
        if !member && !caller.is_operator {
            return Err(ApiError::NotFound);
        }
        let roles = if member {
            store::roles_of(ex, org_id, caller.id)
                .await?
                .iter()
                .filter_map(|r| Role::parse(r))
                .collect()
        } else {
            Vec::new()
        };
        Ok(OrgAccess {
            org,
            operator: caller.is_operator,
            roles,
        })
    }

    /// A SCIM token's standing in its organization: an Administrator's rights, so that
    /// provisioning goes through the same rules as the API and the pages.
    pub async fn of_scim_token(ex: &mut impl Executor, org_id: Uuid) -> ApiResult<OrgAccess> {
        let org = store::org_by_id(ex, org_id)
            .await?
            .ok_or(ApiError::Unauthenticated)?;
        Ok(OrgAccess {
            org,
            operator: false,
            roles: SCIM_TOKEN_ROLES.to_vec(),
        })
    }

    /// The roles whose rights this caller acts with; an operator acts as a Fulfillment
    /// Contact would.
    pub fn rights(&self) -> &[Role] {
        if self.operator {
            &[Role::FulfillmentContact]
        } else {
            &self.roles
        }
    }

    pub fn may(&self, action: Action) -> bool {
        self.operator || roles::permits(&self.roles, action)
    }

    /// 403, naming who may, unless the caller may do `action`.
    pub fn require(&self, action: Action) -> ApiResult<()> {
        if self.may(action) {
            return Ok(());
        }
        Err(ApiError::forbidden("role_required", who_may(action)))
    }

    /// 403 unless the caller may change a member holding `target` roles.
    pub fn require_over(&self, target: &[Role]) -> ApiResult<()> {
        if self.operator || roles::may_change(&self.roles, target) {
            return Ok(());
        }
        Err(ApiError::forbidden(
            "role_required",
            "You cannot change a member whose role is above yours.",
        ))
    }
}

/// The sentence a 403 answers with.
fn who_may(action: Action) -> String {
    if action == Action::CheckOutLicenses {
        return "Only an Administrator, a Fulfillment Contact or a member with the License Checkout role may check licenses out and in.".to_owned();
    }
    let by = |min: Role| match min {
        Role::FulfillmentContact => "a Fulfillment Contact",
        Role::Administrator => "an Administrator or a Fulfillment Contact",
        _ => "an Administrator, a Co-Administrator or a Fulfillment Contact",
    };
    let lowest = [
        Role::CoAdministrator,
        Role::Administrator,
        Role::FulfillmentContact,
    ]
    .into_iter()
    .find(|r| roles::permits(&[*r], action))
    .unwrap_or(Role::FulfillmentContact);
    let what = match action {
        Action::ViewOrg => "see this organization".to_owned(),
        Action::ListUsers => "see the members".to_owned(),
        Action::ManageUsers => "manage members".to_owned(),
        Action::AssignRole(role) => format!("give or take away the role {}", role.label()),
        Action::ManageDomains => "manage domains".to_owned(),
        Action::ToggleAutoApproval => "switch Auto Approval".to_owned(),
        Action::DecideAccessRequests => "decide access requests".to_owned(),
        Action::ViewAudit => "read the audit log".to_owned(),
        Action::ManageScimTokens => "manage SCIM tokens".to_owned(),
        Action::CheckOutLicenses => "check licenses out and in".to_owned(),
        Action::ViewSubscriptions => "see the subscriptions and seats".to_owned(),
    };
    format!("Only {} may {what}.", by(lowest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_who_may() {
        assert_eq!(
            who_may(Action::AssignRole(Role::Administrator)),
            "Only an Administrator or a Fulfillment Contact may give or take away the role Administrator."
        );
        assert_eq!(
            who_may(Action::ListUsers),
            "Only an Administrator, a Co-Administrator or a Fulfillment Contact may see the members."
        );
        assert_eq!(
            who_may(Action::AssignRole(Role::FulfillmentContact)),
            "Only a Fulfillment Contact may give or take away the role Fulfillment Contact."
        );
    }
}
