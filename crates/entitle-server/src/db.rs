//! One SQL source for SQLite and PostgreSQL.
//!
//! Queries are written once with `$1` placeholders (both drivers accept them) and run
//! through [`on_db!`], which expands the same code for each backend's concrete connection.
//! SQLite gets one writer connection and a pool of readers, so writers never fight over
//! the lock; PostgreSQL uses one pool for both.

use std::{path::Path, str::FromStr, time::Duration};

use sqlx::{
    pool::{PoolConnection, PoolOptions},
    postgres::PgConnectOptions,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous},
    PgConnection, PgPool, Postgres, Sqlite, SqliteConnection, SqlitePool, Transaction,
};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Too many requests changed the same row at once; the caller may try again.
    #[error("contended: {0}")]
    Contended(&'static str),
    /// A stored value this version cannot read (written by a newer one, or by hand).
    #[error("unreadable stored value: {0}")]
    Corrupt(String),
}

impl DbError {
    /// True when the error is a unique-constraint violation.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, DbError::Sqlx(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}

#[derive(Clone, Debug)]
pub enum Db {
    Sqlite {
        writer: SqlitePool,
        readers: SqlitePool,
    },
    Postgres(PgPool),
}

pub enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

pub enum Conn {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

/// A borrowed connection of either backend: what [`on_db!`] matches on.
pub enum Exec<'a> {
    Sqlite(&'a mut SqliteConnection),
    Postgres(&'a mut PgConnection),
}

/// Anything queries can run on: a transaction or a pooled connection.
pub trait Executor: Send {
    fn exec(&mut self) -> Exec<'_>;

    fn is_sqlite(&mut self) -> bool {
        matches!(self.exec(), Exec::Sqlite(_))
    }
}

impl Executor for Tx {
    fn exec(&mut self) -> Exec<'_> {
        match self {
            Tx::Sqlite(tx) => Exec::Sqlite(tx),
            Tx::Postgres(tx) => Exec::Postgres(tx),
        }
    }
}

impl Executor for Conn {
    fn exec(&mut self) -> Exec<'_> {
        match self {
            Conn::Sqlite(c) => Exec::Sqlite(c),
            Conn::Postgres(c) => Exec::Postgres(c),
        }
    }
}

impl Executor for PgConnection {
    fn exec(&mut self) -> Exec<'_> {
        Exec::Postgres(self)
    }
}

/// Runs `$body` with `$c` bound to the backend's concrete `&mut Connection`, and
/// records how long it took (`entitle_db_query_duration_seconds`).
#[macro_export]
macro_rules! on_db {
    ($ex:expr, |$c:ident| $body:expr) => {{
        let started = std::time::Instant::now();
        match $crate::db::Executor::exec($ex) {
            $crate::db::Exec::Sqlite($c) => {
                let result = $body;
                $crate::metrics::query_finished("sqlite", started);
                result
            }
            $crate::db::Exec::Postgres($c) => {
                let result = $body;
                $crate::metrics::query_finished("postgres", started);
                result
            }
        }
    }};
}

/// Runs one statement with bound values on either backend; yields the rows it changed.
#[macro_export]
macro_rules! execute {
    ($ex:expr, $sql:expr $(, $value:expr)* $(,)?) => {
        $crate::on_db!($ex, |c| sqlx::query($sql)
            $(.bind($value))*
            .execute(c)
            .await
            .map(|r| r.rows_affected()))
        .map_err($crate::db::DbError::from)
    };
}

/// Bound values per statement for multi-row writes: under SQLite's limit of 32,766
/// (PostgreSQL allows 65,535).
pub const MAX_BINDS: usize = 32_000;

/// `($1, $2), ($3, $4)`: placeholders for `rows` rows of `columns` values, numbered
/// from `$first`.
pub fn placeholders(rows: usize, columns: usize, first: usize) -> String {
    let mut out = String::with_capacity(rows * columns * 6);
    for row in 0..rows {
        if row > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for column in 0..columns {
            if column > 0 {
                out.push_str(", ");
            }
            out.push('$');
            out.push_str(&(first + row * columns + column).to_string());
        }
        out.push(')');
    }
    out
}

/// Placeholders for `rows` rows of `columns` values, when a statement binds nothing else:
/// [`anonymous_placeholders`] on SQLite, [`placeholders`] from `$1` on PostgreSQL.
pub fn value_rows(ex: &mut impl Executor, rows: usize, columns: usize) -> String {
    if ex.is_sqlite() {
        anonymous_placeholders(rows, columns)
    } else {
        placeholders(rows, columns, 1)
    }
}

