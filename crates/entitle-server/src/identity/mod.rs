//! Identity: accounts, passwords, email verification, recovery, sessions, Terms of
//! Service and the audit of it all.

pub mod api;
pub mod bootstrap;
pub mod countries;
pub mod email_change;
pub mod flows;
pub mod hooks;
pub mod password;
pub mod person;
pub mod session;
pub mod store;
pub mod throttle;
pub mod tokens;
