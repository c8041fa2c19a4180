-- Reserved checkouts and the revocation list.

-- A license checked out by an organization (which pays) for a person, a machine and a
-- version, until an expiry: it holds a seat until then or until it is checked in.
CREATE TABLE checkouts (
    id BLOB PRIMARY KEY,
    org_id BLOB NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    product_id BLOB NOT NULL REFERENCES products (id),
    -- The person: their address always, their account when they have one.
    email TEXT NOT NULL,
    account_id BLOB REFERENCES accounts (id) ON DELETE SET NULL,
    version TEXT NOT NULL,
    machine_name TEXT NOT NULL,
    hold_id BLOB REFERENCES seat_holds (id) ON DELETE SET NULL,
    overage INTEGER NOT NULL DEFAULT 0,
    created_by BLOB,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    checked_in_at BIGINT,
    checked_in_by BLOB
);
CREATE INDEX checkouts_org ON checkouts (org_id, created_at);
CREATE INDEX checkouts_account ON checkouts (account_id);
CREATE INDEX checkouts_hold ON checkouts (hold_id);

-- Checked-in (revoked) licenses, each with the list's sequence number at that moment.
CREATE TABLE license_revocations (
    seq BIGINT PRIMARY KEY,
    jti TEXT NOT NULL,
    revoked_at BIGINT NOT NULL,
    -- Past this the file is expired anyway and leaves the list.
    expires_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX license_revocations_jti ON license_revocations (jti);
CREATE INDEX license_revocations_expiry ON license_revocations (expires_at);

-- The list's sequence: one row, counted up under its lock by every revocation.
CREATE TABLE revocation_sequence (
    id BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL
);
INSERT INTO revocation_sequence (id, seq) VALUES (1, 0);
