//! JWS compact tokens as presented to the provider (access tokens, ID-token hints): any
//! text verifies or is refused, never a panic. The keys are the server's own, made once
//! on a throwaway SQLite database.
#![no_main]

use std::sync::{Arc, OnceLock};

use entitle_server::{
    db::Db,
    oidc::{
        keys::{KeyEncryptionKey, KeySet},
        AccessClaims, KeyRing,
    },
};
use libfuzzer_sys::fuzz_target;

fn keys() -> &'static Arc<KeySet> {
    static KEYS: OnceLock<Arc<KeySet>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let dir = tempfile::tempdir().expect("tempdir").keep();
            let db = Db::connect(None, &dir).await.expect("database");
            db.migrate().await.expect("migrations");
            let kek = KeyEncryptionKey::load(None, &dir).expect("key-encryption key");
            KeyRing::open(&db, kek).await.expect("keys").current()
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let keys = keys();
    let _ = keys.verify::<AccessClaims>(token, "https://issuer.example", None, true);
    let _ = keys.verify::<serde_json::Value>(token, "https://issuer.example", Some("aud"), false);
});
