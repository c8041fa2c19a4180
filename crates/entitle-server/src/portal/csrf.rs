//! CSRF protection for forms: a random cookie, and in each form an HMAC of that cookie
//! and the session cookie under the server's key. A forged form has neither the key
//! nor the victim's HttpOnly cookies.

use axum_extra::extract::{
    cookie::{Cookie, SameSite},
    CookieJar,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{
    app::AppState,
    identity::{session::SESSION_COOKIE, tokens},
};

pub const CSRF_COOKIE: &str = "entitle_csrf";

fn mac(state: &AppState, csrf_cookie: &str, session_cookie: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(&state.csrf_key) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(csrf_cookie.as_bytes());
    mac.update(b"|");
    mac.update(session_cookie.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

fn session_value(jar: &CookieJar) -> String {
    jar.get(SESSION_COOKIE)
        .map(|c| c.value().to_owned())
        .unwrap_or_default()
}

/// The token to put in forms, adding the CSRF cookie to `jar` when it has none.
/// `session_override` is the session cookie being set in the same response, if any.
pub fn token(
    state: &AppState,
    jar: CookieJar,
    session_override: Option<&str>,
) -> (CookieJar, String) {
    let (jar, value) = match jar.get(CSRF_COOKIE).map(|c| c.value().to_owned()) {
        Some(value) if tokens::looks_valid(&value) => (jar, value),
        _ => {
            let value = tokens::issue().secret;
            let cookie = Cookie::build((CSRF_COOKIE, value.clone()))
                .path("/")
                .http_only(true)
                .same_site(SameSite::Lax)
                .build();
            (jar.add(cookie), value)
        }
    };
    let session = session_override
        .map(str::to_owned)
        .unwrap_or_else(|| session_value(&jar));
    let token = mac(state, &value, &session);
    (jar, token)
}

pub fn verify(state: &AppState, jar: &CookieJar, presented: &str) -> bool {
    let Some(cookie) = jar.get(CSRF_COOKIE) else {
        return false;
    };
    let expected = mac(state, cookie.value(), &session_value(jar));
    !presented.is_empty() && tokens::constant_time_eq(expected.as_bytes(), presented.as_bytes())
}
