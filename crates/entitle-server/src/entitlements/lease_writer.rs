//! Group commit for leases. Every acquire and heartbeat writes, and on SQLite all writes go
//! through one connection; so those that arrive together are applied in one transaction
//! by a few statements for all of them, the way refresh-token rotation is
//! (`oidc/rotation.rs`): who asks and who pays are read for the whole batch by one query
//! while its transaction begins, then heartbeats and acquires are written. On PostgreSQL
//! the common cases are one statement each, without a transaction around it: a batch of
//! heartbeats alone ([`renew_heartbeats`]), and the acquires that take new seats within
//! what the subscriptions own, read and decided and written together
//! ([`write_new_seats`]); there the writer runs on a thread and runtime of its own with
//! connections of its own, so that its round trips do not wait behind request handlers
//! for a turn. Seats are taken by conditional updates of each pool's row
//! (`seats::take_from_pool`, `seats::grant_to_new_machines`), so the limits hold however
//! requests interleave, on one server or several. A batch that fails is applied again one
//! request at a time, so that one bad request fails alone; a request whose
//! Idempotency-Key another server used at the same moment is applied once more and
//! answers that server's lease.

use std::collections::{HashMap, HashSet};

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{
    leases::{LeaseRow, LEASE_COLUMNS},
    seats::{self, Taken},
};
use crate::{
    db::{now_ms, Db, DbError, Exec, Executor, Tx},
    identity::store::AccountRow,
    oidc::grants::{person_token_still_good, PersonToken},
    on_db,
};

/// Most requests one transaction applies.
const MAX_BATCH: usize = 256;

/// Who asks: a person signed in with a session, already looked up; or the person of an
/// access token, looked up with the batch (one query for all).
#[derive(Debug, Clone)]
pub enum Caller {
    Account(AccountRow),
    Token(PersonToken),
}

/// A lease to take: for which product, version and machine.
#[derive(Debug, Clone)]
pub struct NewLease {
    /// The product's code.
    pub product: String,
    pub version: String,
    pub machine: String,
    pub machine_name: String,
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Op {
    Acquire(NewLease),
    /// A heartbeat of the lease, by the person holding it.
    Heartbeat(Uuid),
}

pub enum Outcome {
    Acquired(LeaseRow),
    /// The lease an earlier request with the same Idempotency-Key took.
    Replayed(LeaseRow),
    /// No product has this code.
    UnknownProduct,
    /// The person's organization has no active subscription for the product (recorded as
    /// a denial).
    NotEntitled,
    /// No seat: every seat and every overage the policy allows is held (recorded as a
    /// denial).
    Refused,
    Renewed(LeaseRow),
    /// The lease is not this person's, or its seat lapsed.
    Gone,
}

/// How long what a batch writes lasts, from the settings.
#[derive(Clone, Copy)]
pub struct Terms {
    pub heartbeat_secs: i64,
    pub grace_secs: i64,
}

/// The person who asked and what happened; none when their access token is no longer good.
pub type Answer = Option<(AccountRow, Outcome)>;

type Reply = oneshot::Sender<Result<Answer, String>>;

struct Request {
    caller: Caller,
    op: Op,
}

#[derive(Clone)]
pub struct LeaseWriter {
    queue: mpsc::Sender<(Request, Reply)>,
}

impl LeaseWriter {
    /// Starts the task that applies lease writes; it ends when every `LeaseWriter` is
    /// dropped.
    pub fn start(db: Db, terms: Terms) -> LeaseWriter {
        let (queue, mut incoming) = mpsc::channel::<(Request, Reply)>(4 * MAX_BATCH);
        let db_is_pg = !db.is_sqlite();
        let work = async move {
            // Seat pools whose rows are known to exist: not made again by every batch.
            let mut pools = HashSet::new();
            let db = match db.postgres_pool_like(4).await {
                Some(Ok(own)) => own,
                Some(Err(error)) => {
                    tracing::warn!(error = %error, "connecting the lease writer's own pool failed; it shares the server's");
                    db
                }
                None => db,
            };
            while let Some(batch) = crate::db::next_batch(&mut incoming, MAX_BATCH).await {
                run(&db, terms, batch, &mut pools).await;
            }
        };
        if db_is_pg {
            std::thread::Builder::new()
                .name("lease-writer".into())
                .spawn(move || {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("lease writer runtime")
                        .block_on(work)
                })
                .expect("lease writer thread");
        } else {
            tokio::spawn(work);
        }
        LeaseWriter { queue }
    }

