//! Roles within an organization, and who may do what: the permission matrix of
//! docs/permissions.md as one function, tested cell by cell.

use std::fmt;

/// A role a member holds in an organization. The first four rank the member's rights;
/// the rest are extra rights applied one by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    FulfillmentContact,
    Administrator,
    CoAdministrator,
    User,
    SoftwareDownloads,
    LicenseCheckout,
    UsageReports,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::FulfillmentContact,
        Role::Administrator,
        Role::CoAdministrator,
        Role::User,
        Role::SoftwareDownloads,
        Role::LicenseCheckout,
        Role::UsageReports,
    ];

    /// The stored and API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::FulfillmentContact => "fulfillment_contact",
            Role::Administrator => "administrator",
            Role::CoAdministrator => "co_administrator",
            Role::User => "user",
            Role::SoftwareDownloads => "software_downloads",
            Role::LicenseCheckout => "license_checkout",
            Role::UsageReports => "usage_reports",
        }
    }

    /// The name people read (and may type in a CSV file).
    pub fn label(self) -> &'static str {
        match self {
            Role::FulfillmentContact => "Fulfillment Contact",
            Role::Administrator => "Administrator",
            Role::CoAdministrator => "Co-Administrator",
            Role::User => "User",
            Role::SoftwareDownloads => "Software Downloads",
            Role::LicenseCheckout => "License Checkout",
            Role::UsageReports => "Usage Reports",
        }
    }

    /// Either form, in any case, with spaces, dashes or underscores.
    pub fn parse(raw: &str) -> Option<Role> {
        let key: String = raw
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '_'))
            .flat_map(char::to_lowercase)
            .collect();
        Role::ALL
            .into_iter()
            .find(|r| r.as_str().replace('_', "") == key)
    }

    /// How far a member's rights reach: 3 for a Fulfillment Contact down to 0 for a User.
    fn rank(self) -> u8 {
        match self {
            Role::FulfillmentContact => 3,
            Role::Administrator => 2,
            Role::CoAdministrator => 1,
            _ => 0,
        }
    }
}

