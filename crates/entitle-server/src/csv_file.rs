//! Reading the CSV files administrators upload (bulk registration, bulk checkout) and
//! writing the ones they download: one reader for every layout of columns, so that every
//! file is read, refused and explained the same way.

use std::fmt;

/// The most rows one file may hold.
pub const MAX_ROWS: usize = 1000;

/// The columns a kind of file has, and what its rows are called.
#[derive(Debug, PartialEq, Eq)]
pub struct Layout {
    /// Every column, in the template's order.
    pub columns: &'static [&'static str],
    /// The columns that may be left out.
    pub optional: &'static [&'static str],
    /// What one row is (singular, plural): "user", "users".
    pub row: (&'static str, &'static str),
}

impl Layout {
    /// The template's first line: "Email,First Name,…".
    pub fn header_line(&self) -> String {
        self.columns.join(",")
    }

    fn index_of(&self, header: &str) -> Option<usize> {
        let key = |s: &str| {
            s.chars()
                .filter(|c| !matches!(c, ' ' | '_' | '-'))
                .flat_map(char::to_lowercase)
                .collect::<String>()
        };
        let header = key(header);
        self.columns.iter().position(|c| key(c) == header)
    }
}

/// Why a file cannot be staged at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileError {
    Empty(&'static Layout),
    NotText,
    WrongDelimiter(char),
    MissingColumns(&'static Layout, Vec<&'static str>),
    UnknownColumns(&'static Layout, Vec<String>),
    DuplicateColumn(&'static str),
    NoRows(&'static Layout),
    TooManyRows(&'static Layout, usize),
    Malformed { line: u64, message: String },
}

impl FileError {
    /// The problem code an API answer carries.
    pub fn code(&self) -> &'static str {
        match self {
            FileError::TooManyRows(..) => "too_many_rows",
            _ => "unreadable_file",
        }
    }
}

impl std::error::Error for FileError {}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: usize, one: &str, many: &str| if n == 1 { one } else { many }.to_owned();
        match self {
            FileError::Empty(layout) => write!(
                f,
                "The file is empty. Start from the template: {}.",
                layout.header_line()
            ),
            FileError::NotText => f.write_str(
                "The file is not a CSV text file (it holds bytes no text has). Save it from your spreadsheet as \"CSV UTF-8 (Comma delimited)\".",
            ),
            FileError::WrongDelimiter(delimiter) => write!(
                f,
                "The file uses \"{delimiter}\" to separate columns. Save it as CSV with commas between columns (\"CSV UTF-8 (Comma delimited)\")."
            ),
            FileError::MissingColumns(layout, missing) => write!(
                f,
                "The file lacks the {} {}. The first line must name the columns: {}.",
                plural(missing.len(), "column", "columns"),
                missing.join(", "),
                layout.header_line()
            ),
            FileError::UnknownColumns(layout, unknown) => {
                let (last, rest) = layout.columns.split_last().unwrap_or((&"", &[]));
                write!(
                    f,
                    "The file has {} entitle does not know: {}. Use only {} and {last}.",
                    plural(unknown.len(), "a column", "columns"),
                    unknown.join(", "),
                    rest.join(", ")
                )
            }
            FileError::DuplicateColumn(column) => write!(f, "The column {column} appears twice."),
            FileError::NoRows(layout) => {
                write!(f, "The file names the columns but holds no {}.", layout.row.1)
            }
            FileError::TooManyRows(layout, n) => write!(
                f,
                "The file holds {n} {rows}; at most 1,000 are accepted at once. Split it into files of 1,000 {rows} or fewer.",
                rows = layout.row.1
            ),
            FileError::Malformed { line, message } => write!(f, "Line {line}: {message}"),
        }
    }
}

/// A row as written in the file (trimmed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The row's place in the file, from 1.
    pub number: usize,
    /// The file line it starts on (the header is line 1).
    pub line: u64,
    /// The values in the layout's column order; empty for a column the file leaves out.
    pub values: Vec<String>,
}

