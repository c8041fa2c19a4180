//! Refresh-token rotation with group commit. Every refresh writes (the grant's
//! generation moves on), and on SQLite all writes go through one connection; so
//! rotations that arrive together are applied by one statement, and the people they are
//! for are read by one query on a reader while the writer goes on with the next batch.

use std::collections::{HashMap, HashSet};

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::grants::{subjects_of, Subject};
use crate::{
    db::{now_ms, Db, DbError},
    on_db,
};

/// Most rotations one statement applies (three bound values each).
const MAX_BATCH: usize = 256;

/// A presented refresh token: its grant, generation and the client presenting it.
pub struct Rotation {
    pub grant_id: Uuid,
    pub generation: i64,
    pub client_id: String,
}

/// What a rotated grant says about the sign-in it stands for.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Rotated {
    pub id: Uuid,
    pub account_id: Uuid,
    pub scope: String,
    pub auth_time: i64,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A rotated grant and the person it is for, if their account is still active.
pub type Outcome = Option<(Rotated, Option<Subject>)>;

type Reply = oneshot::Sender<Result<Outcome, String>>;

#[derive(Clone)]
pub struct Rotator {
    queue: mpsc::Sender<(Rotation, Reply)>,
}

impl Rotator {
    /// Starts the task that applies rotations; it ends when every `Rotator` is dropped.
    pub fn start(db: Db) -> Rotator {
        let (queue, mut incoming) = mpsc::channel::<(Rotation, Reply)>(4 * MAX_BATCH);
        tokio::spawn(async move {
            while let Some(batch) = crate::db::next_batch(&mut incoming, MAX_BATCH).await {
                let rotations: Vec<&Rotation> = batch.iter().map(|(r, _)| r).collect();
                match apply(&db, &rotations).await {
                    Ok(rotated) => {
                        tokio::spawn(answer(db.clone(), batch, rotated));
                    }
                    Err(error) => {
                        let message = error.to_string();
                        for (_, reply) in batch {
                            let _ = reply.send(Err(message.clone()));
                        }
                    }
                }
            }
        });
        Rotator { queue }
    }

    /// Moves the grant to the next generation if `rotation` names its current one, it is
    /// live and belongs to the client; `None` otherwise (including a concurrent use of
    /// the same token, of which only one wins).
    pub async fn rotate(&self, rotation: Rotation) -> anyhow::Result<Outcome> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((rotation, reply))
            .await
            .map_err(|_| anyhow::anyhow!("the rotation task has stopped"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the rotation task has stopped"))?
            .map_err(|e| anyhow::anyhow!("rotating refresh tokens: {e}"))
    }
}

/// One UPDATE for the whole batch. A grant named twice in one batch is a concurrent
/// reuse: it is updated once, and only its first caller gets the row.
async fn apply(db: &Db, batch: &[&Rotation]) -> Result<HashMap<Uuid, Rotated>, DbError> {
    let mut seen = HashSet::new();
    let mut unique: Vec<&&Rotation> = batch.iter().filter(|r| seen.insert(r.grant_id)).collect();
    // Repeat the first tuple up to a power of two, so a handful of statement shapes
    // cover every batch size and stay in the prepared-statement cache.
    let first = unique[0];
    unique.resize(unique.len().next_power_of_two(), first);
    let tuples: Vec<String> = (0..unique.len())
        .map(|i| format!("(${}, ${}, ${})", 3 * i + 2, 3 * i + 3, 3 * i + 4))
        .collect();
    // Sliding expiry: the grant keeps the lifetime it was given (expires - last use).
    let sql = format!(
        "UPDATE oauth_grants SET generation = generation + 1, last_used_at = $1, \
         expires_at = $1 + (expires_at - last_used_at) \
         WHERE revoked_at IS NULL AND expires_at > $1 AND offline \
         AND (id, generation, client_id) IN (VALUES {}) \
         RETURNING id, account_id, scope, auth_time, created_at, expires_at",
        tuples.join(", ")
    );
    let now = now_ms();
    let mut conn = db.writer().await?;
    let rows: Vec<Rotated> = on_db!(&mut conn, |c| {
        let mut query = sqlx::query_as(&sql).bind(now);
        for rotation in &unique {
            query = query
                .bind(rotation.grant_id)
                .bind(rotation.generation)
                .bind(&rotation.client_id);
        }
        query.fetch_all(c).await
    })?;
    Ok(rows.into_iter().map(|r| (r.id, r)).collect())
}

/// Reads the people of the rotated grants and answers every caller of the batch: the
/// first caller naming a grant gets it, any other gets nothing.
async fn answer(db: Db, batch: Vec<(Rotation, Reply)>, mut rotated: HashMap<Uuid, Rotated>) {
    let account_ids: Vec<Uuid> = rotated.values().map(|r| r.account_id).collect();
    let subjects = async {
        let mut conn = db.reader().await?;
        subjects_of(&mut conn, &account_ids).await
    }
    .await;
    let subjects = match subjects {
        Ok(subjects) => subjects,
        Err(error) => {
            let message = error.to_string();
            for (_, reply) in batch {
                let _ = reply.send(Err(message.clone()));
            }
            return;
        }
    };
    for (rotation, reply) in batch {
        let outcome = rotated.remove(&rotation.grant_id).map(|row| {
            // One person may refresh several devices in one batch.
            let subject = subjects.get(&row.account_id).cloned();
            (row, subject)
        });
        let _ = reply.send(Ok(outcome));
    }
}
