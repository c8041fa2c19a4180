-- The admin portal's usability: what the member page, the staged preview and the
-- access-request queue show.

-- When each person last signed in, shown to their administrators.
ALTER TABLE accounts ADD COLUMN last_sign_in_at BIGINT;

-- What committing did to each row, as a code the pages put in words.
UPDATE import_rows SET result = CASE result
    WHEN 'added; invitation sent' THEN 'added_and_invited'
    WHEN 'removed before committing' THEN 'removed'
    WHEN 'not added' THEN 'not_added'
    ELSE result END
WHERE result IS NOT NULL;

-- How an access request came: from a person of a verified domain choosing the
-- organization, or naming one of its administrators (whose address is kept).
ALTER TABLE access_requests ADD COLUMN via TEXT NOT NULL DEFAULT 'domain';
ALTER TABLE access_requests ADD COLUMN named_administrator TEXT;
-- The roles an approval gave besides User.
ALTER TABLE access_requests ADD COLUMN roles TEXT NOT NULL DEFAULT '';

-- The disabled members of an organization, counted for the member list's filters without
-- reading every member (the invited ones have org_members_invited).
CREATE INDEX org_members_disabled ON org_members (org_id) WHERE disabled_at IS NOT NULL;
