//! Group commit for leases. Every acquire and heartbeat writes, and on SQLite all writes go
//! through one connection; so those that arrive together are applied in one transaction
//! by a few statements for all of them, the way refresh-token rotation is
//! (`oidc/rotation.rs`). Seats are still taken by conditional updates of each pool's row
//! (`seats::take_upto`), so the limits hold however requests interleave, on one server or
//! several. A batch that fails is applied again one request at a time, so that one bad
//! request fails alone; a request whose Idempotency-Key another server used at the same
//! moment is applied once more and answers that server's lease.

use std::collections::{HashMap, HashSet};

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{
    leases::{LeaseRow, LEASE_SELECT},
    seats::{self, Taken},
};
use crate::{
    db::{now_ms, Db, DbError},
    on_db,
};

/// Most requests one transaction applies.
const MAX_BATCH: usize = 256;

/// A lease to take: who, paid by whom, for what, on which machine.
#[derive(Debug, Clone)]
pub struct NewLease {
    pub account_id: Uuid,
    pub org_id: Uuid,
    pub org_name: String,
    pub product_id: Uuid,
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
    Heartbeat {
        lease_id: Uuid,
        account_id: Uuid,
    },
}

pub enum Outcome {
    Acquired(LeaseRow),
    /// The lease an earlier request with the same Idempotency-Key took.
    Replayed(LeaseRow),
    /// No seat: every seat and every overage the policy allows is held.
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

type Reply = oneshot::Sender<Result<Outcome, String>>;

#[derive(Clone)]
pub struct LeaseWriter {
    queue: mpsc::Sender<(Op, Reply)>,
}

impl LeaseWriter {
    /// Starts the task that applies lease writes; it ends when every `LeaseWriter` is
    /// dropped.
    pub fn start(db: Db, terms: Terms) -> LeaseWriter {
        let (queue, mut incoming) = mpsc::channel::<(Op, Reply)>(4 * MAX_BATCH);
        tokio::spawn(async move {
            // Seat pools whose rows are known to exist: not made again by every batch.
            let mut pools = HashSet::new();
            while let Some(batch) = crate::db::next_batch(&mut incoming, MAX_BATCH).await {
                let ops: Vec<&Op> = batch.iter().map(|(op, _)| op).collect();
                match apply(&db, terms, &ops, &mut pools).await {
                    Ok(pending) => {
                        tokio::spawn(answer(db.clone(), batch, pending));
                    }
                    Err(error) => {
                        tracing::warn!(
                            error = %error,
                            requests = batch.len(),
                            "a batch of lease writes failed; applying them one by one"
                        );
                        for (op, reply) in batch {
                            let mut applied = apply(&db, terms, &[&op], &mut pools).await;
                            if matches!(&applied, Err(e) if e.is_unique_violation()) {
                                // Another server took the lease of this Idempotency-Key
                                // meanwhile: applied again, this request answers it.
                                applied = apply(&db, terms, &[&op], &mut pools).await;
                            }
                            match applied {
                                Ok(pending) => answer(db.clone(), vec![(op, reply)], pending).await,
                                Err(error) => {
                                    let _ = reply.send(Err(error.to_string()));
                                }
                            }
                        }
                    }
                }
            }
        });
        LeaseWriter { queue }
    }

