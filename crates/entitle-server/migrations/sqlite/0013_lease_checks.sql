-- Most leases carry no Idempotency-Key: only those that do are indexed. (PostgreSQL's
-- migration of the same number also drops two references SQLite checks cheaply.)
DROP INDEX leases_idempotency;
CREATE UNIQUE INDEX leases_idempotency ON leases (account_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
