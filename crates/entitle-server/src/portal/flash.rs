//! The notice a page shows after an action that redirected to it ("Removed Bob Birch
//! (bob@acme.example) from Acme."). It travels in a short-lived cookie signed with the
//! server's key and bound to the session, so a link or another site cannot put words
//! on the page.

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

pub const NOTICE_COOKIE: &str = "entitle_notice";
/// Longer notices are cut: a cookie stays small.
const MAX_CHARS: usize = 600;

fn mac(state: &AppState, jar: &CookieJar, encoded: &str) -> Option<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(&state.csrf_key).ok()?;
    mac.update(b"notice|");
    mac.update(
        jar.get(SESSION_COOKIE)
            .map(|c| c.value())
            .unwrap_or("")
            .as_bytes(),
    );
    mac.update(b"|");
    mac.update(encoded.as_bytes());
    Some(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

/// What the next page says: that an action succeeded (green), or what it could not do
/// (yellow).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flash {
    Notice(String),
    Warning(String),
}

/// `jar` with `text` to be shown by the next page rendered.
pub fn with_notice(state: &AppState, jar: CookieJar, text: &str) -> CookieJar {
    with_flash(state, jar, &Flash::Notice(text.to_owned()))
}

pub fn with_flash(state: &AppState, jar: CookieJar, flash: &Flash) -> CookieJar {
    let (tone, text) = match flash {
        Flash::Notice(text) => ('n', text),
        Flash::Warning(text) => ('w', text),
    };
    let text: String = std::iter::once(tone)
        .chain(text.chars().take(MAX_CHARS))
        .collect();
    let encoded = URL_SAFE_NO_PAD.encode(text.as_bytes());
    let Some(signature) = mac(state, &jar, &encoded) else {
        return jar;
    };
    jar.add(
        Cookie::build((NOTICE_COOKIE, format!("{encoded}.{signature}")))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .max_age(time::Duration::minutes(5))
            .build(),
    )
}

/// The notice waiting in `jar`, if it carries one signed for this session.
pub fn waiting(state: &AppState, jar: &CookieJar) -> Option<Flash> {
    let value = jar.get(NOTICE_COOKIE)?.value().to_owned();
    let (encoded, signature) = value.split_once('.')?;
    let expected = mac(state, jar, encoded)?;
    if !tokens::constant_time_eq(expected.as_bytes(), signature.as_bytes()) {
        return None;
    }
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).ok()?).ok()?;
    let mut chars = text.chars();
    match chars.next()? {
        'n' => Some(Flash::Notice(chars.collect())),
        'w' => Some(Flash::Warning(chars.collect())),
        _ => None,
    }
}

/// `jar` without the notice: it has been shown.
pub fn shown(jar: CookieJar) -> CookieJar {
    if jar.get(NOTICE_COOKIE).is_some() {
        jar.remove(Cookie::build(NOTICE_COOKIE).path("/"))
    } else {
        jar
    }
}
