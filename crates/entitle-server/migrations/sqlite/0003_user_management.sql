-- User management: staged bulk registration from CSV files.

CREATE TABLE import_batches (
    id BLOB PRIMARY KEY,
    org_id BLOB NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    file_name TEXT NOT NULL,
    created_by BLOB REFERENCES accounts (id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL,
    committed_by BLOB REFERENCES accounts (id) ON DELETE SET NULL,
    committed_at BIGINT
);
CREATE INDEX import_batches_org ON import_batches (org_id, created_at);

CREATE TABLE import_rows (
    batch_id BLOB NOT NULL REFERENCES import_batches (id) ON DELETE CASCADE,
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
    removed INTEGER NOT NULL,
    -- What the commit did: added, invited, or why not.
    result TEXT,
    PRIMARY KEY (batch_id, number)
);

-- A disabled member keeps their place but can do nothing in the organization.
ALTER TABLE org_members ADD COLUMN disabled_at BIGINT;
CREATE INDEX org_members_org_created ON org_members (org_id, created_at, account_id);

-- Search and sort keys copied from the account, so that listing and searching an
-- organization of 100,000 members walks one index: the email address, its domain,
-- "first last" and "last first", lowercased by the server. Prefix searches are range
-- scans, so the keys compare bytewise.
ALTER TABLE org_members ADD COLUMN email TEXT NOT NULL DEFAULT '';
ALTER TABLE org_members ADD COLUMN email_domain TEXT NOT NULL DEFAULT '';
ALTER TABLE org_members ADD COLUMN given_key TEXT NOT NULL DEFAULT '';
ALTER TABLE org_members ADD COLUMN family_key TEXT NOT NULL DEFAULT '';
UPDATE org_members SET
    email = (SELECT a.email FROM accounts a WHERE a.id = org_members.account_id),
    email_domain = (SELECT substr(a.email, instr(a.email, '@') + 1) FROM accounts a WHERE a.id = org_members.account_id),
    given_key = (SELECT lower(a.first_name || ' ' || a.last_name) FROM accounts a WHERE a.id = org_members.account_id),
    family_key = (SELECT lower(a.last_name || ' ' || a.first_name) FROM accounts a WHERE a.id = org_members.account_id);
CREATE INDEX org_members_org_email ON org_members (org_id, email, account_id);
CREATE INDEX org_members_org_domain ON org_members (org_id, email_domain);
CREATE INDEX org_members_org_given ON org_members (org_id, given_key, account_id);
CREATE INDEX org_members_org_family ON org_members (org_id, family_key, account_id);

-- The member count of each organization, kept by the database itself (cascades from
-- erased accounts included), so the member list's total is not a count of 100,000 rows.
ALTER TABLE orgs ADD COLUMN member_count BIGINT NOT NULL DEFAULT 0;
UPDATE orgs SET member_count = (SELECT COUNT(*) FROM org_members m WHERE m.org_id = orgs.id);
CREATE TRIGGER org_members_counted_in AFTER INSERT ON org_members
BEGIN
    UPDATE orgs SET member_count = member_count + 1 WHERE id = NEW.org_id;
END;
CREATE TRIGGER org_members_counted_out AFTER DELETE ON org_members
BEGIN
    UPDATE orgs SET member_count = member_count - 1 WHERE id = OLD.org_id;
END;