/// How a file's bytes were read as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    /// What Excel on Windows saves as plain "CSV": read as Windows-1252.
    Windows1252,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Windows1252 => "windows-1252",
        }
    }
}

/// The text of a file: UTF-8 (with or without BOM) when it is, else Windows-1252 when
/// every byte is a character of it; anything holding control characters is no text.
pub fn decode(bytes: &[u8]) -> Result<(String, Encoding), FileError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let (text, encoding) = match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_owned(), Encoding::Utf8),
        Err(_) => {
            let (text, malformed) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes);
            if malformed {
                return Err(FileError::NotText);
            }
            (text.into_owned(), Encoding::Windows1252)
        }
    };
    // C0 and C1 controls but tab and line breaks: what binary files are full of.
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\r' | '\n'))
    {
        return Err(FileError::NotText);
    }
    Ok((text, encoding))
}

/// Reads the file: UTF-8 with or without BOM, or Windows-1252 (see [`decode`]); CRLF or
/// LF, quoted fields (with commas and line breaks), column names in any case and order,
/// spaces around values trimmed, blank lines skipped.
pub fn read(bytes: &[u8], layout: &'static Layout) -> Result<(Vec<Record>, Encoding), FileError> {
    if bytes
        .strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or(bytes)
        .iter()
        .all(|b| b.is_ascii_whitespace())
    {
        return Err(FileError::Empty(layout));
    }
    let (text, encoding) = decode(bytes)?;
    let text = text.as_str();
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| malformed(&e, 1))?.clone();
    let columns = map_columns(&headers, layout)?;
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let line = line_at(text, reader.position().byte());
        if !reader
            .read_record(&mut record)
            .map_err(|e| malformed(&e, line))?
        {
            break;
        }
        if record.iter().all(str::is_empty) {
            continue;
        }
        if record.len() > headers.len() {
            return Err(FileError::Malformed {
                line,
                message: format!(
                    "{} values where the first line names {} columns. Put values that contain commas in double quotes.",
                    record.len(),
                    headers.len()
                ),
            });
        }
        rows.push(Record {
            number: rows.len() + 1,
            line,
            values: columns
                .iter()
                .map(|at| {
                    at.and_then(|i| record.get(i))
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect(),
        });
        if rows.len() > MAX_ROWS {
            // Count the rest without keeping it, to say how many there are.
            let rest = reader
                .records()
                .filter_map(Result::ok)
                .filter(|r| !r.iter().all(str::is_empty))
                .count();
            return Err(FileError::TooManyRows(layout, rows.len() + rest));
        }
    }
    if rows.is_empty() {
        return Err(FileError::NoRows(layout));
    }
    Ok((rows, encoding))
}

/// The 1-based line a record starting at `byte` is on. (The csv crate ends a record at
/// the `\r` of a CRLF, so its own line numbers run one short on such files.)
fn line_at(text: &str, byte: u64) -> u64 {
    let bytes = text.as_bytes();
    let mut start = usize::try_from(byte).unwrap_or(usize::MAX).min(bytes.len());
    while start < bytes.len() && matches!(bytes[start], b'\r' | b'\n') {
        start += 1;
    }
    bytes[..start].iter().filter(|b| **b == b'\n').count() as u64 + 1
}

fn malformed(error: &csv::Error, fallback_line: u64) -> FileError {
    let line = error.position().map(|p| p.line()).unwrap_or(fallback_line);
    FileError::Malformed {
        line,
        message: match error.kind() {
            csv::ErrorKind::Utf8 { .. } => "the text is not UTF-8.".to_owned(),
            _ => "the line cannot be read as CSV.".to_owned(),
        },
    }
}