    pub async fn submit(&self, op: Op) -> anyhow::Result<Outcome> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((op, reply))
            .await
            .map_err(|_| anyhow::anyhow!("the lease writer has stopped"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the lease writer has stopped"))?
            .map_err(|e| anyhow::anyhow!("writing leases: {e}"))
    }
}

/// What happened to each request; renewed and replayed leases are read back after the
/// commit, on a reader, while the writer goes on with the next batch.
enum Pending {
    Acquired(LeaseRow),
    Replayed(Uuid),
    Refused,
    Renewed(Uuid),
    Gone,
}

/// Applies a batch in one transaction: heartbeats, then acquires grouped by seat pool.
async fn apply(
    db: &Db,
    terms: Terms,
    ops: &[&Op],
    pools: &mut HashSet<(Uuid, Uuid)>,
) -> Result<Vec<Pending>, DbError> {
    let now = now_ms();
    let expires_at = super::leases::seat_until(now, terms.heartbeat_secs);
    let grace_until = now + terms.grace_secs * 1000;
    let mut tx = db.begin().await?;
    let mut pending: Vec<Option<Pending>> = ops.iter().map(|_| None).collect();

    // Heartbeats: the leases that are live and the caller's are renewed, with their seats.
    let renewals: Vec<(usize, Uuid, Uuid)> = ops
        .iter()
        .enumerate()
        .filter_map(|(i, op)| match op {
            Op::Heartbeat {
                lease_id,
                account_id,
            } => Some((i, *lease_id, *account_id)),
            Op::Acquire(_) => None,
        })
        .collect();
    if !renewals.is_empty() {
        let pairs: Vec<String> = (0..renewals.len())
            .map(|i| format!("(${}, ${})", 2 * i + 5, 2 * i + 6))
            .collect();
        let sql = format!(
            "UPDATE leases SET heartbeat_at = $1, expires_at = $2, grace_until = $3 \
             WHERE expires_at > $4 AND (id, account_id) IN (VALUES {}) RETURNING id, hold_id",
            pairs.join(", ")
        );
        let renewed: Vec<(Uuid, Uuid)> = on_db!(&mut tx, |c| {
            let mut query = sqlx::query_as(&sql)
                .bind(now)
                .bind(expires_at)
                .bind(grace_until)
                .bind(now);
            for (_, lease_id, account_id) in &renewals {
                query = query.bind(*lease_id).bind(*account_id);
            }
            query.fetch_all(c).await
        })?;
        let holds: Vec<Uuid> = renewed.iter().map(|(_, hold)| *hold).collect();
        crate::execute_in_chunks!(
            &mut tx,
            "UPDATE seat_holds SET expires_at = CASE WHEN expires_at < $1 THEN $1 ELSE expires_at END \
             WHERE id IN {values}",
            holds,
            2,
            |query| query.bind(expires_at)
        )?;
        for (i, lease_id, _) in &renewals {
            pending[*i] = Some(if renewed.iter().any(|(id, _)| id == lease_id) {
                Pending::Renewed(*lease_id)
            } else {
                Pending::Gone
            });
        }
    }

    // Acquires with an Idempotency-Key used before answer that lease and take nothing.
    let keys: Vec<&str> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Acquire(new) => new.idempotency_key.as_deref(),
            Op::Heartbeat { .. } => None,
        })
        .collect();
    let mut earlier: HashMap<(Uuid, String), Uuid> = HashMap::new();
    if !keys.is_empty() {
        let found: Vec<(Uuid, Uuid, String)> = crate::fetch_in_chunks!(
            &mut tx,
            "SELECT id, account_id, idempotency_key FROM leases WHERE idempotency_key IN {values}",
            keys,
            1,
            |query| query
        )?;
        earlier.extend(
            found
                .into_iter()
                .map(|(id, account, key)| ((account, key), id)),
        );
    }