/// Role names as people read them: "Co-Administrator, License Checkout".
pub fn labels(names: &[String]) -> String {
    names
        .iter()
        .map(|n| Role::parse(n).map(Role::label).unwrap_or(n))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The sentence for a name that is no role, quoting at most the start of it.
pub fn unknown_role(name: &str) -> String {
    let shown: String = name.chars().take(40).collect();
    let more = if name.chars().count() > 40 { "…" } else { "" };
    format!(
        "\"{shown}{more}\" is not a role. Use {}.",
        Role::ALL.map(Role::as_str).join(", ")
    )
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something a member may try to do in their organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// See the organization and who its administrators are.
    ViewOrg,
    /// List, search and read the members.
    ListUsers,
    /// Add, edit, disable and remove members, one by one or from a CSV file.
    ManageUsers,
    /// Give or take away a role.
    AssignRole(Role),
    /// Add, verify and remove domains.
    ManageDomains,
    /// Switch Auto Approval on or off.
    ToggleAutoApproval,
    /// Approve or reject requests to join.
    DecideAccessRequests,
    /// Read and export the organization's audit log.
    ViewAudit,
    /// Create and revoke SCIM tokens.
    ManageScimTokens,
    /// Check licenses out for people (reserved license files) and check them in.
    CheckOutLicenses,
    /// See the organization's subscriptions and the seats in use.
    ViewSubscriptions,
}

/// The highest rank among a member's roles.
fn rank(roles: &[Role]) -> u8 {
    roles.iter().map(|r| r.rank()).max().unwrap_or(0)
}

/// Whether a member holding `roles` may do `action` in their organization. Operators
/// (the vendor's staff) are checked before this and may do everything.
pub fn permits(roles: &[Role], action: Action) -> bool {
    let rank = rank(roles);
    match action {
        Action::ViewOrg => true,
        Action::ListUsers
        | Action::ManageUsers
        | Action::DecideAccessRequests
        | Action::ViewAudit => rank >= 1,
        Action::ManageDomains | Action::ToggleAutoApproval | Action::ManageScimTokens => rank >= 2,
        Action::AssignRole(Role::FulfillmentContact) => rank >= 3,
        Action::AssignRole(Role::Administrator) => rank >= 2,
        Action::AssignRole(_) => rank >= 1,
        Action::CheckOutLicenses => rank >= 2 || roles.contains(&Role::LicenseCheckout),
        Action::ViewSubscriptions => {
            rank >= 1
                || roles.contains(&Role::LicenseCheckout)
                || roles.contains(&Role::UsageReports)
        }
    }
}

/// Whether a member holding `actor` may change a member holding `target`: nobody
/// changes someone whose rights reach further than their own.
pub fn may_change(actor: &[Role], target: &[Role]) -> bool {
    rank(actor) >= 1 && rank(actor) >= rank(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Role::*;

    /// The matrix of docs/permissions.md: for each action, whether a Fulfillment
    /// Contact, an Administrator, a Co-Administrator and a User may do it.
    const MATRIX: &[(Action, [bool; 4])] = &[
        (Action::ViewOrg, [true, true, true, true]),
        (Action::ListUsers, [true, true, true, false]),
        (Action::ManageUsers, [true, true, true, false]),
        (
            Action::AssignRole(FulfillmentContact),
            [true, false, false, false],
        ),
        (
            Action::AssignRole(Administrator),
            [true, true, false, false],
        ),
        (
            Action::AssignRole(CoAdministrator),
            [true, true, true, false],
        ),
        (Action::AssignRole(User), [true, true, true, false]),
        (
            Action::AssignRole(SoftwareDownloads),
            [true, true, true, false],
        ),
        (
            Action::AssignRole(LicenseCheckout),
            [true, true, true, false],
        ),
        (Action::AssignRole(UsageReports), [true, true, true, false]),
        (Action::ManageDomains, [true, true, false, false]),
        (Action::ToggleAutoApproval, [true, true, false, false]),
        (Action::DecideAccessRequests, [true, true, true, false]),
        (Action::ViewAudit, [true, true, true, false]),
        (Action::ManageScimTokens, [true, true, false, false]),
        // The User of this matrix holds License Checkout.
        (Action::CheckOutLicenses, [true, true, false, true]),
        (Action::ViewSubscriptions, [true, true, true, true]),
    ];

    #[test]
    fn every_cell_of_the_matrix() {
        let members: [&[Role]; 4] = [
            &[FulfillmentContact],
            &[Administrator],
            &[CoAdministrator],
            &[User, SoftwareDownloads, LicenseCheckout, UsageReports],
        ];
        for (action, expected) in MATRIX {
            for (roles, allowed) in members.iter().zip(expected) {
                assert_eq!(permits(roles, *action), *allowed, "{roles:?} {action:?}");
            }
        }
        assert!(!permits(&[], Action::ListUsers), "no role, no rights");
        assert!(!permits(&[User], Action::ViewSubscriptions));
        assert!(permits(&[User, UsageReports], Action::ViewSubscriptions));
        assert!(
            permits(&[User, Administrator], Action::ManageDomains),
            "the highest role counts"
        );
    }

    #[test]
    fn nobody_changes_a_member_who_outranks_them() {
        assert!(may_change(&[FulfillmentContact], &[Administrator]));
        assert!(may_change(&[Administrator], &[Administrator]));
        assert!(!may_change(&[Administrator], &[FulfillmentContact]));
        assert!(!may_change(&[CoAdministrator], &[Administrator]));
        assert!(may_change(&[CoAdministrator], &[User, LicenseCheckout]));
        assert!(!may_change(&[User], &[User]));
    }

    #[test]
    fn role_names_are_read_forgivingly() {
        assert_eq!(Role::parse("Co-Administrator"), Some(CoAdministrator));
        assert_eq!(Role::parse(" co_administrator "), Some(CoAdministrator));
        assert_eq!(Role::parse("SOFTWARE DOWNLOADS"), Some(SoftwareDownloads));
        assert_eq!(Role::parse("fulfillment contact"), Some(FulfillmentContact));
        assert_eq!(Role::parse("admin"), None);
        assert_eq!(Role::parse(""), None);
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
            assert_eq!(Role::parse(role.label()), Some(role));
        }
    }
}
