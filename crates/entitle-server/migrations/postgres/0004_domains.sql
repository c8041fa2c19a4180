-- Domains an organization claims, proven by a DNS TXT record; Auto Approval of people
-- in them; requests to join an organization.

CREATE TABLE org_domains (
    id UUID PRIMARY KEY,
    org_id UUID NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    -- Lowercase ASCII (internationalized names in their xn-- form), no trailing dot.
    domain TEXT NOT NULL,
    -- The random value the organization publishes at _entitle-challenge.<domain>.
    challenge TEXT NOT NULL,
    created_by UUID REFERENCES accounts (id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL,
    verified_at BIGINT,
    checked_at BIGINT,
    check_error TEXT
);
CREATE UNIQUE INDEX org_domains_claim ON org_domains (org_id, domain);
-- A domain is verified for one organization at most.
CREATE UNIQUE INDEX org_domains_verified ON org_domains (domain) WHERE verified_at IS NOT NULL;
CREATE INDEX org_domains_recheck ON org_domains (checked_at) WHERE verified_at IS NOT NULL;

-- People who verify an email address in a verified domain join at once.
ALTER TABLE orgs ADD COLUMN auto_approval BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE access_requests (
    id UUID PRIMARY KEY,
    org_id UUID NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    account_id UUID NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    message TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- pending, approved, rejected
    status TEXT NOT NULL,
    decided_by UUID REFERENCES accounts (id) ON DELETE SET NULL,
    decided_at BIGINT,
    reason TEXT
);
-- One open request per person and organization.
CREATE UNIQUE INDEX access_requests_pending ON access_requests (org_id, account_id) WHERE status = 'pending';
CREATE INDEX access_requests_queue ON access_requests (org_id, status, created_at);

-- Bearer tokens of an organization's SCIM client (an identity provider), stored hashed.
CREATE TABLE scim_tokens (
    id UUID PRIMARY KEY,
    org_id UUID NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash BYTEA NOT NULL,
    created_by UUID REFERENCES accounts (id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);
CREATE UNIQUE INDEX scim_tokens_hash ON scim_tokens (token_hash);
CREATE INDEX scim_tokens_org ON scim_tokens (org_id, created_at);

-- SCIM: the identity provider's userName (the email address unless it sent another),
-- its lowercase key, unique in the organization, and its externalId.
ALTER TABLE org_members ADD COLUMN user_name TEXT NOT NULL DEFAULT '';
ALTER TABLE org_members ADD COLUMN user_name_key TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE org_members ADD COLUMN external_id TEXT;
UPDATE org_members SET user_name = email, user_name_key = email;
CREATE UNIQUE INDEX org_members_user_name ON org_members (org_id, user_name_key);

-- Who holds a role (the Fulfillment Contacts, the administrators to tell) without
-- walking every member's roles: at 100,000 members that walk cost each SCIM creation 8 ms.
-- The role leads, so that lookups of given members keep the primary key (org_id,
-- account_id, role): SQLite, without statistics, would otherwise scan this index.
CREATE INDEX org_member_roles_role ON org_member_roles (role, org_id, account_id);

-- SCIM Groups: the identity provider's own groups. An administrator may map a group to
-- a role (never Fulfillment Contact); its members then hold that role. A role a group
-- gave is marked, so that leaving the group takes back only what groups gave.
CREATE TABLE scim_groups (
    id UUID PRIMARY KEY,
    org_id UUID NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    display_name TEXT NOT NULL,
    -- Lowercase displayName, unique in the organization.
    display_key TEXT COLLATE "C" NOT NULL,
    external_id TEXT,
    role TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    -- Counts changes: the group's version (ETag) without reading its members.
    revision BIGINT NOT NULL
);
CREATE UNIQUE INDEX scim_groups_name ON scim_groups (org_id, display_key);
CREATE TABLE scim_group_members (
    group_id UUID NOT NULL REFERENCES scim_groups (id) ON DELETE CASCADE,
    org_id UUID NOT NULL,
    account_id UUID NOT NULL,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (group_id, account_id),
    FOREIGN KEY (org_id, account_id) REFERENCES org_members (org_id, account_id) ON DELETE CASCADE
);
CREATE INDEX scim_group_members_account ON scim_group_members (org_id, account_id);
ALTER TABLE org_member_roles ADD COLUMN from_group BOOLEAN NOT NULL DEFAULT FALSE;

-- Whether each member has set a password, kept by the database, so that the required
-- action "invited but not registered" counts the invited people alone (a partial index)
-- rather than joining every member to their account.
ALTER TABLE org_members ADD COLUMN registered BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE org_members SET registered = EXISTS (SELECT 1 FROM accounts a
    WHERE a.id = org_members.account_id AND a.password_hash IS NOT NULL);
CREATE INDEX org_members_invited ON org_members (org_id) WHERE NOT registered AND disabled_at IS NULL;
CREATE FUNCTION org_members_registered_on_join() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.registered := EXISTS (SELECT 1 FROM accounts a
        WHERE a.id = NEW.account_id AND a.password_hash IS NOT NULL);
    RETURN NEW;
END $$;
CREATE TRIGGER org_members_registered_on_join BEFORE INSERT ON org_members
    FOR EACH ROW EXECUTE FUNCTION org_members_registered_on_join();
CREATE FUNCTION accounts_registered() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE org_members SET registered = (NEW.password_hash IS NOT NULL) WHERE account_id = NEW.id;
    RETURN NULL;
END $$;
CREATE TRIGGER accounts_registered AFTER UPDATE OF password_hash ON accounts
    FOR EACH ROW WHEN ((OLD.password_hash IS NULL) <> (NEW.password_hash IS NULL))
    EXECUTE FUNCTION accounts_registered();