    // The rest, by seat pool: each machine's seat taken (or shared) once.
    let mut groups: Vec<((Uuid, Uuid), Vec<usize>)> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let Op::Acquire(new) = op else { continue };
        if let Some(key) = &new.idempotency_key {
            if let Some(id) = earlier.get(&(new.account_id, key.clone())) {
                pending[i] = Some(Pending::Replayed(*id));
                continue;
            }
        }
        let pool = (new.org_id, new.product_id);
        match groups.iter_mut().find(|(p, _)| *p == pool) {
            Some((_, members)) => members.push(i),
            None => groups.push((pool, vec![i])),
        }
    }
    let mut made = Vec::new();
    let mut leases: Vec<(&NewLease, LeaseRow)> = Vec::new();
    for ((org_id, product_id), members) in groups {
        let mut machines: Vec<(String, i64)> = Vec::new();
        for i in &members {
            let Op::Acquire(new) = ops[*i] else { continue };
            if !machines.iter().any(|(m, _)| *m == new.machine) {
                machines.push((new.machine.clone(), expires_at));
            }
        }
        if !pools.contains(&(org_id, product_id)) {
            seats::ensure_pool(&mut tx, org_id, product_id).await?;
            made.push((org_id, product_id));
        }
        let holds = seats::take_from_pool(&mut tx, org_id, product_id, &machines, now).await?;
        for i in members {
            let Op::Acquire(new) = ops[i] else { continue };
            // A retry inside the same batch gets the lease its first request takes.
            let twin = new.idempotency_key.as_ref().and_then(|key| {
                leases
                    .iter()
                    .find(|(other, _)| {
                        other.account_id == new.account_id
                            && other.idempotency_key.as_ref() == Some(key)
                    })
                    .map(|(_, row)| row.id)
            });
            if let Some(id) = twin {
                pending[i] = Some(Pending::Replayed(id));
                continue;
            }
            let at = machines
                .iter()
                .position(|(m, _)| *m == new.machine)
                .unwrap_or(0);
            pending[i] = Some(match holds[at] {
                Some((hold_id, taken)) => {
                    let row = LeaseRow {
                        id: Uuid::now_v7(),
                        org_id,
                        org_name: new.org_name.clone(),
                        product: new.product.clone(),
                        version: new.version.trim().to_owned(),
                        machine: new.machine.clone(),
                        machine_name: new.machine_name.trim().to_owned(),
                        overage: taken == Taken::Overage,
                        expires_at,
                        grace_until,
                        hold_id,
                    };
                    leases.push((new, row.clone()));
                    Pending::Acquired(row)
                }
                None => Pending::Refused,
            });
        }
    }
    crate::insert_many!(
        &mut tx,
        "INSERT INTO leases (id, account_id, org_id, product_id, hold_id, version, machine, \
         machine_name, overage, created_at, heartbeat_at, expires_at, grace_until, idempotency_key)",
        "",
        leases,
        14,
        |q, lease| q
            .bind(lease.1.id)
            .bind(lease.0.account_id)
            .bind(lease.1.org_id)
            .bind(lease.0.product_id)
            .bind(lease.1.hold_id)
            .bind(&lease.1.version)
            .bind(&lease.1.machine)
            .bind(&lease.1.machine_name)
            .bind(lease.1.overage)
            .bind(now)
            .bind(now)
            .bind(expires_at)
            .bind(grace_until)
            .bind(&lease.0.idempotency_key)
    )?;
    tx.commit().await?;
    pools.extend(made);
    Ok(pending
        .into_iter()
        .map(|p| p.unwrap_or(Pending::Gone))
        .collect())
}

/// Reads back the renewed and replayed leases on a reader and answers every caller.
async fn answer(db: Db, batch: Vec<(Op, Reply)>, pending: Vec<Pending>) {
    let wanted: Vec<Uuid> = pending
        .iter()
        .filter_map(|p| match p {
            Pending::Replayed(id) | Pending::Renewed(id) => Some(*id),
            _ => None,
        })
        .collect();
    let rows: Result<Vec<LeaseRow>, DbError> = if wanted.is_empty() {
        Ok(Vec::new())
    } else {
        async {
            let mut conn = db.reader().await?;
            crate::fetch_in_chunks!(
                &mut conn,
                format!("{LEASE_SELECT} WHERE l.id IN {{values}}"),
                wanted,
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
    for ((_, reply), pending) in batch.into_iter().zip(pending) {
        let outcome = match pending {
            Pending::Acquired(row) => Outcome::Acquired(row),
            Pending::Replayed(id) => rows
                .get(&id)
                .cloned()
                .map_or(Outcome::Gone, Outcome::Replayed),
            Pending::Renewed(id) => rows
                .get(&id)
                .cloned()
                .map_or(Outcome::Gone, Outcome::Renewed),
            Pending::Refused => Outcome::Refused,
            Pending::Gone => Outcome::Gone,
        };
        let _ = reply.send(Ok(outcome));
    }
}
