-- A pool's lapsed holds are found through seat_holds_expiry, which holds only the few the
-- background reclaim has not freed yet; machines through seat_holds_machine. The pool's
-- index by expiry went: PostgreSQL, with statistics older than a quick growth of the
-- table, chose it to look machines up and walked every hold of the pool.
DROP INDEX seat_holds_pool_expiry;