/// Where each of the layout's columns is in the file.
fn map_columns(
    headers: &csv::StringRecord,
    layout: &'static Layout,
) -> Result<Vec<Option<usize>>, FileError> {
    if headers.len() == 1 {
        let only = headers.get(0).unwrap_or_default();
        for delimiter in [';', '\t', '|'] {
            if only.contains(delimiter) {
                return Err(FileError::WrongDelimiter(delimiter));
            }
        }
    }
    let mut columns = vec![None; layout.columns.len()];
    let mut unknown = Vec::new();
    for (i, header) in headers.iter().enumerate() {
        match layout.index_of(header) {
            Some(column) => {
                if columns[column].replace(i).is_some() {
                    return Err(FileError::DuplicateColumn(layout.columns[column]));
                }
            }
            None if header.is_empty() => {}
            None => unknown.push(format!("\"{header}\"")),
        }
    }
    if !unknown.is_empty() {
        return Err(FileError::UnknownColumns(layout, unknown));
    }
    let missing: Vec<&'static str> = layout
        .columns
        .iter()
        .zip(&columns)
        .filter(|(name, at)| at.is_none() && !layout.optional.contains(name))
        .map(|(name, _)| *name)
        .collect();
    if !missing.is_empty() {
        return Err(FileError::MissingColumns(layout, missing));
    }
    Ok(columns)
}

fn looks_like_formula(cell: &str) -> bool {
    matches!(
        cell.chars().next(),
        Some('=' | '+' | '-' | '@' | '\t' | '\r')
    )
}

/// A cell that a spreadsheet would run as a formula gets a leading apostrophe.
pub fn neutralize(cell: &str) -> String {
    if looks_like_formula(cell) {
        format!("'{cell}")
    } else {
        cell.to_owned()
    }
}

/// The values (by column name) that start like a spreadsheet formula: they are kept as
/// typed (and neutralized in every export), but someone may have pasted one by mistake,
/// or be trying to get a formula into the next administrator's spreadsheet.
pub fn formula_warnings<'a>(cells: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<String> {
    cells
        .into_iter()
        .filter(|(_, value)| looks_like_formula(value.trim_matches(' ')))
        .map(|(column, value)| {
            let first: String = value.trim_matches(' ').chars().take(1).collect();
            format!(
                "{column} starts with “{}”, which a spreadsheet runs as a formula: check it is meant.",
                first.escape_default()
            )
        })
        .collect()
}

/// A CSV file to download: CRLF lines, every cell neutralized.
pub fn write<R: AsRef<[String]>>(header: &[&str], rows: impl IntoIterator<Item = R>) -> String {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let _ = writer.write_record(header);
    for row in rows {
        let _ = writer.write_record(row.as_ref().iter().map(|c| neutralize(c)));
    }
    String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    static PAIRS: Layout = Layout {
        columns: &["Name", "Colour"],
        optional: &["Colour"],
        row: ("pair", "pairs"),
    };

    #[test]
    fn columns_in_any_order_and_case_optional_ones_may_be_left_out() {
        let (rows, _) = read(b"colour,NAME\nred,ann\n", &PAIRS).expect("reads");
        assert_eq!(rows[0].values, vec!["ann", "red"]);
        let (rows, _) = read(b"Name\r\nann\r\n\r\nben\r\n", &PAIRS).expect("reads");
        assert_eq!(rows[1].values, vec!["ben", ""]);
        assert_eq!(rows[1].line, 4);
        let missing = read(b"Colour\nred\n", &PAIRS).expect_err("refused");
        assert_eq!(missing, FileError::MissingColumns(&PAIRS, vec!["Name"]));
        assert_eq!(
            missing.to_string(),
            "The file lacks the column Name. The first line must name the columns: Name,Colour."
        );
        let unknown = read(b"Name,Size\nann,3\n", &PAIRS).expect_err("refused");
        assert!(unknown.to_string().ends_with("Use only Name and Colour."));
        assert_eq!(
            read(b"Name\n", &PAIRS).expect_err("no rows").to_string(),
            "The file names the columns but holds no pairs."
        );
    }

    #[test]
    fn downloads_neutralize_formulas() {
        let text = write(&["A", "B"], [vec!["=1+1".to_owned(), "ok".to_owned()]]);
        assert_eq!(text, "A,B\r\n'=1+1,ok\r\n");
    }
}
