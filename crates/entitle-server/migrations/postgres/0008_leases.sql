-- Seats and online leases.

-- How many seats an organization holds of a product right now: one per row of
-- seat_holds. Taking a seat is a conditional update of this row (held < limit) inside
-- the transaction that adds the hold, so no interleaving of requests, on one server or
-- many, holds more seats than the limit.
CREATE TABLE seat_pools (
    org_id UUID NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    product_id UUID NOT NULL REFERENCES products (id),
    held BIGINT NOT NULL CHECK (held >= 0),
    PRIMARY KEY (org_id, product_id)
);

-- A seat: one machine using one product for one paying organization. Leases (and,
-- later, reserved checkouts) from the same machine for the same product share it. It is
-- held until expires_at, the latest of its holders' ends.
CREATE TABLE seat_holds (
    id UUID PRIMARY KEY,
    org_id UUID NOT NULL,
    product_id UUID NOT NULL,
    machine TEXT NOT NULL,
    overage BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    FOREIGN KEY (org_id, product_id) REFERENCES seat_pools (org_id, product_id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX seat_holds_machine ON seat_holds (org_id, product_id, machine);
-- Seats whose holders stopped renewing are found from this index, not by a scan.
CREATE INDEX seat_holds_expiry ON seat_holds (expires_at);

-- An online lease: a person's application using a product on a machine, renewed by
-- heartbeats. expires_at is when its seat lapses without one; grace_until when the
-- signed lease stops working offline.
CREATE TABLE leases (
    id UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    org_id UUID NOT NULL,
    product_id UUID NOT NULL REFERENCES products (id),
    hold_id UUID NOT NULL REFERENCES seat_holds (id) ON DELETE CASCADE,
    version TEXT NOT NULL,
    machine TEXT NOT NULL,
    machine_name TEXT NOT NULL,
    overage BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    grace_until BIGINT NOT NULL,
    -- The client's Idempotency-Key: a retried request gets the same lease, not a second seat.
    idempotency_key TEXT
);
CREATE UNIQUE INDEX leases_idempotency ON leases (account_id, idempotency_key);
CREATE INDEX leases_hold ON leases (hold_id);

-- Requests refused for want of a seat (or of an entitlement), for metering.
CREATE TABLE license_denials (
    id UUID PRIMARY KEY,
    at BIGINT NOT NULL,
    account_id UUID NOT NULL,
    org_id UUID,
    product TEXT NOT NULL,
    machine TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX license_denials_org ON license_denials (org_id, at);
