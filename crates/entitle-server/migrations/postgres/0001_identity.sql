-- Identity foundation: accounts, organizations, sessions, one-time tokens, terms, audit.
-- Ids are UUIDv7 and times are Unix milliseconds, both made by the server.

CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY,
    value BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE orgs (
    id UUID PRIMARY KEY,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by UUID
);

CREATE TABLE accounts (
    id UUID PRIMARY KEY,
    email TEXT NOT NULL,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    country TEXT NOT NULL,
    password_hash TEXT,
    status TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    email_verified BOOLEAN NOT NULL,
    is_operator BOOLEAN NOT NULL,
    home_org_id UUID REFERENCES orgs (id),
    tos_accepted_version TEXT,
    tos_accepted_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX accounts_email ON accounts (email);
CREATE INDEX accounts_home_org ON accounts (home_org_id);

CREATE TABLE org_members (
    org_id UUID NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    account_id UUID NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, account_id)
);
CREATE INDEX org_members_account ON org_members (account_id);

CREATE TABLE org_member_roles (
    org_id UUID NOT NULL,
    account_id UUID NOT NULL,
    role TEXT NOT NULL,
    PRIMARY KEY (org_id, account_id, role),
    FOREIGN KEY (org_id, account_id) REFERENCES org_members (org_id, account_id) ON DELETE CASCADE
);

CREATE TABLE sessions (
    id UUID PRIMARY KEY,
    token_hash BYTEA NOT NULL,
    account_id UUID NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ip TEXT,
    user_agent TEXT
);
CREATE UNIQUE INDEX sessions_token_hash ON sessions (token_hash);
CREATE INDEX sessions_account ON sessions (account_id);

CREATE TABLE account_tokens (
    token_hash BYTEA PRIMARY KEY,
    purpose TEXT NOT NULL CHECK (purpose IN ('verify_email', 'set_password')),
    account_id UUID NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX account_tokens_account ON account_tokens (account_id);

CREATE TABLE terms_versions (
    version TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    published_at BIGINT NOT NULL,
    published_by UUID
);
CREATE INDEX terms_versions_published ON terms_versions (published_at);

CREATE TABLE throttles (
    key TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    window_started_at BIGINT NOT NULL,
    blocked_until BIGINT NOT NULL
);

CREATE TABLE audit_events (
    id UUID PRIMARY KEY,
    at BIGINT NOT NULL,
    actor_id UUID,
    actor_label TEXT,
    ip TEXT,
    action TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id UUID,
    target_label TEXT,
    org_id UUID,
    details TEXT NOT NULL
);
CREATE INDEX audit_events_org ON audit_events (org_id, id);
CREATE INDEX audit_events_actor ON audit_events (actor_id, id);
CREATE INDEX audit_events_target ON audit_events (target_id, id);
