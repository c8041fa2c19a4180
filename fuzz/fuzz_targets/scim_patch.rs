//! SCIM resource and PATCH bodies for Users and Groups: any JSON is applied or refused
//! with a SCIM error, never a panic.
#![no_main]

use entitle_server::orgs::scim::{groups, provisioning};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let fields = provisioning::UserFields {
        user_name: "ana@acme.test".to_owned(),
        given_name: "Ana".to_owned(),
        family_name: "Silva".to_owned(),
        active: true,
        external_id: None,
        email: "ana@acme.test".to_owned(),
    };
    let _ = provisioning::apply_patch(fields, &body);
    let _ = provisioning::fields_of(&body);
    let _ = groups::changes_of_patch(&body);
    let _ = groups::fields_of(&body);
});