/// The `WHERE` clause of an update of `table`'s rows that match `condition`, such that on
/// PostgreSQL the rows are locked in the order of their ids: transactions that change
/// several rows then never wait on each other in a circle. SQLite's one writer needs no
/// row locks, and gets `condition` as it is.
pub fn in_id_order(ex: &mut impl Executor, table: &str, condition: &str) -> String {
    if ex.is_sqlite() {
        condition.to_owned()
    } else {
        format!("id IN (SELECT id FROM {table} WHERE {condition} ORDER BY id FOR UPDATE)")
    }
}

/// `(?, ?), (?, ?)`: SQLite looks numbered parameters up by name, which grows with the
/// square of their number; thousands of anonymous ones cost nothing extra.
pub fn anonymous_placeholders(rows: usize, columns: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

/// Inserts many rows with as few statements as the bind limit allows:
/// `insert_many!(ex, "INSERT INTO t (a, b)", "ON CONFLICT DO NOTHING", rows, 2, |q, row| q.bind(row.a).bind(row.b))`.
/// Yields the rows written.
#[macro_export]
macro_rules! insert_many {
    ($ex:expr, $head:expr, $tail:expr, $rows:expr, $columns:expr, |$query:ident, $row:ident| $bind:expr) => {
        'insert: {
            let mut written: u64 = 0;
            for chunk in $rows.chunks($crate::db::MAX_BINDS / $columns) {
                let values = $crate::db::value_rows($ex, chunk.len(), $columns);
                let sql = format!("{} VALUES {} {}", $head, values, $tail);
                let result = $crate::on_db!($ex, |c| {
                    let mut $query = sqlx::query(&sql);
                    for $row in chunk {
                        $query = $bind;
                    }
                    $query.execute(c).await.map(|r| r.rows_affected())
                });
                match result {
                    Ok(n) => written += n,
                    Err(e) => break 'insert Err($crate::db::DbError::from(e)),
                }
            }
            Ok::<u64, $crate::db::DbError>(written)
        }
    };
}

/// Values per `IN (…)` list of a chunked query.
pub const IN_LIST_CHUNK: usize = 500;

/// Runs a query once per 500 of `values`: `{values}` in `sql` becomes that chunk's
/// placeholders, numbered from `$first`, bound after what `lead` binds. Yields every row:
/// `fetch_in_chunks!(ex, "SELECT … WHERE org_id = $1 AND id IN {values}", ids, 2, |q| q.bind(org_id))`.
///
/// The statements are not kept prepared, so PostgreSQL plans each for its values. A kept
/// one goes to a generic plan after five runs on a connection, which estimates a list of
/// 500 unknown values as a few rows: the reclaim's delete of 500 holds then walked the
/// whole table comparing every row with the list, 0.8 s instead of 15 ms. Planning a
/// statement that touches hundreds of rows costs little beside it.
#[macro_export]
macro_rules! fetch_in_chunks {
    ($ex:expr, $sql:expr, $values:expr, $first:expr, |$query:ident| $lead:expr) => {
        'chunks: {
            let mut rows = Vec::new();
            for chunk in $values.chunks($crate::db::IN_LIST_CHUNK) {
                let sql = $sql.replace(
                    "{values}",
                    &$crate::db::placeholders(1, chunk.len(), $first),
                );
                let fetched = $crate::on_db!($ex, |c| {
                    let $query = sqlx::query_as(&sql).persistent(false);
                    let mut query = $lead;
                    for value in chunk {
                        query = query.bind(value);
                    }
                    query.fetch_all(c).await
                });
                match fetched {
                    Ok(mut found) => rows.append(&mut found),
                    Err(e) => break 'chunks Err($crate::db::DbError::from(e)),
                }
            }
            Ok(rows)
        }
    };
}

/// [`fetch_in_chunks!`] for statements that return no rows; yields the rows changed.
#[macro_export]
macro_rules! execute_in_chunks {
    ($ex:expr, $sql:expr, $values:expr, $first:expr, |$query:ident| $lead:expr) => {
        'chunks: {
            let mut changed: u64 = 0;
            for chunk in $values.chunks($crate::db::IN_LIST_CHUNK) {
                let sql = $sql.replace(
                    "{values}",
                    &$crate::db::placeholders(1, chunk.len(), $first),
                );
                let result = $crate::on_db!($ex, |c| {
                    let $query = sqlx::query(&sql).persistent(false);
                    let mut query = $lead;
                    for value in chunk {
                        query = query.bind(value);
                    }
                    query.execute(c).await.map(|r| r.rows_affected())
                });
                match result {
                    Ok(n) => changed += n,
                    Err(e) => break 'chunks Err($crate::db::DbError::from(e)),
                }
            }
            Ok::<u64, $crate::db::DbError>(changed)
        }
    };
}

