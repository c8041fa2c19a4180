-- Entitlements: the license signing keys, products and subscriptions.

-- Ed25519 keys that sign license files, leases and revocation lists: separate from the
-- OpenID Connect keys, sealed the same way (nonce || AES-256-GCM(seed) under the
-- key-encryption key). A retired key stays published while files it signed may live.
CREATE TABLE license_keys (
    kid TEXT PRIMARY KEY,
    public_jwk TEXT NOT NULL,
    sealed_private_key BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT,
    publish_until BIGINT
);

-- What a vendor sells. The code is what applications ask for and files name.
CREATE TABLE products (
    id UUID PRIMARY KEY,
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    -- The versions offered, separated by ';' (informational: checkouts name theirs).
    versions TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX products_code ON products (code);

-- An organization's right to use products: for each of its products, `seats` machines
-- at once, from `starts_at` until `ends_at` (or `ended_at`, when ended early).
CREATE TABLE subscriptions (
    id UUID PRIMARY KEY,
    org_id UUID NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    seats BIGINT NOT NULL CHECK (seats >= 0),
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    ended_at BIGINT,
    overage TEXT NOT NULL CHECK (overage IN ('deny', 'allow', 'allow_up_to')),
    -- For allow_up_to: the factor in thousandths (1250 = 1.25 times the seats).
    overage_factor_permille BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CHECK (ends_at > starts_at)
);
CREATE INDEX subscriptions_org ON subscriptions (org_id, ends_at);

CREATE TABLE subscription_products (
    subscription_id UUID NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    product_id UUID NOT NULL REFERENCES products (id),
    PRIMARY KEY (subscription_id, product_id)
);
CREATE INDEX subscription_products_product ON subscription_products (product_id);
