-- Usage metering (docs/metering.md): raw events, and what the folding makes of them.

-- Raw usage events: appended, never changed; deleted only past the retention period.
-- No references: events outlive the leases, accounts and licenses they tell of.
CREATE TABLE usage_events (
    id UUID PRIMARY KEY,
    kind TEXT NOT NULL,
    -- The events of one session share it: a lease's id, or a reserved-use report's.
    session TEXT NOT NULL,
    at BIGINT NOT NULL,
    -- The end of a reported period of reserved use; `at` for every other event.
    until_at BIGINT NOT NULL,
    account_id UUID NOT NULL,
    home_org_id UUID,
    billed_org_id UUID,
    source TEXT NOT NULL,
    product_id UUID NOT NULL,
    version TEXT NOT NULL,
    machine TEXT NOT NULL,
    datasource_id UUID,
    -- A denial's reason; a reserved-use report's license (jti).
    detail TEXT,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX usage_events_billed ON usage_events (billed_org_id, at);
CREATE INDEX usage_events_session ON usage_events (session);
CREATE INDEX usage_events_at ON usage_events (at);

-- Events not folded into the aggregates yet. A queue rather than a position in the
-- events: transactions commit in another order than their events' ids.
CREATE TABLE usage_unfolded (event_id UUID PRIMARY KEY);

-- Each session's span as far as the events folded say (home_org_id nil: none).
CREATE TABLE usage_sessions (
    session TEXT PRIMARY KEY,
    billed_org_id UUID NOT NULL,
    product_id UUID NOT NULL,
    machine TEXT NOT NULL,
    account_id UUID NOT NULL,
    home_org_id UUID NOT NULL,
    source TEXT NOT NULL,
    first_at BIGINT NOT NULL,
    last_at BIGINT NOT NULL
);

-- Who used which machine in which interval, and for whom.
CREATE TABLE usage_presence (
    billed_org_id UUID NOT NULL,
    product_id UUID NOT NULL,
    interval_at BIGINT NOT NULL,
    machine TEXT NOT NULL,
    account_id UUID NOT NULL,
    home_org_id UUID NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (billed_org_id, product_id, interval_at, machine, account_id, home_org_id, source)
);
CREATE INDEX usage_presence_home ON usage_presence (home_org_id, interval_at);

-- Each interval's usage: how many machines were in use. Kept forever.
CREATE TABLE usage_intervals (
    billed_org_id UUID NOT NULL,
    product_id UUID NOT NULL,
    interval_at BIGINT NOT NULL,
    machines BIGINT NOT NULL,
    PRIMARY KEY (billed_org_id, product_id, interval_at)
);
