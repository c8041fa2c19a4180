-- OpenID Connect provider: signing keys, clients, authorization codes, grants (one per
-- signed-in client; refresh tokens rotate within it), device authorizations and
-- revoked access tokens.

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL,
    public_jwk TEXT NOT NULL,
    -- nonce || AES-256-GCM(PKCS#8 private key), under the key-encryption key.
    sealed_private_key BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT,
    -- A retired key's public half is published until every token it signed has expired.
    publish_until BIGINT
);

CREATE TABLE oauth_clients (
    id UUID PRIMARY KEY,
    client_id TEXT NOT NULL,
    name TEXT NOT NULL,
    confidential BOOLEAN NOT NULL,
    secret_hash BYTEA,
    redirect_uris TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL,
    grant_types TEXT NOT NULL,
    scopes TEXT NOT NULL,
    org_id UUID REFERENCES orgs (id) ON DELETE CASCADE,
    access_token_ttl_secs BIGINT NOT NULL,
    refresh_token_ttl_secs BIGINT NOT NULL,
    id_token_alg TEXT NOT NULL,
    built_in BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    disabled_at BIGINT
);
CREATE UNIQUE INDEX oauth_clients_client_id ON oauth_clients (client_id);

CREATE TABLE oauth_grants (
    id UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    auth_time BIGINT NOT NULL,
    -- The refresh token's rotation counter; an older one presented means reuse.
    generation BIGINT NOT NULL,
    offline BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    ip TEXT,
    user_agent TEXT
);
CREATE INDEX oauth_grants_account ON oauth_grants (account_id, created_at);

CREATE TABLE oauth_codes (
    code_hash BYTEA PRIMARY KEY,
    client_id TEXT NOT NULL,
    account_id UUID NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL,
    nonce TEXT,
    code_challenge TEXT,
    auth_time BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    grant_id UUID
);
CREATE INDEX oauth_codes_expiry ON oauth_codes (expires_at);

CREATE TABLE oauth_device_codes (
    device_code_hash BYTEA PRIMARY KEY,
    user_code TEXT NOT NULL,
    client_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    interval_secs BIGINT NOT NULL,
    last_polled_at BIGINT,
    account_id UUID REFERENCES accounts (id) ON DELETE CASCADE,
    auth_time BIGINT,
    approved BOOLEAN,
    decided_at BIGINT,
    consumed_at BIGINT
);
CREATE UNIQUE INDEX oauth_device_codes_user_code ON oauth_device_codes (user_code);

CREATE TABLE oauth_revoked_tokens (
    jti UUID PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
