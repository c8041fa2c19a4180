//! Both migration folders must build the same tables, columns and indexes.

use std::collections::BTreeSet;

use entitle_server::db::Db;
use sqlx::Row;

async fn sqlite_schema() -> BTreeSet<String> {
    let temp = tempfile::tempdir().expect("tempdir");
    let db = Db::connect(None, temp.path()).await.expect("sqlite");
    db.migrate().await.expect("migrate");
    let Db::Sqlite { writer, .. } = &db else {
        unreachable!("sqlite")
    };
    let mut items = BTreeSet::new();
    let tables = sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%'")
        .fetch_all(writer)
        .await
        .expect("tables");
    for table in tables {
        let table: String = table.get(0);
        items.insert(format!("table {table}"));
        let columns = sqlx::query("SELECT name FROM pragma_table_info($1)")
            .bind(&table)
            .fetch_all(writer)
            .await
            .expect("columns");
        for column in columns {
            items.insert(format!("column {table}.{}", column.get::<String, _>(0)));
        }
    }
    let indexes =
        sqlx::query("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
            .fetch_all(writer)
            .await
            .expect("indexes");
    for index in indexes {
        items.insert(format!("index {}", index.get::<String, _>(0)));
    }
    items
}

async fn postgres_schema(url: &str) -> BTreeSet<String> {
    let db = Db::connect(Some(url), std::path::Path::new("."))
        .await
        .expect("postgres");
    db.migrate().await.expect("migrate");
    let Db::Postgres(pool) = &db else {
        unreachable!("postgres")
    };
    let mut items = BTreeSet::new();
    let columns = sqlx::query(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name NOT LIKE '_sqlx%'",
    )
    .fetch_all(pool)
    .await
    .expect("columns");
    for row in columns {
        let table: String = row.get(0);
        items.insert(format!("table {table}"));
        items.insert(format!("column {table}.{}", row.get::<String, _>(1)));
    }
    // Primary keys are implicit indexes in SQLite; compare the named ones.
    let indexes = sqlx::query("SELECT indexname::text FROM pg_indexes WHERE schemaname = 'public' AND indexname NOT LIKE '%_pkey' AND tablename NOT LIKE '_sqlx%'")
        .fetch_all(pool)
        .await
        .expect("indexes");
    for index in indexes {
        items.insert(format!("index {}", index.get::<String, _>(0)));
    }
    items
}

#[tokio::test]
async fn sqlite_and_postgres_migrations_build_the_same_schema() {
    let Some(url) = entitle_testkit::fresh_database().await.expect("database") else {
        eprintln!(
            "ENTITLE_TEST_DATABASE_URL not set: schema parity is checked in the PostgreSQL run"
        );
        return;
    };
    let sqlite = sqlite_schema().await;
    let postgres = postgres_schema(&url).await;
    let only_sqlite: Vec<_> = sqlite.difference(&postgres).collect();
    let only_postgres: Vec<_> = postgres.difference(&sqlite).collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "only in SQLite: {only_sqlite:?}\nonly in PostgreSQL: {only_postgres:?}"
    );
    assert!(sqlite.contains("table accounts"));
}
