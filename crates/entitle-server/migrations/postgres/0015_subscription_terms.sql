-- What each subscription said, and from when: the seats a usage report counts for a day
-- are those the subscriptions said at each moment of it. A change takes effect from the
-- moment it is made; the history is never rewritten.
CREATE TABLE subscription_terms (
    subscription_id UUID NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    recorded_at BIGINT NOT NULL,
    org_id UUID NOT NULL,
    seats BIGINT NOT NULL,
    starts_at BIGINT NOT NULL,
    -- The earlier of its end and the moment it was ended.
    ends_at BIGINT NOT NULL,
    PRIMARY KEY (subscription_id, recorded_at)
);
CREATE INDEX subscription_terms_org ON subscription_terms (org_id);

CREATE TABLE subscription_term_products (
    subscription_id UUID NOT NULL,
    recorded_at BIGINT NOT NULL,
    product_id UUID NOT NULL,
    PRIMARY KEY (subscription_id, recorded_at, product_id),
    FOREIGN KEY (subscription_id, recorded_at)
        REFERENCES subscription_terms (subscription_id, recorded_at) ON DELETE CASCADE
);

-- Subscriptions made before: their present terms, from their creation.
INSERT INTO subscription_terms (subscription_id, recorded_at, org_id, seats, starts_at, ends_at)
SELECT id, created_at, org_id, seats, starts_at,
       CASE WHEN ended_at IS NOT NULL AND ended_at < ends_at THEN ended_at ELSE ends_at END
FROM subscriptions;
INSERT INTO subscription_term_products (subscription_id, recorded_at, product_id)
SELECT s.id, s.created_at, sp.product_id
FROM subscriptions s JOIN subscription_products sp ON sp.subscription_id = s.id;