    pub async fn submit(&self, caller: Caller, op: Op) -> anyhow::Result<Answer> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((Request { caller, op }, reply))
            .await
            .map_err(|_| anyhow::anyhow!("the lease writer has stopped"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the lease writer has stopped"))?
            .map_err(|e| anyhow::anyhow!("writing leases: {e}"))
    }
}

/// Applies a batch and answers its callers. A batch that fails is applied again one
/// request at a time, so that one bad request fails alone.
async fn run(
    db: &Db,
    terms: Terms,
    batch: Vec<(Request, Reply)>,
    pools: &mut HashSet<(Uuid, Uuid)>,
) {
    let batch = if db.is_sqlite() {
        batch
    } else {
        take_new_seats_first(db, terms, batch).await
    };
    if batch.is_empty() {
        return;
    }
    let requests: Vec<&Request> = batch.iter().map(|(r, _)| r).collect();
    let error = match apply(db, terms, &requests, pools).await {
        Ok(pending) => return answer(db, batch, pending).await,
        Err(error) => error,
    };
    if error.is_unique_violation() {
        // Another server took a seat or lease these requests also take.
        tracing::debug!(error = %error, requests = batch.len(), "a batch of lease writes raced another server; applying them one by one");
    } else {
        tracing::warn!(error = %error, requests = batch.len(), "a batch of lease writes failed; applying them one by one");
    }
    for (request, reply) in batch {
        let mut applied = apply(db, terms, &[&request], pools).await;
        if matches!(&applied, Err(e) if e.is_unique_violation()) {
            // Another server took this machine's seat, or the lease of this
            // Idempotency-Key, meanwhile: applied again, this request shares or answers it.
            applied = apply(db, terms, &[&request], pools).await;
        }
        match applied {
            Ok(pending) => answer(db, vec![(request, reply)], pending).await,
            Err(error) => {
                let _ = reply.send(Err(error.to_string()));
            }
        }
    }
}

/// What is read for a request before it is applied: who asks (none when their access
/// token is no longer good) and, for an acquire by them, the product and who pays (none
/// for an unknown product code).
struct Resolution {
    account: Option<AccountRow>,
    payer: Option<Payer>,
}

/// Reads who asks and who pays for every request of a batch, in one statement: the person
/// (none when their access token is no longer good, [`person_token_still_good`]; a
/// session's person as they are) and, for an acquire, its product and who pays: the
/// person's home organization, when they are an enabled member of it and it has an active
/// subscription covering the product (no payer for an unknown product code).
async fn resolve(
    ex: &mut impl Executor,
    requests: &[&Request],
    now: i64,
) -> Result<Vec<Resolution>, DbError> {
    // On PostgreSQL the values are bound as arrays: one statement text, planned once per
    // connection, for every batch length.
    let asked = if ex.is_sqlite() {
        format!("VALUES {}", crate::db::placeholders(requests.len(), 6, 2))
    } else {
        ASKED_AS_ARRAYS.to_owned()
    };
    let sql = format!(
        "WITH q (n, account_id, grant_id, jti, by_token, code) AS ({asked}), {} \
         SELECT * FROM resolved",
        resolved_ctes()
    );
    let started = std::time::Instant::now();
    let asked = AskedArrays::of(requests);
    let (backend, rows): (&str, Vec<Resolved>) = match ex.exec() {
        Exec::Sqlite(c) => {
            let mut query = sqlx::query_as(&sql).bind(now);
            for n in 0..requests.len() {
                query = query
                    .bind(n as i64)
                    .bind(asked.account_ids[n])
                    .bind(asked.grant_ids[n])
                    .bind(asked.jtis[n])
                    .bind(asked.by_token[n])
                    .bind(asked.codes[n]);
            }
            ("sqlite", query.fetch_all(c).await?)
        }
        Exec::Postgres(c) => {
            let query = sqlx::query_as(&sql)
                .bind(now)
                .bind(&asked.account_ids)
                .bind(&asked.grant_ids)
                .bind(&asked.jtis)
                .bind(&asked.by_token)
                .bind(&asked.codes);
            ("postgres", query.fetch_all(c).await?)
        }
    };
    crate::metrics::query_finished(backend, started);
    let mut resolutions: Vec<Resolution> = requests
        .iter()
        .map(|_| Resolution {
            account: None,
            payer: None,
        })
        .collect();
    for row in rows {
        resolutions[row.n as usize] = Resolution {
            account: Some(row.account),
            payer: row
                .product_id
                .map(|id| (id, row.payer_id.zip(row.payer_name))),
        };
    }
    Ok(resolutions)
}

/// The requests of a batch as `q`, bound as arrays from `$2` ([`AskedArrays`]).
const ASKED_AS_ARRAYS: &str = "SELECT n - 1, account_id, grant_id, jti, by_token, code \
     FROM unnest($2::uuid[], $3::uuid[], $4::uuid[], $5::bool[], $6::text[]) \
     WITH ORDINALITY AS u (account_id, grant_id, jti, by_token, code, n)";

/// Common table expressions that read, for the requests of `q` (`n`, `account_id`,
/// `grant_id`, `jti`, `by_token`, product `code`) at `$1`, `resolved`: [`Resolved`], one
/// row a request whose person is known. The payer is the person's home organization, when
/// they are an enabled member of it and it has an active subscription covering the
/// product.
fn resolved_ctes() -> String {
    format!(
        "people AS (SELECT q.n, q.code, {} FROM q JOIN accounts a ON a.id = q.account_id \
           WHERE NOT q.by_token OR ({})), \
         resolved AS (SELECT people.*, p.id AS product_id, o.id AS payer_id, o.name AS payer_name \
         FROM people LEFT JOIN products p ON p.code = people.code \
         LEFT JOIN orgs o ON o.id = people.home_org_id AND EXISTS (SELECT 1 FROM org_members m \
           JOIN subscriptions s ON s.org_id = m.org_id \
           JOIN subscription_products sp ON sp.subscription_id = s.id \
           WHERE m.org_id = o.id AND m.account_id = people.id AND m.disabled_at IS NULL \
             AND sp.product_id = p.id AND s.ended_at IS NULL AND s.starts_at <= $1 AND s.ends_at > $1))",
        crate::identity::store::account_columns_of("a"),
        person_token_still_good("q", "a"),
    )
}

/// The requests of a batch as [`ASKED_AS_ARRAYS`] reads them, bound from `$2` on.
struct AskedArrays<'r> {
    account_ids: Vec<Uuid>,
    grant_ids: Vec<Option<Uuid>>,
    jtis: Vec<Option<Uuid>>,
    by_token: Vec<bool>,
    codes: Vec<Option<&'r str>>,
}

impl<'r> AskedArrays<'r> {
    fn of(requests: &[&'r Request]) -> AskedArrays<'r> {
        let tokens: Vec<Option<&PersonToken>> = requests
            .iter()
            .map(|r| match &r.caller {
                Caller::Account(_) => None,
                Caller::Token(token) => Some(token),
            })
            .collect();
        AskedArrays {
            account_ids: requests
                .iter()
                .map(|r| match &r.caller {
                    Caller::Account(account) => account.id,
                    Caller::Token(token) => token.account_id,
                })
                .collect(),
            grant_ids: tokens.iter().map(|t| t.map(|t| t.grant_id)).collect(),
            jtis: tokens.iter().map(|t| t.map(|t| t.jti)).collect(),
            by_token: tokens.iter().map(Option::is_some).collect(),
            codes: requests
                .iter()
                .map(|r| match &r.op {
                    Op::Acquire(new) => Some(new.product.as_str()),
                    Op::Heartbeat(_) => None,
                })
                .collect(),
        }
    }
}

/// A request of a batch as [`resolve`] reads it: whose it is and, for an acquire, the
/// product and who pays.
#[derive(sqlx::FromRow)]
struct Resolved {
    n: i64,
    #[sqlx(flatten)]
    account: AccountRow,
    product_id: Option<Uuid>,
    payer_id: Option<Uuid>,
    payer_name: Option<String>,
}

/// What happened to each request; replayed leases are read back after the commit.
enum Pending {
    Unauthenticated,
    Acquired(LeaseRow),
    Replayed(Uuid),
    UnknownProduct,
    NotEntitled,
    Refused,
    Renewed(LeaseRow),
    Gone,
}

/// Renews the leases a batch's heartbeats name that are live and the caller's: what is
/// known of each request so far, given who asks (nothing yet of acquires).
async fn renew_asked(
    ex: &mut impl Executor,
    requests: &[&Request],
    resolutions: &[Resolution],
    now: i64,
    terms: Terms,
) -> Result<Vec<Option<Pending>>, DbError> {
    let mut pending: Vec<Option<Pending>> = resolutions
        .iter()
        .map(|r| r.account.is_none().then_some(Pending::Unauthenticated))
        .collect();
    let renewals: Vec<(usize, Uuid, Uuid)> = requests
        .iter()
        .zip(resolutions)
        .enumerate()
        .filter_map(|(i, (r, resolution))| match (&r.op, &resolution.account) {
            (Op::Heartbeat(lease_id), Some(account)) => Some((i, *lease_id, account.id)),
            _ => None,
        })
        .collect();
    if !renewals.is_empty() {
        let pairs: Vec<(Uuid, Uuid)> = renewals.iter().map(|(_, l, a)| (*l, *a)).collect();
        let renewed = renew(ex, &pairs, now, terms).await?;
        let renewed: HashMap<Uuid, LeaseRow> =
            renewed.into_iter().map(|row| (row.id, row)).collect();
        for (i, lease_id, _) in &renewals {
            pending[*i] = Some(
                renewed
                    .get(lease_id)
                    .cloned()
                    .map_or(Pending::Gone, Pending::Renewed),
            );
        }
    }
    Ok(pending)
}

/// Renews the leases of `(lease, person)` that are live and that person's, locked in id
/// order: the leases renewed. Their seats last as long without being written
/// ([`seats::hold_end`]).
async fn renew(
    ex: &mut impl Executor,
    leases: &[(Uuid, Uuid)],
    now: i64,
    terms: Terms,
) -> Result<Vec<LeaseRow>, DbError> {
    let (expires_at, grace_until) = renewal_terms(now, terms);
    let wanted = format!("(VALUES {})", crate::db::placeholders(leases.len(), 2, 5));
    let sql = renew_leases_sql(ex, &wanted);
    Ok(on_db!(ex, |c| {
        let mut query = sqlx::query_as(&sql)
            .bind(now)
            .bind(expires_at)
            .bind(grace_until)
            .bind(now);
        for (lease_id, account_id) in leases {
            query = query.bind(*lease_id).bind(*account_id);
        }
        query.fetch_all(c).await
    })?)
}

/// Until when a heartbeat at `now` keeps the seat, and until when the lease works offline.
fn renewal_terms(now: i64, terms: Terms) -> (i64, i64) {
    (
        super::leases::seat_until(now, terms.heartbeat_secs),
        now + terms.grace_secs * 1000,
    )
}

/// The update that renews the leases of `(lease id, account id)` rows of `wanted` that are
/// live, with `$1`..`$4` the heartbeat time, the seat's and the offline grace's ends and
/// the time now; it returns the leases renewed and, as `lease_account`, whose they are.
fn renew_leases_sql(ex: &mut impl Executor, wanted: &str) -> String {
    let live_and_theirs = format!("expires_at > $4 AND (id, account_id) IN {wanted}");
    format!(
        "UPDATE leases SET heartbeat_at = $1, expires_at = $2, grace_until = $3 \
         WHERE {} RETURNING {LEASE_COLUMNS}, account_id AS lease_account",
        crate::db::in_id_order(ex, "leases", &live_and_theirs)
    )
}

/// A batch of heartbeats alone on PostgreSQL, in one statement and one round trip, atomic
/// without a transaction: who asks (a token still good, [`person_token_still_good`]; a
/// session's person as they are), their leases renewed where live and theirs, and those
/// leases' seats kept as long.
async fn renew_heartbeats(
    conn: &mut sqlx::PgConnection,
    heartbeats: &[(&Caller, Uuid)],
    now: i64,
    terms: Terms,
) -> Result<Vec<(Option<AccountRow>, Pending)>, DbError> {
    use sqlx::{FromRow, Row};
    let (expires_at, grace_until) = renewal_terms(now, terms);
    // Arrays rather than a `VALUES` list: one statement text for every batch length, so
    // each connection plans it once instead of for every length it meets.
    let sql = format!(
        "WITH q AS (SELECT n - 1 AS n, account_id, grant_id, jti, lease_id, by_token \
           FROM unnest($5::uuid[], $6::uuid[], $7::uuid[], $8::uuid[], $9::bool[]) \
           WITH ORDINALITY AS u (account_id, grant_id, jti, lease_id, by_token, n)), \
         people AS (SELECT q.n, q.lease_id AS asked_lease, {} FROM q \
           JOIN accounts a ON a.id = q.account_id WHERE NOT q.by_token OR ({})), \
         renewed AS ({}) \
         SELECT p.*, r.* FROM people p \
           LEFT JOIN renewed r ON r.lease_id = p.asked_lease AND r.lease_account = p.id",
        crate::identity::store::account_columns_of("a"),
        person_token_still_good("q", "a"),
        renew_leases_sql(conn, "(SELECT asked_lease, id FROM people)")
    );
    let tokens: Vec<Option<&PersonToken>> = heartbeats
        .iter()
        .map(|(caller, _)| match caller {
            Caller::Account(_) => None,
            Caller::Token(token) => Some(token),
        })
        .collect();
    let query = sqlx::query(&sql)
        .bind(now)
        .bind(expires_at)
        .bind(grace_until)
        .bind(now)
        .bind(
            heartbeats
                .iter()
                .map(|(caller, _)| match caller {
                    Caller::Account(account) => account.id,
                    Caller::Token(token) => token.account_id,
                })
                .collect::<Vec<Uuid>>(),
        )
        .bind(
            tokens
                .iter()
                .map(|t| t.map(|t| t.grant_id))
                .collect::<Vec<_>>(),
        )
        .bind(tokens.iter().map(|t| t.map(|t| t.jti)).collect::<Vec<_>>())
        .bind(
            heartbeats
                .iter()
                .map(|(_, lease)| *lease)
                .collect::<Vec<_>>(),
        )
        .bind(tokens.iter().map(Option::is_some).collect::<Vec<_>>());
    let started = std::time::Instant::now();
    let rows = query.fetch_all(conn).await;
    crate::metrics::query_finished("postgres", started);
    let mut answers: Vec<(Option<AccountRow>, Pending)> = heartbeats
        .iter()
        .map(|_| (None, Pending::Unauthenticated))
        .collect();
    for row in rows? {
        let n: i64 = row.try_get("n")?;
        let renewed = match row.try_get::<Option<Uuid>, _>("lease_id")? {
            Some(_) => Pending::Renewed(LeaseRow::from_row(&row)?),
            None => Pending::Gone,
        };
        answers[n as usize] = (Some(AccountRow::from_row(&row)?), renewed);
    }
    Ok(answers)
}

/// Who pays for an acquire: the product, and the organization paying with its name when
/// there is one.
type Payer = (Uuid, Option<(Uuid, String)>);

/// An acquire whose person and payer are known.
struct Taking<'a> {
    at: usize,
    account: &'a AccountRow,
    new: &'a NewLease,
    org_id: Uuid,
    org_name: String,
    product_id: Uuid,
}

impl Taking<'_> {
    /// The lease `id` this acquire takes on the seat of `hold_id`.
    fn lease(
        &self,
        id: Uuid,
        hold_id: Uuid,
        taken: Taken,
        expires_at: i64,
        grace_until: i64,
    ) -> LeaseRow {
        LeaseRow {
            id,
            org_id: self.org_id,
            org_name: self.org_name.clone(),
            product: self.new.product.clone(),
            version: self.new.version.clone(),
            machine: self.new.machine.clone(),
            machine_name: self.new.machine_name.clone(),
            overage: taken == Taken::Overage,
            expires_at,
            grace_until,
            hold_id,
        }
    }
}

/// Acquires by seat pool, the pools in one order for every batch, so that batches applied
/// at once never wait on each other in a circle.
fn by_pool<'t, 'a>(
    takings: impl IntoIterator<Item = &'t Taking<'a>>,
) -> Vec<((Uuid, Uuid), Vec<&'t Taking<'a>>)> {
    let mut groups: Vec<((Uuid, Uuid), Vec<&Taking>)> = Vec::new();
    for r in takings {
        let pool = (r.org_id, r.product_id);
        match groups.iter_mut().find(|(p, _)| *p == pool) {
            Some((_, members)) => members.push(r),
            None => groups.push((pool, vec![r])),
        }
    }
    groups.sort_by_key(|(pool, _)| *pool);
    groups
}

/// On PostgreSQL, first the common acquire: a machine without a seat in its pool takes a
/// new one within the seats the subscriptions own. Those of a batch are decided and
/// written by one statement outside any transaction ([`write_new_seats`]), one round trip,
/// as a batch of heartbeats is: what an acquire's rate on PostgreSQL is bound by is the
/// round trips its batch waits for. They are answered here; every other request, and any
/// this could not decide, is returned for [`apply`], which decides them as before.
async fn take_new_seats_first(
    db: &Db,
    terms: Terms,
    batch: Vec<(Request, Reply)>,
) -> Vec<(Request, Reply)> {
    let acquires: Vec<usize> = (0..batch.len())
        .filter(|&i| matches!(batch[i].0.op, Op::Acquire(_)))
        .collect();
    if acquires.is_empty() {
        return batch;
    }
    let requests: Vec<&Request> = acquires.iter().map(|&i| &batch[i].0).collect();
    let written = async {
        let mut conn = db.writer().await?;
        match conn.exec() {
            Exec::Postgres(c) => write_new_seats(c, &requests, now_ms(), terms).await,
            Exec::Sqlite(_) => Ok(Vec::new()),
        }
    }
    .await;
    let mut written: HashMap<usize, (AccountRow, LeaseRow)> = match written {
        Ok(written) => written
            .into_iter()
            .map(|(n, account, row)| (acquires[n], (account, row)))
            .collect(),
        // Another server wrote a machine's seat or an Idempotency-Key's lease meanwhile:
        // nothing was written, and apply shares or answers it.
        Err(error) if error.is_unique_violation() => HashMap::new(),
        Err(error) => {
            tracing::warn!(error = %error, "writing new seats failed; applying the batch in a transaction");
            HashMap::new()
        }
    };
    if written.is_empty() {
        return batch;
    }
    let (mut done, mut outcomes, mut rest) = (Vec::new(), Vec::new(), Vec::new());
    for (at, item) in batch.into_iter().enumerate() {
        match written.remove(&at) {
            Some((account, row)) => {
                done.push(item);
                outcomes.push((Some(account), Pending::Acquired(row)));
            }
            None => rest.push(item),
        }
    }
    answer(db, done, outcomes).await;
    rest
}

/// Decides and writes, in one statement, the acquires of `requests` whose machines are new
/// to their pool ([`seats::grant_to_new_machines`]), pool by pool: in each pool all of them
/// or none, when the seats the subscriptions own suffice for them all and no
/// Idempotency-Key among them was used before. Who asks and who pays are read as
/// [`resolve`] reads them. Answers the leases written: the request's index, its person,
/// the lease.
async fn write_new_seats(
    c: &mut sqlx::PgConnection,
    requests: &[&Request],
    now: i64,
    terms: Terms,
) -> Result<Vec<(usize, AccountRow, LeaseRow)>, DbError> {
    #[derive(sqlx::FromRow)]
    struct Leased {
        n: i64,
        #[sqlx(flatten)]
        account: AccountRow,
        product_id: Uuid,
        org_id: Uuid,
        org_name: String,
        leased_hold_id: Uuid,
    }
    let (expires_at, grace_until) = renewal_terms(now, terms);
    let new: Vec<&NewLease> = requests
        .iter()
        .filter_map(|r| match &r.op {
            Op::Acquire(new) => Some(new),
            Op::Heartbeat(_) => None,
        })
        .collect();
    if new.len() != requests.len() {
        return Ok(Vec::new());
    }
    let lease_ids: Vec<Uuid> = new.iter().map(|_| Uuid::now_v7()).collect();
    let hold_ids: Vec<Uuid> = new.iter().map(|_| Uuid::now_v7()).collect();
    let keys_unused =
        "NOT EXISTS (SELECT 1 FROM wanted k CROSS JOIN LATERAL (SELECT 1 FROM leases \
         WHERE account_id = k.account_id AND idempotency_key = k.key LIMIT 1) used \
         WHERE k.org_id = a.org_id AND k.product_id = a.product_id AND k.key IS NOT NULL)";
    let sql = format!(
        "WITH q (n, account_id, grant_id, jti, by_token, code) AS ({ASKED_AS_ARRAYS}), {}, \
         wanted AS (SELECT r.n, r.id AS account_id, r.product_id, r.payer_id AS org_id, \
             l.lease_id, l.hold_id, l.version, l.machine, l.machine_name, l.key \
           FROM resolved r JOIN unnest($7::uuid[], $8::uuid[], $9::text[], $10::text[], \
             $11::text[], $12::text[]) WITH ORDINALITY \
             AS l (lease_id, hold_id, version, machine, machine_name, key, n) ON l.n - 1 = r.n \
           WHERE r.payer_id IS NOT NULL), \
         asked AS (SELECT org_id, product_id, COUNT(DISTINCT machine) AS n FROM wanted \
           GROUP BY org_id, product_id), \
         granted AS ({}), \
         holds AS ({} SELECT DISTINCT ON (w.org_id, w.product_id, w.machine) w.hold_id, \
             w.org_id, w.product_id, w.machine, false, $1, $13, $13 \
           FROM wanted w JOIN granted g ON g.org_id = w.org_id AND g.product_id = w.product_id \
           ORDER BY w.org_id, w.product_id, w.machine, w.n \
           RETURNING id, org_id, product_id, machine), \
         leased AS ({LEASE_INSERT} SELECT w.lease_id, w.account_id, w.org_id, w.product_id, h.id, \
             w.version, w.machine, w.machine_name, false, $1, $1, $13, $14, w.key \
           FROM wanted w JOIN holds h ON h.org_id = w.org_id AND h.product_id = w.product_id \
             AND h.machine = w.machine \
           RETURNING id, hold_id) \
         SELECT r.*, r.payer_id AS org_id, r.payer_name AS org_name, \
           l.hold_id AS leased_hold_id FROM resolved r \
         JOIN wanted w ON w.n = r.n JOIN leased l ON l.id = w.lease_id",
        resolved_ctes(),
        seats::grant_to_new_machines("asked", "wanted", "$1", keys_unused),
        seats::HOLD_INSERT,
    );
    let asked = AskedArrays::of(requests);
    let rows: Vec<Leased> = sqlx::query_as(&sql)
        .bind(now)
        .bind(&asked.account_ids)
        .bind(&asked.grant_ids)
        .bind(&asked.jtis)
        .bind(&asked.by_token)
        .bind(&asked.codes)
        .bind(&lease_ids)
        .bind(&hold_ids)
        .bind(new.iter().map(|n| n.version.as_str()).collect::<Vec<_>>())
        .bind(new.iter().map(|n| n.machine.as_str()).collect::<Vec<_>>())
        .bind(
            new.iter()
                .map(|n| n.machine_name.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            new.iter()
                .map(|n| n.idempotency_key.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(expires_at)
        .bind(grace_until)
        .fetch_all(c)
        .await?;
    Ok(rows
        .into_iter()
        .map(|leased| {
            let n = leased.n as usize;
            let row = Taking {
                at: n,
                account: &leased.account,
                new: new[n],
                org_id: leased.org_id,
                org_name: leased.org_name,
                product_id: leased.product_id,
            }
            .lease(
                lease_ids[n],
                leased.leased_hold_id,
                Taken::Seat,
                expires_at,
                grace_until,
            );
            (n, leased.account, row)
        })
        .collect())
}

/// Applies a batch in one transaction: heartbeats, then acquires grouped by seat pool;
/// refusals recorded.
async fn apply(
    db: &Db,
    terms: Terms,
    requests: &[&Request],
    pools: &mut HashSet<(Uuid, Uuid)>,
) -> Result<Vec<(Option<AccountRow>, Pending)>, DbError> {
    let now = now_ms();
    let (expires_at, grace_until) = renewal_terms(now, terms);
    let heartbeats: Option<Vec<(&Caller, Uuid)>> = requests
        .iter()
        .map(|r| match r.op {
            Op::Heartbeat(lease_id) => Some((&r.caller, lease_id)),
            Op::Acquire(_) => None,
        })
        .collect();
    if let (Some(heartbeats), false) = (heartbeats, db.is_sqlite()) {
        let mut conn = db.writer().await?;
        if let Exec::Postgres(c) = conn.exec() {
            return renew_heartbeats(c, &heartbeats, now, terms).await;
        }
    }
    // Who asks and who pays are read on another connection while the transaction begins:
    // the batch waits for one round trip, not two. Nothing the transaction writes changes
    // what they read.
    let (resolutions, tx) = tokio::join!(
        async {
            let mut conn = db.reader().await?;
            resolve(&mut conn, requests, now).await
        },
        db.begin()
    );
    let (resolutions, mut tx) = (resolutions?, tx?);
    let mut pending = renew_asked(&mut tx, requests, &resolutions, now, terms).await?;
    let callers: Vec<Option<&AccountRow>> =
        resolutions.iter().map(|w| w.account.as_ref()).collect();

    // Acquires: of an unknown product, not entitled, or to be taken.
    let mut denials: Vec<(&AccountRow, Option<Uuid>, &NewLease, &str)> = Vec::new();
    let mut resolved: Vec<Taking> = Vec::new();
    for (i, ((request, resolution), caller)) in
        requests.iter().zip(&resolutions).zip(&callers).enumerate()
    {
        let (Op::Acquire(new), Some(account)) = (&request.op, caller) else {
            continue;
        };
        match &resolution.payer {
            None => pending[i] = Some(Pending::UnknownProduct),
            Some((_, None)) => {
                denials.push((account, account.home_org_id, new, "not_entitled"));
                pending[i] = Some(Pending::NotEntitled);
            }
            Some((product_id, Some((org_id, org_name)))) => resolved.push(Taking {
                at: i,
                account,
                new,
                org_id: *org_id,
                org_name: org_name.clone(),
                product_id: *product_id,
            }),
        }
    }

    // Acquires with an Idempotency-Key used before answer that lease and take nothing.
    // Looked up by person and key together, as the index holds them (a batch is at most
    // MAX_BATCH requests, well within either database's limit on bound values).
    let keys: Vec<(Uuid, &str)> = resolved
        .iter()
        .filter_map(|r| Some((r.account.id, r.new.idempotency_key.as_deref()?)))
        .collect();
    let mut earlier: HashMap<(Uuid, String), Uuid> = HashMap::new();
    if !keys.is_empty() {
        let sql = format!(
            "SELECT id, account_id, idempotency_key FROM leases \
             WHERE (account_id, idempotency_key) IN (VALUES {})",
            crate::db::placeholders(keys.len(), 2, 1)
        );
        let found: Vec<(Uuid, Uuid, String)> = on_db!(&mut tx, |c| {
            let mut query = sqlx::query_as(&sql);
            for (account, key) in &keys {
                query = query.bind(account).bind(key);
            }
            query.fetch_all(c).await
        })?;
        earlier.extend(
            found
                .into_iter()
                .map(|(id, account, key)| ((account, key), id)),
        );
    }

    // The rest, by seat pool: each machine's seat taken (or shared) once.
    let mut to_take = Vec::with_capacity(resolved.len());
    for r in &resolved {
        if let Some(key) = &r.new.idempotency_key {
            if let Some(id) = earlier.get(&(r.account.id, key.clone())) {
                pending[r.at] = Some(Pending::Replayed(*id));
                continue;
            }
        }
        to_take.push(r);
    }
    let groups = by_pool(to_take);
    let mut made = Vec::new();
    let mut new_holds = Vec::new();
    let mut leases: Vec<(&Taking, LeaseRow)> = Vec::new();
    for ((org_id, product_id), members) in groups {
        let mut machines: Vec<(String, i64)> = Vec::new();
        let mut machine_at: HashMap<&str, usize> = HashMap::new();
        for r in &members {
            machine_at.entry(&r.new.machine).or_insert_with(|| {
                machines.push((r.new.machine.clone(), expires_at));
                machines.len() - 1
            });
        }
        if !pools.contains(&(org_id, product_id)) {
            seats::ensure_pool(&mut tx, org_id, product_id).await?;
            made.push((org_id, product_id));
        }
        let (holds, mut new) =
            seats::take_from_pool(&mut tx, org_id, product_id, &machines, now).await?;
        new_holds.append(&mut new);
        for r in members {
            // A retry inside the same batch gets the lease its first request takes.
            let twin = r.new.idempotency_key.as_ref().and_then(|key| {
                leases
                    .iter()
                    .find(|(other, _)| {
                        other.account.id == r.account.id
                            && other.new.idempotency_key.as_ref() == Some(key)
                    })
                    .map(|(_, row)| row.id)
            });
            if let Some(id) = twin {
                pending[r.at] = Some(Pending::Replayed(id));
                continue;
            }
            pending[r.at] = Some(match holds[machine_at[r.new.machine.as_str()]] {
                Some((hold_id, taken)) => {
                    let row = r.lease(Uuid::now_v7(), hold_id, taken, expires_at, grace_until);
                    leases.push((r, row.clone()));
                    Pending::Acquired(row)
                }
                None => {
                    denials.push((r.account, Some(org_id), r.new, "no_seat_available"));
                    Pending::Refused
                }
            });
        }
    }
    write_holds_and_leases(&mut tx, &new_holds, &leases, now).await?;
    crate::insert_many!(
        &mut tx,
        "INSERT INTO license_denials (id, at, account_id, org_id, product, machine, reason)",
        "",
        denials,
        7,
        |q, denial| q
            .bind(Uuid::now_v7())
            .bind(now)
            .bind(denial.0.id)
            .bind(denial.1)
            .bind(&denial.2.product)
            .bind(&denial.2.machine)
            .bind(denial.3)
    )?;
    tx.commit().await?;
    pools.extend(made);
    Ok(callers
        .into_iter()
        .zip(pending)
        .map(|(caller, p)| (caller.cloned(), p.unwrap_or(Pending::Gone)))
        .collect())
}

const LEASE_INSERT: &str = "INSERT INTO leases (id, account_id, org_id, product_id, hold_id, \
     version, machine, machine_name, overage, created_at, heartbeat_at, expires_at, grace_until, \
     idempotency_key)";
const LEASE_COLUMNS_WRITTEN: usize = 14;

macro_rules! bind_lease {
    ($query:expr, $lease:expr, $now:expr) => {{
        let (taking, row): &(&Taking, LeaseRow) = $lease;
        $query
            .bind(row.id)
            .bind(taking.account.id)
            .bind(row.org_id)
            .bind(taking.product_id)
            .bind(row.hold_id)
            .bind(&row.version)
            .bind(&row.machine)
            .bind(&row.machine_name)
            .bind(row.overage)
            .bind($now)
            .bind($now)
            .bind(row.expires_at)
            .bind(row.grace_until)
            .bind(&taking.new.idempotency_key)
    }};
}

/// Writes a batch's new seat holds and its leases: in one statement on PostgreSQL, where
/// it is a round trip less while the batch holds its pools' rows locked.
async fn write_holds_and_leases(
    tx: &mut Tx,
    holds: &[seats::NewHold],
    leases: &[(&Taking<'_>, LeaseRow)],
    now: i64,
) -> Result<(), DbError> {
    let binds = holds.len() * seats::HOLD_COLUMNS + leases.len() * LEASE_COLUMNS_WRITTEN;
    if let Exec::Postgres(c) = tx.exec() {
        if !holds.is_empty() && !leases.is_empty() && binds <= crate::db::MAX_BINDS {
            let sql = format!(
                "WITH holds AS ({} VALUES {}) {LEASE_INSERT} VALUES {}",
                seats::HOLD_INSERT,
                crate::db::placeholders(holds.len(), seats::HOLD_COLUMNS, 1),
                crate::db::placeholders(
                    leases.len(),
                    LEASE_COLUMNS_WRITTEN,
                    holds.len() * seats::HOLD_COLUMNS + 1
                )
            );
            let mut query = sqlx::query(&sql);
            for hold in holds {
                query = seats::bind_hold!(query, hold);
            }
            for lease in leases {
                query = bind_lease!(query, lease, now);
            }
            query.execute(c).await?;
            return Ok(());
        }
    }
    seats::write_holds(tx, holds).await?;
    crate::insert_many!(
        tx,
        LEASE_INSERT,
        "",
        leases,
        LEASE_COLUMNS_WRITTEN,
        |q, lease| bind_lease!(q, lease, now)
    )?;
    Ok(())
}

/// Answers every caller of a batch; replayed leases are read back first, on a reader.
async fn answer(
    db: &Db,
    batch: Vec<(Request, Reply)>,
    pending: Vec<(Option<AccountRow>, Pending)>,
) {
    let replayed: Vec<Uuid> = pending
        .iter()
        .filter_map(|(_, p)| match p {
            Pending::Replayed(id) => Some(*id),
            _ => None,
        })
        .collect();
    let rows: Result<Vec<LeaseRow>, DbError> = if replayed.is_empty() {
        Ok(Vec::new())
    } else {
        async {
            let mut conn = db.reader().await?;
            crate::fetch_in_chunks!(
                &mut conn,
                format!("SELECT {LEASE_COLUMNS} FROM leases WHERE id IN {{values}}"),
                replayed,
                1,
                |query| query
            )
        }
        .await
    };
    let rows: HashMap<Uuid, LeaseRow> = match rows {
        Ok(rows) => rows.into_iter().map(|r| (r.id, r)).collect(),
        Err(error) => {
            for (_, reply) in batch {
                let _ = reply.send(Err(error.to_string()));
            }
            return;
        }
    };
    for ((_, reply), (caller, pending)) in batch.into_iter().zip(pending) {
        let outcome = match pending {
            Pending::Unauthenticated => {
                let _ = reply.send(Ok(None));
                continue;
            }
            Pending::Acquired(row) => Outcome::Acquired(row),
            Pending::Replayed(id) => rows
                .get(&id)
                .cloned()
                .map_or(Outcome::Gone, Outcome::Replayed),
            Pending::UnknownProduct => Outcome::UnknownProduct,
            Pending::NotEntitled => Outcome::NotEntitled,
            Pending::Refused => Outcome::Refused,
            Pending::Renewed(row) => Outcome::Renewed(row),
            Pending::Gone => Outcome::Gone,
        };
        let _ = reply.send(Ok(caller.map(|account| (account, outcome))));
    }
}
