//! The CSV reader of bulk registration and the row classifier: any bytes give rows or a
//! file error, never a panic, and every row gets a status.
#![no_main]

use entitle_server::orgs::csv_import::{self, Known};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
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
