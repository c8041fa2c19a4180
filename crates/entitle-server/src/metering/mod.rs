//! Usage metering: the events entitlements record (leases, reserved use, denials) folded
//! into per-interval usage, and the rules that turn it into a bill — daily peaks against
//! seats owned, overage, forgiveness and term-license lines. The rules are pure functions
//! in `rules`, written out with worked examples in `docs/metering.md`.

pub mod fold;
pub mod rules;
pub mod terms;
