-- User management: staged bulk registration from CSV files.

CREATE TABLE import_batches (
    id UUID PRIMARY KEY,
    org_id UUID NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    file_name TEXT NOT NULL,
    created_by UUID REFERENCES accounts (id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL,
    committed_by UUID REFERENCES accounts (id) ON DELETE SET NULL,
    committed_at BIGINT
);
CREATE INDEX import_batches_org ON import_batches (org_id, created_at);

CREATE TABLE import_rows (
    batch_id UUID NOT NULL REFERENCES import_batches (id) ON DELETE CASCADE,
    number BIGINT NOT NULL,
    line BIGINT NOT NULL,
    email TEXT NOT NULL,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    country TEXT NOT NULL,
    roles TEXT NOT NULL,
    -- valid, invalid, duplicate, already_member, other_organization
    status TEXT NOT NULL,
    details TEXT NOT NULL,
    -- Taken out of the batch by an administrator before committing (the "x").
    removed BOOLEAN NOT NULL,
    -- What the commit did: added, invited, or why not.
    result TEXT,
    PRIMARY KEY (batch_id, number)
);

-- A disabled member keeps their place but can do nothing in the organization.
ALTER TABLE org_members ADD COLUMN disabled_at BIGINT;
CREATE INDEX org_members_org_created ON org_members (org_id, created_at);
