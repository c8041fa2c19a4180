//! The CSV readers of bulk registration and bulk checkout and their row classifiers: any
//! bytes give rows or a file error, never a panic, and every row gets a status.
#![no_main]

use entitle_server::{
    entitlements::bulk_checkouts::{self, Terms},
    orgs::csv_import::{self, Known},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((rows, _)) = bulk_checkouts::read(data) {
        let count = rows.len();
        // Some products unknown, some without a subscription, a few seats free.
        let terms = |code: &str| match code.len() % 3 {
            0 => None,
            1 => Some(Terms::default()),
            _ => Some(Terms {
                subscribed_until: Some(i64::MAX),
                free: Some(2),
                ..Terms::default()
            }),
        };
        let staged = bulk_checkouts::classify(rows, 1_800_000_000_000, terms);
        assert_eq!(staged.len(), count);
    }
    let Ok((rows, _)) = csv_import::read(data) else {
        return;
    };
    let count = rows.len();
    let known = |email: &str| match email.len() % 4 {
        0 => Known::Nobody,
        1 => Known::Unaffiliated,
        2 => Known::MemberHere,
        _ => Known::MemberElsewhere,
    };
    let staged = csv_import::classify(rows, known, |role| role.as_str().len() % 2 == 0);
    assert_eq!(staged.len(), count);
    for row in &staged {
        let _ = csv_import::neutralize(&row.file.email);
    }
});
