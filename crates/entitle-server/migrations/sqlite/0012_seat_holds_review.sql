-- When the background reclaim next looks at a hold: never later than its end. A
-- heartbeat moves only expires_at, which no index holds, so its update stays on the
-- row's page (a HOT update) instead of adding an entry to every index; the reclaim finds
-- holds through review_at, frees those whose end has passed and moves review_at of the
-- others to their end. Indexing expires_at itself made every heartbeat rewrite all three
-- indexes, and the table and its indexes swelled under steady heartbeats.
ALTER TABLE seat_holds ADD COLUMN review_at BIGINT NOT NULL DEFAULT 0;
UPDATE seat_holds SET review_at = expires_at;
DROP INDEX seat_holds_expiry;
CREATE INDEX seat_holds_review ON seat_holds (review_at);
