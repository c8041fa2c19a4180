//! SCIM filters (RFC 7644 §3.4.2.2), parsed into a tree the store turns into SQL:
//!
//! ```text
//! FILTER    = attrExp / logExp / valuePath / *1"not" "(" FILTER ")"
//! valuePath = attrPath "[" valFilter "]"
//! attrExp   = (attrPath SP "pr") / (attrPath SP compareOp SP compValue)
//! logExp    = FILTER SP ("and" / "or") SP FILTER
//! ```
//!
//! `not` binds tighter than `and`, which binds tighter than `or`; parentheses group.
//! Operators and attribute names are case-insensitive; names are kept in lowercase.

use std::fmt;

/// How deeply filters may nest, so a hostile filter cannot exhaust the stack.
const MAX_DEPTH: usize = 32;
/// Longer filters are refused before parsing.
pub const MAX_FILTER_BYTES: usize = 4096;

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Compare {
        path: AttrPath,
        op: CompareOp,
        value: Value,
    },
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `emails[type eq "work" and value co "@acme"]`: a filter on the values of a
    /// multi-valued attribute.
    ValuePath {
        path: AttrPath,
        filter: Box<Filter>,
    },
}

/// `urn:…:User:name.givenName` → schema, `name`, `givenname`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    pub schema: Option<String>,
    pub attribute: String,
    pub sub_attribute: Option<String>,
}

impl AttrPath {
    /// The path without its schema, such as `name.givenname`.
    pub fn dotted(&self) -> String {
        match &self.sub_attribute {
            Some(sub) => format!("{}.{sub}", self.attribute),
            None => self.attribute.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Number(f64),
    Bool(bool),
    Null,
}

/// Why a filter was refused: SCIM's `invalidFilter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError(pub String);

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Number(f64),
    Open,
    Close,
    OpenBracket,
    CloseBracket,
}

fn tokenize(input: &str) -> Result<Vec<Token>, FilterError> {
    let mut tokens = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some(&(at, c)) = chars.peek() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            '[' => {
                chars.next();
                tokens.push(Token::OpenBracket);
            }
            ']' => {
                chars.next();
                tokens.push(Token::CloseBracket);
            }
            '"' => {
                // A JSON string: find its end, then let serde_json decode the escapes.
                chars.next();
                let mut escaped = false;
                let mut end = None;
                for (i, c) in chars.by_ref() {
                    match (escaped, c) {
                        (true, _) => escaped = false,
                        (false, '\\') => escaped = true,
                        (false, '"') => {
                            end = Some(i);
                            break;
                        }
                        _ => {}
                    }
                }
                let end = end.ok_or_else(|| {
                    FilterError(format!(
                        "The string starting at character {at} is not closed."
                    ))
                })?;
                let text: String = serde_json::from_str(&input[at..=end]).map_err(|_| {
                    FilterError(format!(
                        "The string starting at character {at} has a bad escape."
                    ))
                })?;
                tokens.push(Token::Str(text));
            }
            c if c == '-' || c.is_ascii_digit() => {
                let start = at;
                let mut end = at;
                while let Some(&(i, c)) = chars.peek() {
                    if c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E') {
                        end = i + c.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                let number: f64 = input[start..end].parse().map_err(|_| {
                    FilterError(format!("\"{}\" is not a number.", &input[start..end]))
                })?;
                tokens.push(Token::Number(number));
            }
            c if c.is_ascii_alphabetic() || c == '$' || c == '_' => {
                let start = at;
                let mut end = at;
                while let Some(&(i, c)) = chars.peek() {
                    if c.is_ascii_alphanumeric() || matches!(c, '$' | '_' | '-' | ':' | '.') {
                        end = i + c.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push(Token::Word(input[start..end].to_owned()));
            }
            other => {
                return Err(FilterError(format!(
                    "Unexpected \"{other}\" at character {at}."
                )))
            }
        }
    }
    Ok(tokens)
}

fn attr_path(word: &str) -> Result<AttrPath, FilterError> {
    // A schema URN ends at the last ':'; what follows is `attr` or `attr.sub`.
    let (schema, rest) = match word.rfind(':') {
        Some(i) if word[..i].to_ascii_lowercase().starts_with("urn:") => {
            (Some(word[..i].to_owned()), &word[i + 1..])
        }
        Some(_) => return Err(FilterError(format!("\"{word}\" is not an attribute path."))),
        None => (None, word),
    };
    let mut parts = rest.split('.');
    let attribute = parts.next().unwrap_or_default();
    let sub_attribute = parts.next();
    let valid = |name: &str| {
        name.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '$')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '$' | '_' | '-'))
    };
    if parts.next().is_some() || !valid(attribute) || sub_attribute.is_some_and(|s| !valid(s)) {
        return Err(FilterError(format!("\"{word}\" is not an attribute path.")));
    }
    Ok(AttrPath {
        schema,
        attribute: attribute.to_ascii_lowercase(),
        sub_attribute: sub_attribute.map(str::to_ascii_lowercase),
    })
}