/// Tells every server process on a PostgreSQL database of a change when the transaction
/// commits (`NOTIFY`); nothing on SQLite, where one process serves the database.
pub async fn notify(ex: &mut impl Executor, channel: &str, payload: &str) -> Result<(), DbError> {
    if let Exec::Postgres(c) = ex.exec() {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(c)
            .await?;
    }
    Ok(())
}

/// Prepared statements kept per connection. Group commit writes rows as `VALUES` lists of
/// every length up to its batch, each length a statement of its own; sqlx's default of
/// 100 would prepare them again and again.
const STATEMENT_CACHE: usize = 1024;

/// How long a pooled connection may have been idle and still be handed out unchecked. sqlx
/// pings a connection on every acquire by default: a round trip per transaction, as much
/// as a statement. One in steady use is known to be alive (HikariCP's
/// `aliveBypassWindowMs` is the same rule); one idle longer is pinged first, so that one
/// dropped meanwhile (a database restart, a firewall's idle timeout) is replaced instead
/// of failing a request.
const ALIVE_WITHOUT_PING: Duration = Duration::from_millis(500);

fn pool_options<DB: sqlx::Database>() -> PoolOptions<DB> {
    PoolOptions::new()
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= ALIVE_WITHOUT_PING {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

impl Db {
    /// Opens (creating if needed) the database: PostgreSQL for `postgres://` URLs,
    /// otherwise SQLite at `sqlite:` URL or `<data_dir>/entitle.db`.
    pub async fn connect(database_url: Option<&str>, data_dir: &Path) -> Result<Db, DbError> {
        match database_url {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                let options =
                    PgConnectOptions::from_str(url)?.statement_cache_capacity(STATEMENT_CACHE);
                let pool = pool_options::<Postgres>()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await?;
                Ok(Db::Postgres(pool))
            }
            Some(url) => {
                let options = SqliteConnectOptions::from_str(url)?;
                Self::open_sqlite(options).await
            }
            None => {
                std::fs::create_dir_all(data_dir).map_err(|e| DbError::Sqlx(e.into()))?;
                let options = SqliteConnectOptions::new().filename(data_dir.join("entitle.db"));
                Self::open_sqlite(options).await
            }
        }
    }

    /// Another pool of `connections` to the same PostgreSQL database, to be made and used
    /// on another runtime; none on SQLite, whose writes all go through one connection.
    pub async fn postgres_pool_like(&self, connections: u32) -> Option<Result<Db, DbError>> {
        let Db::Postgres(pool) = self else {
            return None;
        };
        let options = pool.connect_options().as_ref().clone();
        Some(
            pool_options::<Postgres>()
                .max_connections(connections)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .map(Db::Postgres)
                .map_err(DbError::from),
        )
    }

    /// Opens the SQLite file. A process opening a new file at the same moment as another
    /// may find it locked while the other switches it to WAL; it tries again.
    async fn open_sqlite(options: SqliteConnectOptions) -> Result<Db, DbError> {
        let mut tries = 0;
        loop {
            match Self::try_open_sqlite(options.clone()).await {
                Err(DbError::Sqlx(sqlx::Error::Database(e)))
                    if tries < 5 && e.message().contains("locked") =>
                {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(50 * tries)).await;
                }
                other => return other,
            }
        }
    }

    async fn try_open_sqlite(options: SqliteConnectOptions) -> Result<Db, DbError> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .statement_cache_capacity(STATEMENT_CACHE);
        let writer = pool_options::<Sqlite>()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await?;
        let readers = pool_options::<Sqlite>()
            .max_connections(8)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Db::Sqlite { writer, readers })
    }

    pub async fn migrate(&self) -> Result<(), DbError> {
        match self {
            // PostgreSQL migrations take an advisory lock. SQLite's cannot: two processes
            // starting together both see a migration pending, one applies it and the
            // other's attempt fails. Each migration is one transaction, so running again
            // picks up after what the other applied.
            Db::Sqlite { writer, .. } => {
                let migrator = sqlx::migrate!("migrations/sqlite");
                let mut tries = 0;
                while let Err(error) = migrator.run(writer).await {
                    tries += 1;
                    if tries == 5 {
                        return Err(error.into());
                    }
                    tokio::time::sleep(Duration::from_millis(50 * tries)).await;
                }
            }
            Db::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// Starts a read-write transaction.
    /// A transaction holding the lock of the `server_secrets` row `name` (made if
    /// missing): for work that must happen once per database however many servers start
    /// together, such as making the first signing keys. Whoever takes the lock first does
    /// the work; the others wait, then find it done.
    pub async fn serialized(&self, name: &str) -> Result<Tx, DbError> {
        {
            let mut conn = self.writer().await?;
            crate::execute!(
                &mut conn,
                "INSERT INTO server_secrets (name, value, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO NOTHING",
                name,
                &[][..] as &[u8],
                now_ms()
            )?;
        }
        let mut tx = self.begin().await?;
        crate::execute!(
            &mut tx,
            "UPDATE server_secrets SET created_at = $1 WHERE name = $2",
            now_ms(),
            name
        )?;
        Ok(tx)
    }

    pub async fn begin(&self) -> Result<Tx, DbError> {
        let started = std::time::Instant::now();
        Ok(match self {
            Db::Sqlite { writer, .. } => {
                // IMMEDIATE takes the write lock up front: a transaction that reads and
                // then writes cannot deadlock with another process's (SQLite would fail
                // one at once with "database is locked"); it waits its turn instead.
                let tx = Tx::Sqlite(writer.begin_with("BEGIN IMMEDIATE").await?);
                crate::metrics::acquired("sqlite_writer", started);
                tx
            }
            Db::Postgres(pool) => {
                let tx = Tx::Postgres(pool.begin().await?);
                crate::metrics::acquired("postgres", started);
                tx
            }
        })
    }

    /// Each pool's name, connections open, idle ones and the most it opens: for
    /// `entitle_db_pool_connections`.
    pub fn pool_use(&self) -> Vec<(&'static str, u32, usize, u32)> {
        match self {
            Db::Sqlite { writer, readers } => vec![
                (
                    "sqlite_writer",
                    writer.size(),
                    writer.num_idle(),
                    writer.options().get_max_connections(),
                ),
                (
                    "sqlite_readers",
                    readers.size(),
                    readers.num_idle(),
                    readers.options().get_max_connections(),
                ),
            ],
            Db::Postgres(pool) => vec![(
                "postgres",
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            )],
        }
    }

    /// A connection for reads (and single-statement writes on PostgreSQL).
    pub async fn reader(&self) -> Result<Conn, DbError> {
        let started = std::time::Instant::now();
        Ok(match self {
            Db::Sqlite { readers, .. } => {
                let conn = Conn::Sqlite(readers.acquire().await?);
                crate::metrics::acquired("sqlite_readers", started);
                conn
            }
            Db::Postgres(pool) => {
                let conn = Conn::Postgres(pool.acquire().await?);
                crate::metrics::acquired("postgres", started);
                conn
            }
        })
    }

    /// A connection for a single autocommitted write.
    pub async fn writer(&self) -> Result<Conn, DbError> {
        let started = std::time::Instant::now();
        Ok(match self {
            Db::Sqlite { writer, .. } => {
                let conn = Conn::Sqlite(writer.acquire().await?);
                crate::metrics::acquired("sqlite_writer", started);
                conn
            }
            Db::Postgres(pool) => {
                let conn = Conn::Postgres(pool.acquire().await?);
                crate::metrics::acquired("postgres", started);
                conn
            }
        })
    }

    pub async fn ping(&self) -> Result<(), DbError> {
        let mut conn = self.reader().await?;
        on_db!(&mut conn, |c| sqlx::query("SELECT 1")
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self, Db::Sqlite { .. })
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Db::Sqlite { .. } => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite { writer, readers } => {
                readers.close().await;
                writer.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

impl Tx {
    pub async fn commit(self) -> Result<(), DbError> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

/// The next batch for a group-commit task: waits for one item, then takes what else is
/// queued already, up to `max`; none when every sender is gone.
pub async fn next_batch<T>(
    incoming: &mut tokio::sync::mpsc::Receiver<T>,
    max: usize,
) -> Option<Vec<T>> {
    let first = incoming.recv().await?;
    let mut batch = vec![first];
    while batch.len() < max {
        match incoming.try_recv() {
            Ok(next) => batch.push(next),
            Err(_) => break,
        }
    }
    Some(batch)
}

/// Milliseconds since the Unix epoch: the one time format stored in both databases.
pub fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}
