//! What the staged CSV batches share (bulk registration, bulk checkout): a batch table and
//! its rows, every row with a status, a "removed" mark and, once committed, a result.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::{
    db::{DbError, Executor, Tx},
    execute, on_db,
};

/// Which kind of batch: its tables.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Bulk registration: `import_batches`, `import_rows`.
    Imports,
    /// Bulk checkout: `checkout_batches`, `checkout_rows`.
    Checkouts,
}

impl Kind {
    fn tables(self) -> (&'static str, &'static str) {
        match self {
            Kind::Imports => ("import_batches", "import_rows"),
            Kind::Checkouts => ("checkout_batches", "checkout_rows"),
        }
    }
}

/// An uploaded file's name as shown: no control characters, at most 200 characters.
pub fn file_name(raw: &str) -> String {
    raw.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// Rows by status, removed ones counted apart as `removed`.
pub fn counts<'a>(rows: impl IntoIterator<Item = (bool, &'a str)>) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for (removed, status) in rows {
        let key = if removed { "removed" } else { status };
        *counts.entry(key.to_owned()).or_insert(0) += 1;
    }
    counts
}

/// The ids of an organization's batches, newest first (the latest 200).
pub async fn batch_ids(
    ex: &mut impl Executor,
    kind: Kind,
    org_id: Uuid,
) -> Result<Vec<Uuid>, DbError> {
    let sql = format!(
        "SELECT id FROM {} WHERE org_id = $1 ORDER BY created_at DESC LIMIT 200",
        kind.tables().0
    );
    let ids: Vec<(Uuid,)> = on_db!(ex, |c| sqlx::query_as(&sql).bind(org_id).fetch_all(c).await)?;
    Ok(ids.into_iter().map(|(id,)| id).collect())
}

/// Marks one row (`number`) removed, or every row not `valid` and not removed yet;
/// answers how many were.
pub async fn remove_rows(
    tx: &mut Tx,
    kind: Kind,
    id: Uuid,
    number: Option<i64>,
) -> Result<u64, DbError> {
    let rows = kind.tables().1;
    Ok(match number {
        Some(number) => execute!(
            tx,
            &format!("UPDATE {rows} SET removed = $1 WHERE batch_id = $2 AND number = $3"),
            true,
            id,
            number
        )?,
        None => execute!(
            tx,
            &format!(
                "UPDATE {rows} SET removed = $1 WHERE batch_id = $2 AND status <> $3 AND removed = $4"
            ),
            true,
            id,
            "valid",
            false
        )?,
    })
}

/// Deletes a batch and its rows.
pub async fn delete(tx: &mut Tx, kind: Kind, id: Uuid) -> Result<(), DbError> {
    let (batches, rows) = kind.tables();
    execute!(tx, &format!("DELETE FROM {rows} WHERE batch_id = $1"), id)?;
    execute!(tx, &format!("DELETE FROM {batches} WHERE id = $1"), id)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_rows_count_apart_and_names_lose_control_characters() {
        let counts = counts([(false, "valid"), (true, "valid"), (false, "invalid")]);
        assert_eq!(counts["valid"], 1);
        assert_eq!(counts["removed"], 1);
        assert_eq!(file_name("a\u{7}b.csv"), "ab.csv");
        assert_eq!(file_name(&"x".repeat(300)).len(), 200);
    }
}
