//! Bulk registration from CSV: reading the file, giving every row a status, and the
//! result report. Pure functions; the import batch and its commit build on them.

use std::collections::HashMap;

use super::roles::Role;
pub use crate::csv_file::{neutralize, Encoding, FileError};
use crate::{
    csv_file::{self, Layout},
    identity::person::{CountryCode, Email, PersonName},
};

/// The columns of a bulk registration file.
pub static USERS: Layout = Layout {
    columns: &["Email", "First Name", "Last Name", "Country", "Roles"],
    optional: &["Roles"],
    row: ("user", "users"),
};

/// The template offered for download.
pub const TEMPLATE: &str = "Email,First Name,Last Name,Country,Roles\r\n";

/// The example file offered beside it.
pub const EXAMPLE: &str = "Email,First Name,Last Name,Country,Roles\r\n\
ana.silva@example.com,Ana,Silva,PT,\r\n\
jose.muller@example.com,José,Müller,DE,Administrator\r\n\
wang.xiaoming@example.com,小明,王,CN,User;Software Downloads\r\n\
alexis@example.com,Αλέξης,Παπαδόπουλος,GR,Co-Administrator;License Checkout;Usage Reports\r\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    Email,
    FirstName,
    LastName,
    Country,
    Roles,
}

impl Column {
    pub fn header(self) -> &'static str {
        match self {
            Column::Email => "Email",
            Column::FirstName => "First Name",
            Column::LastName => "Last Name",
            Column::Country => "Country",
            Column::Roles => "Roles",
        }
    }
}

/// A user row as written in the file (trimmed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRow {
    /// The row's place among the users, from 1.
    pub number: usize,
    /// The file line it starts on (the header is line 1).
    pub line: u64,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub country: String,
    pub roles: String,
}

/// Reads a bulk registration file (see [`csv_file::read`]).
pub fn read(bytes: &[u8]) -> Result<(Vec<FileRow>, Encoding), FileError> {
    let (records, encoding) = csv_file::read(bytes, &USERS)?;
    let rows = records
        .into_iter()
        .map(|record| {
            let [email, first_name, last_name, country, roles]: [String; 5] =
                record.values.try_into().unwrap_or_default();
            FileRow {
                number: record.number,
                line: record.line,
                email,
                first_name,
                last_name,
                country,
                roles,
            }
        })
        .collect();
    Ok((rows, encoding))
}

/// What is already known about a row's email address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    Nobody,
    /// An account exists that belongs to no organization: it joins this one.
    Unaffiliated,
    MemberHere,
    MemberElsewhere,
}

/// One problem with one field of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    pub column: Column,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Valid,
    Invalid(Vec<FieldProblem>),
    /// The same (normalized) email as an earlier row, on line `of_line` of the file.
    Duplicate {
        of_line: u64,
    },
    AlreadyMember,
    OtherOrganization,
}

impl Status {
    pub fn code(&self) -> &'static str {
        match self {
            Status::Valid => "valid",
            Status::Invalid(_) => "invalid",
            Status::Duplicate { .. } => "duplicate",
            Status::AlreadyMember => "already_member",
            Status::OtherOrganization => "other_organization",
        }
    }

    /// Why the row has its status, beyond what the status says; empty for a valid row.
    pub fn describe(&self) -> String {
        match self {
            Status::Valid => String::new(),
            Status::Invalid(problems) => problems
                .iter()
                .map(|p| format!("{}: {}", p.column.header(), p.message))
                .collect::<Vec<_>>()
                .join(" "),
            Status::Duplicate { of_line } => {
                format!("Same email address as line {of_line}; only that line is added.")
            }
            Status::AlreadyMember => "Nothing to do: this row is skipped.".to_owned(),
            Status::OtherOrganization => {
                "A person belongs to one organization: theirs must remove them before you can add them."
                    .to_owned()
            }
        }
    }
}

/// A row with its values checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedRow {
    pub file: FileRow,
    /// Normalized (lower case) when the address is valid.
    pub email: String,
    pub country: String,
    pub roles: Vec<Role>,
    pub status: Status,
}

