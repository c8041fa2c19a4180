//! Request bodies as the server reads them: JSON objects of the API's request types,
//! form bodies of the pages, and OAuth form parameters. Anything is read or refused with
//! a problem, never a panic.
#![no_main]

use std::collections::HashMap;

use entitle_proto::{
    AddMemberRequest, ClientRegistration, CreateOrgRequest, NewAccessRequest, SignUpRequest,
    UpdateMemberRequest,
};
use entitle_server::{error::parse_object, oidc::Params};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_object::<SignUpRequest>(data);
    let _ = parse_object::<CreateOrgRequest>(data);
    let _ = parse_object::<AddMemberRequest>(data);
    let _ = parse_object::<UpdateMemberRequest>(data);
    let _ = parse_object::<NewAccessRequest>(data);
    if let Ok(registration) = parse_object::<ClientRegistration>(data) {
        let _ = entitle_server::oidc::clients::check_registration(
            &registration,
            &entitle_server::config::OidcConfig::default(),
        );
    }
    let _ = serde_urlencoded::from_bytes::<HashMap<String, String>>(data);
    let params = Params::parse(data);
    for name in ["grant_type", "client_id", "code", "refresh_token", "scope"] {
        let _ = params.get(name);
    }
});
