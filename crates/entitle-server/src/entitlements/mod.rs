//! Entitlements: products, subscriptions and the license keys; leases, reserved
//! checkouts and revocations build on them. Handlers are in `api`; the rules are plain
//! functions in `catalog` and `keys`.

pub mod api;
pub mod bulk_api;
pub mod bulk_checkouts;
pub mod catalog;
pub mod checkouts;
pub mod keys;
pub mod lease_writer;
pub mod leases;
pub mod seats;
pub mod usage;