/// Gives every row its status. `known` tells what exists for a normalized address;
/// `may_grant` whether the administrator staging the file may give a role.
pub fn classify(
    rows: Vec<FileRow>,
    known: impl Fn(&str) -> Known,
    may_grant: impl Fn(Role) -> bool,
) -> Vec<StagedRow> {
    let mut first_line_of: HashMap<String, u64> = HashMap::new();
    rows.into_iter()
        .map(|file| {
            let mut problems = Vec::new();
            let mut problem =
                |column, message: String| problems.push(FieldProblem { column, message });
            let email = match Email::parse(&file.email) {
                Ok(email) => email.as_str().to_owned(),
                Err(invalid) => {
                    problem(Column::Email, invalid.message);
                    file.email.trim().to_lowercase()
                }
            };
            for (column, value) in [
                (Column::FirstName, &file.first_name),
                (Column::LastName, &file.last_name),
            ] {
                if let Err(invalid) = PersonName::parse(value) {
                    problem(column, invalid.message);
                }
            }
            let country = match CountryCode::parse(&file.country) {
                Ok(code) => code.as_str().to_owned(),
                Err(invalid) => {
                    problem(Column::Country, invalid.message);
                    String::new()
                }
            };
            let mut roles = Vec::new();
            for name in file
                .roles
                .split(';')
                .map(str::trim)
                .filter(|n| !n.is_empty())
            {
                match Role::parse(name) {
                    Some(role) if !may_grant(role) => problem(
                        Column::Roles,
                        format!("You may not give the role {}.", role.label()),
                    ),
                    Some(role) => {
                        if !roles.contains(&role) {
                            roles.push(role);
                        }
                    }
                    None => problem(
                        Column::Roles,
                        format!(
                            "\"{name}\" is not a role. Use {}, separated by \";\".",
                            Role::ALL.map(Role::label).join(", ")
                        ),
                    ),
                }
            }
            if roles.is_empty() {
                roles.push(Role::User);
            }
            let status = if !problems.is_empty() {
                Status::Invalid(problems)
            } else if let Some(first) = first_line_of.get(&email) {
                Status::Duplicate { of_line: *first }
            } else {
                first_line_of.insert(email.clone(), file.line);
                match known(&email) {
                    Known::Nobody | Known::Unaffiliated => Status::Valid,
                    Known::MemberHere => Status::AlreadyMember,
                    Known::MemberElsewhere => Status::OtherOrganization,
                }
            };
            StagedRow {
                file,
                email,
                country,
                roles,
                status,
            }
        })
        .collect()
}

/// The row's values that start like a spreadsheet formula.
pub fn formula_warnings(row: &FileRow) -> Vec<String> {
    csv_file::formula_warnings([
        (Column::Email.header(), row.email.as_str()),
        (Column::FirstName.header(), &row.first_name),
        (Column::LastName.header(), &row.last_name),
        (Column::Country.header(), &row.country),
        (Column::Roles.header(), &row.roles),
    ])
}

/// What committing did to a row, by its code.
pub fn result_words(code: &str) -> &'static str {
    match code {
        "added_and_invited" => "added and invited",
        "added" => "added (had an account already)",
        "removed" => "removed before committing",
        _ => "not added",
    }
}

/// A row of the result report: as read, with its status and the status's explanation.
pub struct ReportRow {
    pub file: FileRow,
    pub status: String,
    pub details: String,
}

impl From<&StagedRow> for ReportRow {
    fn from(row: &StagedRow) -> Self {
        ReportRow {
            file: row.file.clone(),
            status: row.status.code().to_owned(),
            details: row.status.describe(),
        }
    }
}

