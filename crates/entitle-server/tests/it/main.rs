//! Integration tests: one binary, a real server per test, on SQLite or (with
//! ENTITLE_TEST_DATABASE_URL) PostgreSQL, with email through a real SMTP server.

mod account;
mod admin_pages;
mod approval;
mod bulk_checkouts;
mod checkouts;
mod cli;
mod domains;
mod entitlements;
mod hardening;
mod imports;
mod interop;
mod leases;
mod malformed;
mod members;
mod observability;
mod oidc;
mod operator;
mod orgs;
mod pages;
mod portal;
mod recovery;
mod schema;
mod scim;
mod scim_groups;
mod signin;
mod signup;
mod terms;
mod usage;

use entitle_testkit::TestApp;

/// Rows in a table, to check that refused requests changed nothing.
pub async fn count(app: &TestApp, table: &str) -> i64 {
    use entitle_server::on_db;
    let mut conn = app.state.db.reader().await.expect("connection");
    let sql = format!("SELECT COUNT(*) FROM {table}");
    let (n,): (i64,) =
        on_db!(&mut conn, |c| sqlx::query_as(&sql).fetch_one(c).await).expect("count");
    n
}
