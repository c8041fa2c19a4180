//! Words for people: counts with real plurals and short lists of names, shared by the
//! messages of every layer.

/// "1 person", "3 people".
pub fn plural(n: i64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// "Ann", "Ann and Bob", "Ann, Bob and Carl", "Ann, Bob, … and 7 more": at most `shown`
/// names are written out.
pub fn name_list(names: &[String], shown: usize) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        _ if names.len() <= shown => format!(
            "{} and {}",
            names[..names.len() - 1].join(", "),
            names[names.len() - 1]
        ),
        _ => format!(
            "{} and {} more",
            names[..shown].join(", "),
            names.len() - shown
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_lists_read_as_sentences() {
        assert_eq!(plural(1, "request", "requests"), "1 request");
        assert_eq!(plural(2, "request", "requests"), "2 requests");
        assert_eq!(plural(0, "person", "people"), "0 people");
        let names: Vec<String> = ["Ann", "Bob", "Carl"].map(String::from).to_vec();
        assert_eq!(name_list(&names[..1], 5), "Ann");
        assert_eq!(name_list(&names[..2], 5), "Ann and Bob");
        assert_eq!(name_list(&names, 5), "Ann, Bob and Carl");
        assert_eq!(name_list(&names, 2), "Ann, Bob and 1 more");
    }
}
