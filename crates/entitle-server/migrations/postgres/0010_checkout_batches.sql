-- Bulk checkout: a CSV file of checkouts, staged row by row, then committed all-or-nothing.
CREATE TABLE checkout_batches (
    id UUID PRIMARY KEY,
    org_id UUID NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    file_name TEXT NOT NULL,
    encoding TEXT NOT NULL,
    created_by UUID REFERENCES accounts (id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL,
    committed_by UUID REFERENCES accounts (id) ON DELETE SET NULL,
    committed_at BIGINT
);
CREATE INDEX checkout_batches_org ON checkout_batches (org_id, created_at);

CREATE TABLE checkout_rows (
    batch_id UUID NOT NULL REFERENCES checkout_batches (id) ON DELETE CASCADE,
    number BIGINT NOT NULL,
    line BIGINT NOT NULL,
    -- As written in the file.
    email TEXT NOT NULL,
    product TEXT NOT NULL,
    version TEXT NOT NULL,
    machine TEXT NOT NULL,
    expires TEXT NOT NULL,
    -- valid, invalid, duplicate, not_entitled, no_seat
    status TEXT NOT NULL,
    details TEXT NOT NULL,
    removed BOOLEAN NOT NULL,
    -- What the commit did: checked_out, removed, not_checked_out.
    result TEXT,
    checkout_id UUID,
    PRIMARY KEY (batch_id, number)
);

-- The batch a checkout came from, if any.
ALTER TABLE checkouts ADD COLUMN batch_id UUID;

-- Taking a seat first gives back the expired holds of the same pool: found from this
-- index, without visiting the pool's live holds.
CREATE INDEX seat_holds_pool_expiry ON seat_holds (org_id, product_id, expires_at);