fn compare_op(word: &str) -> Option<CompareOp> {
    Some(match word.to_ascii_lowercase().as_str() {
        "eq" => CompareOp::Eq,
        "ne" => CompareOp::Ne,
        "co" => CompareOp::Co,
        "sw" => CompareOp::Sw,
        "ew" => CompareOp::Ew,
        "gt" => CompareOp::Gt,
        "ge" => CompareOp::Ge,
        "lt" => CompareOp::Lt,
        "le" => CompareOp::Le,
        _ => return None,
    })
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn deeper(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(FilterError("The filter nests too deeply.".to_owned()));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.next();
            let right = self.and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.next();
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, FilterError> {
        self.deeper()?;
        let filter = if self.keyword("not") {
            self.next();
            if self.next() != Some(Token::Open) {
                return Err(FilterError("\"not\" must be followed by \"(\".".to_owned()));
            }
            let inner = self.or()?;
            self.expect(Token::Close, ")")?;
            Filter::Not(Box::new(inner))
        } else if self.peek() == Some(&Token::Open) {
            self.next();
            let inner = self.or()?;
            self.expect(Token::Close, ")")?;
            inner
        } else {
            self.attribute_expression()?
        };
        self.depth -= 1;
        Ok(filter)
    }

    fn expect(&mut self, token: Token, shown: &str) -> Result<(), FilterError> {
        if self.next() == Some(token) {
            Ok(())
        } else {
            Err(FilterError(format!("A \"{shown}\" is missing.")))
        }
    }

    fn attribute_expression(&mut self) -> Result<Filter, FilterError> {
        let path = match self.next() {
            Some(Token::Word(word)) => attr_path(&word)?,
            _ => {
                return Err(FilterError(
                    "Expected an attribute name, such as userName.".to_owned(),
                ))
            }
        };
        if self.peek() == Some(&Token::OpenBracket) {
            self.next();
            let inner = self.or()?;
            self.expect(Token::CloseBracket, "]")?;
            return Ok(Filter::ValuePath {
                path,
                filter: Box::new(inner),
            });
        }
        let op = match self.next() {
            Some(Token::Word(word)) if word.eq_ignore_ascii_case("pr") => {
                return Ok(Filter::Present(path))
            }
            Some(Token::Word(word)) => compare_op(&word).ok_or_else(|| {
                FilterError(format!(
                    "\"{word}\" is not an operator: use eq, ne, co, sw, ew, gt, ge, lt, le or pr."
                ))
            })?,
            _ => {
                return Err(FilterError(format!(
                    "An operator is missing after \"{}\".",
                    path.dotted()
                )))
            }
        };
        let value = match self.next() {
            Some(Token::Str(text)) => Value::Str(text),
            Some(Token::Number(n)) => Value::Number(n),
            Some(Token::Word(w)) if w == "true" => Value::Bool(true),
            Some(Token::Word(w)) if w == "false" => Value::Bool(false),
            Some(Token::Word(w)) if w == "null" => Value::Null,
            _ => {
                return Err(FilterError(format!(
                    "A value is missing after \"{} {op:?}\": use a \"string\", a number, true, false or null.",
                    path.dotted()
                )))
            }
        };
        Ok(Filter::Compare { path, op, value })
    }
}

/// Parses a filter, refusing anything the grammar does not allow.
pub fn parse(input: &str) -> Result<Filter, FilterError> {
    if input.len() > MAX_FILTER_BYTES {
        return Err(FilterError(format!(
            "The filter is longer than {MAX_FILTER_BYTES} bytes."
        )));
    }
    let tokens = tokenize(input)?;
    if tokens.is_empty() {
        return Err(FilterError("The filter is empty.".to_owned()));
    }
    let mut parser = Parser {
        tokens,
        at: 0,
        depth: 0,
    };
    let filter = parser.or()?;
    if parser.at < parser.tokens.len() {
        return Err(FilterError(
            "The filter goes on after a complete expression: join expressions with and / or."
                .to_owned(),
        ));
    }
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(attribute: &str, sub: Option<&str>) -> AttrPath {
        AttrPath {
            schema: None,
            attribute: attribute.to_owned(),
            sub_attribute: sub.map(str::to_owned),
        }
    }

    fn eq(attribute: &str, value: &str) -> Filter {
        Filter::Compare {
            path: path(attribute, None),
            op: CompareOp::Eq,
            value: Value::Str(value.to_owned()),
        }
    }

    #[test]
    fn the_rfc_examples_parse() {
        for example in [
            r#"userName Eq "john""#,
            r#"name.familyName co "O'Malley""#,
            r#"userName sw "J""#,
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
            r#"title pr"#,
            r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
            r#"meta.lastModified le "2011-05-13T04:42:34Z""#,
            r#"title pr and userType eq "Employee""#,
            r#"title pr or userType eq "Intern""#,
            r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
            r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
            r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
            r#"userType eq "Employee" and (emails.type eq "work")"#,
            r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
            r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
        ] {
            assert!(parse(example).is_ok(), "{example}: {:?}", parse(example));
        }
    }

    #[test]
    fn precedence_is_not_then_and_then_or() {
        let parsed = parse(r#"a eq "1" or b eq "2" and not (c eq "3")"#).expect("parses");
        assert_eq!(
            parsed,
            Filter::Or(
                Box::new(eq("a", "1")),
                Box::new(Filter::And(
                    Box::new(eq("b", "2")),
                    Box::new(Filter::Not(Box::new(eq("c", "3"))))
                ))
            )
        );
        let grouped = parse(r#"(a eq "1" or b eq "2") and c eq "3""#).expect("parses");
        assert!(matches!(grouped, Filter::And(..)));
    }

    #[test]
    fn names_and_operators_ignore_case_values_keep_theirs() {
        assert_eq!(
            parse(r#"NAME.GivenName EQ "Ana María""#),
            Ok(Filter::Compare {
                path: path("name", Some("givenname")),
                op: CompareOp::Eq,
                value: Value::Str("Ana María".to_owned()),
            })
        );
        assert_eq!(
            parse(r#"userName eq "a\"b\\c\u00e9""#),
            Ok(eq("username", "a\"b\\cé"))
        );
        assert_eq!(
            parse("active eq true"),
            Ok(Filter::Compare {
                path: path("active", None),
                op: CompareOp::Eq,
                value: Value::Bool(true),
            })
        );
        assert_eq!(
            parse("x gt -1.5e2"),
            Ok(Filter::Compare {
                path: path("x", None),
                op: CompareOp::Gt,
                value: Value::Number(-150.0),
            })
        );
    }

    #[test]
    fn malformed_filters_are_refused_with_a_reason() {
        for bad in [
            "",
            "   ",
            "userName",
            r#"userName eq"#,
            r#"userName equals "x""#,
            r#"userName eq "x"#,
            r#"userName eq x"#,
            r#"(userName eq "x""#,
            r#"userName eq "x")"#,
            r#"userName eq "x" userName eq "y""#,
            r#"not userName eq "x""#,
            r#"emails[type eq "work""#,
            r#"a.b.c eq "x""#,
            r#"1abc eq "x""#,
            r#"userName eq "x" and"#,
            r#"userName eq "\q""#,
            "userName ~ \"x\"",
            r#"foo:bar eq "x""#,
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed as {:?}", parse(bad));
        }
        let deep = format!("{}a pr{}", "(".repeat(100), ")".repeat(100));
        assert_eq!(
            parse(&deep),
            Err(FilterError("The filter nests too deeply.".to_owned()))
        );
        assert!(parse(&"a pr or ".repeat(1000)).is_err(), "too long");
    }
}
