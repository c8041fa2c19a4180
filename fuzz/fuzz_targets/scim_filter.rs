//! SCIM filters (RFC 7644 §3.4.2.2): any text parses or is refused, and a parsed filter
//! becomes SQL for Users and for Groups or is refused, never a panic.
#![no_main]

use entitle_server::orgs::scim::{filter, groups::Groups, query, users::Users};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = filter::parse(text);
    let _ = query::to_sql::<Users>(text, 2);
    let _ = query::to_sql::<Groups>(text, 2);
    if let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = query::search_query(&body);
    }
});
