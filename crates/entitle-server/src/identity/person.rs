//! The personal data entitle holds, as types that can only be built valid.

use std::fmt;

use super::countries;

/// Why a field was refused: a stable code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub code: &'static str,
    pub message: String,
}

impl Invalid {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Invalid {
            code,
            message: message.into(),
        }
    }
}

/// An email address, trimmed and lower-cased: the sign-in name, unique platform-wide.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Email, Invalid> {
        let email = raw.trim().to_lowercase();
        let bad = |why: &str| {
            Invalid::new(
                "invalid_email",
                format!("Not a valid email address: {why}."),
            )
        };
        if email.is_empty() {
            return Err(bad("it is empty"));
        }
        if email.len() > 254 {
            return Err(bad("it is longer than 254 characters"));
        }
        let Some((local, domain)) = email.rsplit_once('@') else {
            return Err(bad("it has no @"));
        };
        if local.is_empty() || local.len() > 64 {
            return Err(bad("the part before @ must be 1 to 64 characters"));
        }
        let local_ok = local
            .chars()
            .all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c))
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..");
        if !local_ok {
            return Err(bad("the part before @ has characters that are not allowed"));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 {
            return Err(bad("the domain needs a dot, as in example.com"));
        }
        let domain_ok = labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
        if !domain_ok {
            return Err(bad("the domain is not a valid host name"));
        }
        Ok(Email(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map(|(l, _)| l).unwrap_or(&self.0)
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An ISO 3166-1 alpha-2 country code. Read from any code (alpha-2, alpha-3, numeric),
/// the ISO short or official name, or a name people use ("UK", "South Korea", "Viet
/// Nam", "Côte d'Ivoire"), in any case, with or without accents and punctuation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountryCode(&'static str);

/// The longest country text read; the longest official name is 60 characters.
pub const COUNTRY_MAX_CHARS: usize = 80;

impl CountryCode {
    pub fn parse(raw: &str) -> Result<CountryCode, Invalid> {
        let trimmed = raw.trim();
        let unknown = || {
            let shown: String = trimmed.chars().take(COUNTRY_MAX_CHARS).collect();
            Invalid::new(
                "unknown_country",
                format!("\"{shown}\" is not a country we know; use its English name (such as United Kingdom or South Korea) or its ISO 3166-1 code (GB, KR)."),
            )
        };
        if trimmed.is_empty() || trimmed.chars().count() > COUNTRY_MAX_CHARS {
            return Err(unknown());
        }
        country_index()
            .get(&country_key(trimmed))
            .map(|&i| CountryCode(countries::COUNTRIES[i].0))
            .ok_or_else(unknown)
    }

    pub fn as_str(&self) -> &str {
        self.0
    }

    /// A stored code as people read it: "United Kingdom (GB)".
    pub fn describe(stored: &str) -> String {
        CountryCode::parse(stored)
            .map(|c| format!("{} ({})", c.name(), c.as_str()))
            .unwrap_or_else(|_| stored.to_owned())
    }

    /// The country's name as people read it ("United Kingdom").
    pub fn name(&self) -> &'static str {
        countries::COUNTRIES
            .iter()
            .find(|c| c.0 == self.0)
            .map_or(self.0, |c| c.3)
    }
}

/// What typed country text is compared on: no accents, no case, no punctuation or
/// spaces, no leading "the", "&" as "and" and "St" as "Saint". scripts/gen-countries.py
/// makes the table's keys the same way.
pub fn country_key(raw: &str) -> String {
    use unicode_normalization::{char::is_combining_mark, UnicodeNormalization};
    // Most text is plain ASCII ("DE", "Germany"): no accents to take off.
    let mut folded: String = if raw.is_ascii() {
        raw.to_ascii_lowercase()
    } else {
        raw.nfd()
            .filter(|c| !is_combining_mark(*c))
            .flat_map(char::to_lowercase)
            .collect()
    };
    if folded.contains('&') {
        folded = folded.replace('&', " and ");
    }
    let mut words: Vec<&str> = folded
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| if w == "st" { "saint" } else { w })
        .collect();
    if words.first() == Some(&"the") {
        words.remove(0);
    }
    words.concat()
}

/// Every code and name key to its row of [`countries::COUNTRIES`]; codes first, so no
/// name can shadow one.
fn country_index() -> &'static std::collections::HashMap<String, usize> {
    static INDEX: std::sync::OnceLock<std::collections::HashMap<String, usize>> =
        std::sync::OnceLock::new();
    INDEX.get_or_init(|| {
        let mut index = std::collections::HashMap::new();
        for (i, (alpha2, alpha3, numeric, _, keys)) in countries::COUNTRIES.iter().enumerate() {
            for code in [alpha2, alpha3, numeric] {
                index.insert(code.to_ascii_lowercase(), i);
            }
            for key in *keys {
                index.entry((*key).to_owned()).or_insert(i);
            }
        }
        index
    })
}

/// A first or last name: trimmed, 1 to 100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonName(String);