/// The result report: every row as read, with its status and what happened to it.
pub fn report(rows: &[(ReportRow, String)]) -> String {
    csv_file::write(
        &[
            "Line",
            "Email",
            "First Name",
            "Last Name",
            "Country",
            "Roles",
            "Status",
            "Details",
            "Result",
        ],
        rows.iter().map(|(row, result)| {
            let f = &row.file;
            vec![
                f.line.to_string(),
                f.email.clone(),
                f.first_name.clone(),
                f.last_name.clone(),
                f.country.clone(),
                f.roles.clone(),
                row.status.clone(),
                row.details.clone(),
                result.clone(),
            ]
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Vec<FileRow> {
        let (rows, encoding) = read(text.as_bytes()).expect("reads");
        assert_eq!(encoding, Encoding::Utf8);
        rows
    }

    fn staged(text: &str) -> Vec<StagedRow> {
        classify(rows(text), |_| Known::Nobody, |_| true)
    }

    #[test]
    fn reads_bom_crlf_quotes_and_any_header_order_and_case() {
        let text = "\u{feff}ROLES,  email ,country,last name,FIRST_NAME\r\n\
                    \"User;Usage Reports\", Ana@Example.com ,pt,\"Silva, Jr.\",\"Ana\nMaria\"\r\n";
        let read = rows(text);
        assert_eq!(read.len(), 1);
        let row = &read[0];
        assert_eq!(row.email, "Ana@Example.com");
        assert_eq!(row.last_name, "Silva, Jr.");
        assert_eq!(row.first_name, "Ana\nMaria");
        assert_eq!(row.roles, "User;Usage Reports");
        assert_eq!(row.line, 2);
        let lf = rows("Email,First Name,Last Name,Country\nana@example.com,Ana,Silva,PT\n");
        assert_eq!(lf[0].country, "PT");
        assert_eq!(lf[0].roles, "", "Roles may be left out");
    }

    #[test]
    fn non_ascii_names_pass() {
        let staged = staged(EXAMPLE);
        assert_eq!(staged.len(), 4);
        assert!(
            staged.iter().all(|r| r.status == Status::Valid),
            "{staged:?}"
        );
        assert_eq!(staged[1].file.first_name, "José");
        assert_eq!(staged[1].file.last_name, "Müller");
        assert_eq!(staged[2].file.last_name, "王");
        assert_eq!(staged[3].file.first_name, "Αλέξης");
        assert_eq!(
            staged[3].roles,
            vec![
                Role::CoAdministrator,
                Role::LicenseCheckout,
                Role::UsageReports
            ]
        );
        assert_eq!(staged[0].roles, vec![Role::User], "no roles means User");
    }

    #[test]
    fn duplicates_compare_normalized_emails() {
        let staged = staged(
            "Email,First Name,Last Name,Country,Roles\n\
             ana@example.com,Ana,Silva,PT,\n\
             ANA@EXAMPLE.COM ,Ana,Silva,PT,\n\
             \" ana@example.com\",Ana,Silva,PT,\n\
             ben@example.com,Ben,Stone,GB,\n",
        );
        assert_eq!(staged[0].status, Status::Valid);
        assert_eq!(staged[1].status, Status::Duplicate { of_line: 2 });
        assert_eq!(staged[2].status, Status::Duplicate { of_line: 2 });
        assert_eq!(staged[3].status, Status::Valid);
    }

    #[test]
    fn every_bad_field_is_named() {
        let staged = staged(
            "Email,First Name,Last Name,Country,Roles\nnot-an-email,,Silva,Narnia,Administrator;Wizard\n",
        );
        let Status::Invalid(problems) = &staged[0].status else {
            panic!("invalid expected: {:?}", staged[0].status);
        };
        let columns: Vec<Column> = problems.iter().map(|p| p.column).collect();
        assert_eq!(
            columns,
            vec![
                Column::Email,
                Column::FirstName,
                Column::Country,
                Column::Roles
            ]
        );
        assert!(staged[0]
            .status
            .describe()
            .contains("\"Wizard\" is not a role"));
    }

    #[test]
    fn members_here_and_elsewhere_and_roles_beyond_the_administrator() {
        let text = "Email,First Name,Last Name,Country,Roles\n\
                    here@example.com,A,B,DE,\n\
                    there@example.com,A,B,DE,\n\
                    free@example.com,A,B,DE,\n\
                    boss@example.com,A,B,DE,Administrator\n";
        let staged = classify(
            rows(text),
            |email| match email {
                "here@example.com" => Known::MemberHere,
                "there@example.com" => Known::MemberElsewhere,
                "free@example.com" => Known::Unaffiliated,
                _ => Known::Nobody,
            },
            |role| role != Role::Administrator,
        );
        assert_eq!(staged[0].status, Status::AlreadyMember);
        assert_eq!(staged[1].status, Status::OtherOrganization);
        assert_eq!(staged[2].status, Status::Valid);
        assert!(
            matches!(&staged[3].status, Status::Invalid(p) if p[0].message.contains("may not give the role Administrator"))
        );
    }

    fn file_of(users: usize) -> String {
        let mut text = String::from("Email,First Name,Last Name,Country,Roles\n");
        for i in 0..users {
            text.push_str(&format!("user{i}@example.com,User,Number {i},DE,\n"));
        }
        text
    }

    #[test]
    fn a_thousand_rows_pass_and_one_more_is_refused() {
        assert_eq!(rows(&file_of(1000)).len(), 1000);
        let refused = read(file_of(1001).as_bytes()).expect_err("refused");
        assert_eq!(refused, FileError::TooManyRows(&USERS, 1001));
        assert!(refused
            .to_string()
            .contains("Split it into files of 1,000 users or fewer"));
        assert_eq!(
            read(file_of(1500).as_bytes()),
            Err(FileError::TooManyRows(&USERS, 1500))
        );
    }

    #[test]
    fn files_that_cannot_be_staged_say_why() {
        assert_eq!(read(b""), Err(FileError::Empty(&USERS)));
        assert_eq!(read(b"\xEF\xBB\xBF \r\n"), Err(FileError::Empty(&USERS)));
        assert_eq!(
            read(b"Email,First Name,Last Name,Country,Roles\r\n"),
            Err(FileError::NoRows(&USERS))
        );
        assert_eq!(
            read(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            Err(FileError::NotText)
        );
        assert_eq!(read(b"PK\x03\x04\x14\0\x06\0"), Err(FileError::NotText));
        assert_eq!(
            read(
                "Email;First Name;Last Name;Country;Roles\r\nana@example.com;Ana;Silva;PT;\r\n"
                    .as_bytes()
            ),
            Err(FileError::WrongDelimiter(';'))
        );
        assert_eq!(
            read(b"Email\tFirst Name\tLast Name\tCountry\nana@example.com\tAna\tSilva\tPT\n"),
            Err(FileError::WrongDelimiter('\t'))
        );
        assert_eq!(
            read(b"Email,First Name,Country\nana@example.com,Ana,PT\n"),
            Err(FileError::MissingColumns(&USERS, vec!["Last Name"]))
        );
        let unknown = read(b"Email,First Name,Last Name,Country,Phone\na@example.com,A,B,DE,123\n")
            .expect_err("unknown");
        assert_eq!(
            unknown,
            FileError::UnknownColumns(&USERS, vec!["\"Phone\"".to_owned()])
        );
        assert!(unknown.to_string().contains("\"Phone\""));
        assert_eq!(
            read(b"Email,email,First Name,Last Name,Country\n"),
            Err(FileError::DuplicateColumn("Email"))
        );
        let extra = read(b"Email,First Name,Last Name,Country\na@example.com,Ana,Silva, Jr.,PT\n")
            .expect_err("extra");
        assert!(
            matches!(extra, FileError::Malformed { line: 2, .. }),
            "{extra:?}"
        );
    }

    #[test]
    fn excel_windows_1252_files_are_read_as_such_and_binary_still_refused() {
        let excel = b"Email,First Name,Last Name,Country,Roles\r\nfran@acme.example,Fran\xe7ois,M\xfcller,C\xf4te d'Ivoire,\r\nzoe@acme.example,Zo\xeb,\x93Q\x94,France,\r\n";
        let (rows, encoding) = read(excel).expect("reads");
        assert_eq!(encoding, Encoding::Windows1252);
        assert_eq!(
            (
                rows[0].first_name.as_str(),
                rows[0].last_name.as_str(),
                rows[0].country.as_str()
            ),
            ("François", "Müller", "Côte d'Ivoire")
        );
        assert_eq!(rows[1].last_name, "“Q”");
        for binary in [
            &b"\x00\x01\x02\x03\xff\xfe"[..],
            b"Email\x1b,First\x07",
            b"\x89PNG\r\n\x1a\n",
            b"abc\x81def",
        ] {
            assert_eq!(read(binary), Err(FileError::NotText), "{binary:?}");
        }
    }

    #[test]
    fn the_template_and_example_are_readable() {
        assert_eq!(read(TEMPLATE.as_bytes()), Err(FileError::NoRows(&USERS)));
        assert_eq!(rows(EXAMPLE).len(), 4);
    }

    #[test]
    fn formula_looking_cells_are_neutralized_in_the_report() {
        assert_eq!(neutralize("=cmd|' /C calc'!A0"), "'=cmd|' /C calc'!A0");
        assert_eq!(neutralize("+1"), "'+1");
        assert_eq!(neutralize("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(neutralize("ana@example.com"), "ana@example.com");
        let staged = classify(
            rows(
                "Email,First Name,Last Name,Country\nana@example.com,=cmd|' /C calc'!A0,-2+3,PT\n",
            ),
            |_| Known::Nobody,
            |_| true,
        );
        let report = report(&[(ReportRow::from(&staged[0]), "not added".to_owned())]);
        assert!(report.contains("'=cmd|' /C calc'!A0"), "{report}");
        assert!(report.contains("'-2+3"), "{report}");
        assert!(!report.contains(",=cmd"), "{report}");
        assert!(report.starts_with("Line,Email,First Name"));
        let warnings = formula_warnings(&staged[0].file);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("First Name starts with “=”"));
        assert!(warnings[1].starts_with("Last Name starts with “-”"));
        assert!(formula_warnings(&rows(EXAMPLE)[0]).is_empty());
    }
}
