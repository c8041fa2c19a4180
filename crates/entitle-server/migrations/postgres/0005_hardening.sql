-- Hardening the identity half.

-- A change of sign-in address waiting for the owner of the new address to confirm it.
-- The account keeps signing in with its old address meanwhile; the old address was told
-- and can cancel. One pending change per account: a new request replaces the last.
CREATE TABLE email_changes (
    account_id UUID PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    new_email TEXT NOT NULL,
    confirm_hash BYTEA NOT NULL,
    cancel_hash BYTEA NOT NULL,
    requested_by TEXT,
    requested_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX email_changes_confirm ON email_changes (confirm_hash);
CREATE UNIQUE INDEX email_changes_cancel ON email_changes (cancel_hash);

-- A confidential client serving APIs may introspect other clients' tokens; any other
-- client introspects only its own.
ALTER TABLE oauth_clients ADD COLUMN resource_server BOOLEAN NOT NULL DEFAULT FALSE;

-- How a staged file's bytes were read: utf-8, or windows-1252 (Excel's plain "CSV").
ALTER TABLE import_batches ADD COLUMN encoding TEXT NOT NULL DEFAULT 'utf-8';

-- What a serving process records for the commands run beside it, such as the URL it is
-- reached at (so `entitled bootstrap` links to it without a public_url of its own).
CREATE TABLE server_settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Organizations found by name in the operator's console: the name lowercased by the
-- server (prefix searches are range scans on it).
ALTER TABLE orgs ADD COLUMN name_key TEXT NOT NULL DEFAULT '';
UPDATE orgs SET name_key = lower(name);
CREATE INDEX orgs_name_key ON orgs (name_key, id);
