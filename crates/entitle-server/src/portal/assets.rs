//! The portal's stylesheet, script and htmx, served from the binary under names that
//! carry a hash of their content, so browsers may keep them for a year and still never
//! run an old copy after an upgrade.

use std::sync::LazyLock;

use axum::{
    extract::Path,
    http::header,
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};

struct Asset {
    path: String,
    content_type: &'static str,
    body: &'static str,
}

impl Asset {
    fn new(stem: &str, extension: &str, content_type: &'static str, body: &'static str) -> Asset {
        let digest = Sha256::digest(body.as_bytes());
        let hash: String = digest[..5].iter().map(|b| format!("{b:02x}")).collect();
        Asset {
            path: format!("/static/{stem}.{hash}.{extension}"),
            content_type,
            body,
        }
    }
}

static ASSETS: LazyLock<[Asset; 3]> = LazyLock::new(|| {
    [
        Asset::new(
            "entitle",
            "css",
            "text/css; charset=utf-8",
            include_str!("../../static/entitle.css"),
        ),
        Asset::new(
            "entitle",
            "js",
            "text/javascript; charset=utf-8",
            include_str!("../../static/entitle.js"),
        ),
        Asset::new(
            "htmx-2.0.11",
            "js",
            "text/javascript; charset=utf-8",
            include_str!("../../static/htmx-2.0.11.min.js"),
        ),
    ]
});

pub fn stylesheet() -> &'static str {
    &ASSETS[0].path
}

pub fn script() -> &'static str {
    &ASSETS[1].path
}

pub fn htmx() -> &'static str {
    &ASSETS[2].path
}

pub async fn serve(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.path["/static/".len()..] == file) {
        Some(asset) => (
            [
                (header::CONTENT_TYPE, asset.content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            asset.body,
        )
            .into_response(),
        None => super::not_found_page(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_content_hash() {
        assert!(stylesheet().starts_with("/static/entitle.") && stylesheet().ends_with(".css"));
        assert_ne!(script(), htmx());
        assert_eq!(stylesheet().len(), "/static/entitle.0123456789.css".len());
    }
}