impl PersonName {
    pub fn parse(raw: &str) -> Result<PersonName, Invalid> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(Invalid::new("required", "This name is required."));
        }
        if name.chars().count() > 100 {
            return Err(Invalid::new(
                "too_long",
                "Names are at most 100 characters.",
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(Invalid::new(
                "invalid_characters",
                "Names cannot contain control characters.",
            ));
        }
        Ok(PersonName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub const PASSWORD_MIN_CHARS: usize = 12;
pub const PASSWORD_MAX_CHARS: usize = 256;

/// Checks a new password against the rules: 12 to 256 characters, and not built from
/// the person's own email address or name.
pub fn check_new_password(
    password: &str,
    email: &Email,
    first_name: &str,
    last_name: &str,
) -> Result<(), Invalid> {
    let length = password.chars().count();
    if length < PASSWORD_MIN_CHARS {
        return Err(Invalid::new(
            "password_too_short",
            format!("Passwords need at least {PASSWORD_MIN_CHARS} characters."),
        ));
    }
    if length > PASSWORD_MAX_CHARS {
        return Err(Invalid::new(
            "password_too_long",
            format!("Passwords are at most {PASSWORD_MAX_CHARS} characters."),
        ));
    }
    let lowered = password.to_lowercase();
    let personal = [
        email.as_str(),
        email.local_part(),
        &first_name.trim().to_lowercase(),
        &last_name.trim().to_lowercase(),
    ];
    if personal
        .iter()
        .any(|part| part.chars().count() >= 3 && lowered.contains(part))
    {
        return Err(Invalid::new(
            "password_personal",
            "Passwords cannot contain your email address or your name.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        let email = Email::parse("  Ana.Silva@Example.COM ").expect("valid");
        assert_eq!(email.as_str(), "ana.silva@example.com");
        assert_eq!(email.domain(), "example.com");
        assert_eq!(email.local_part(), "ana.silva");
    }

    #[test]
    fn malformed_emails_are_refused() {
        for raw in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a@@b.com",
            "a b@example.com",
            "a@exa mple.com",
            ".a@example.com",
            "a..b@example.com",
            "a@-x.com",
            "a@x..com",
            "a\n@example.com",
        ] {
            assert!(Email::parse(raw).is_err(), "{raw:?} should be refused");
        }
        let long = format!("{}@example.com", "a".repeat(65));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn international_addresses_are_accepted() {
        assert!(Email::parse("josé.müller@bücher.de").is_ok());
        assert!(Email::parse("first+tag@sub.example.co.uk").is_ok());
    }

    #[test]
    fn countries_accept_codes_and_names() {
        for (raw, code) in [
            ("de", "DE"),
            ("DEU", "DE"),
            ("276", "DE"),
            ("Germany", "DE"),
            ("Federal Republic of Germany", "DE"),
            (" united states ", "US"),
            ("United States of America", "US"),
            ("USA", "US"),
            ("GB", "GB"),
            ("United Kingdom", "GB"),
            ("UK", "GB"),
            ("Great Britain", "GB"),
            ("UnitedKingdom", "GB"),
            ("United Kingdom of Great Britain and Northern Ireland", "GB"),
            ("South Korea", "KR"),
            ("Korea, Republic of", "KR"),
            ("Republic of Korea", "KR"),
            ("North Korea", "KP"),
            ("Czech Republic", "CZ"),
            ("Czechia", "CZ"),
            ("The Netherlands", "NL"),
            ("netherlands", "NL"),
            ("Holland", "NL"),
            ("Côte d'Ivoire", "CI"),
            ("COTE D’IVOIRE", "CI"),
            ("Ivory Coast", "CI"),
            ("Viet Nam", "VN"),
            ("Vietnam", "VN"),
            ("Türkiye", "TR"),
            ("Turkey", "TR"),
            ("Bolivia (Plurinational State of)", "BO"),
            ("Iran, Islamic Republic of", "IR"),
            ("Congo", "CG"),
            ("Democratic Republic of the Congo", "CD"),
            ("Saint Kitts & Nevis", "KN"),
            ("St. Lucia", "LC"),
            ("Åland Islands", "AX"),
            ("réunion", "RE"),
            ("São Tomé and Príncipe", "ST"),
            ("Russia", "RU"),
        ] {
            assert_eq!(CountryCode::parse(raw).expect(raw).as_str(), code, "{raw}");
        }
        for raw in ["", "XX", "Atlantis", "12", "Korea", "The", &"x".repeat(81)] {
            assert!(CountryCode::parse(raw).is_err(), "{raw:?}");
        }
        assert_eq!(CountryCode::parse("kr").expect("KR").name(), "South Korea");
        assert_eq!(
            CountryCode::parse("cod").expect("CD").name(),
            "The Democratic Republic of the Congo"
        );
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(
            PersonName::parse(" 王小明 ").expect("ok").as_str(),
            "王小明"
        );
        assert!(PersonName::parse("   ").is_err());
        assert!(PersonName::parse(&"x".repeat(101)).is_err());
        assert!(PersonName::parse("a\u{0}b").is_err());
    }

    #[test]
    fn password_rules() {
        let email = Email::parse("ana.silva@example.com").expect("valid");
        let ok = |p: &str| check_new_password(p, &email, "Ana", "Silva");
        assert!(ok("correct horse battery").is_ok());
        assert_eq!(ok("short").map_err(|e| e.code), Err("password_too_short"));
        assert_eq!(
            ok(&"x".repeat(257)).map_err(|e| e.code),
            Err("password_too_long")
        );
        assert!(ok(&"x".repeat(256)).is_ok());
        assert_eq!(
            ok("ana.silva-1234567").map_err(|e| e.code),
            Err("password_personal")
        );
        assert_eq!(
            ok("my name is SILVA!!").map_err(|e| e.code),
            Err("password_personal")
        );
    }
}
