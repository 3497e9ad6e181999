-- pgbench's built-in TPC-B-like transaction, preceded (once per client) by pg_prewarm of the
-- pgbench tables and indexes, so the client's own backend reads them into shared_buffers.
-- Run with -D scale=N -D warmed=0 (and -n: no vacuum before the run). pgbench variables persist across a
-- client's transactions, so :warmed is 1 only in the first one.
\set warmed :warmed + 1
\if :warmed = 1
SELECT pg_prewarm('pgbench_accounts'), pg_prewarm('pgbench_accounts_pkey'),
       pg_prewarm('pgbench_tellers'), pg_prewarm('pgbench_tellers_pkey'),
       pg_prewarm('pgbench_branches'), pg_prewarm('pgbench_branches_pkey'),
       pg_prewarm('pgbench_history');
\else
\set aid random(1, 100000 * :scale)
\set bid random(1, 1 * :scale)
\set tid random(1, 10 * :scale)
\set delta random(-5000, 5000)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid;
UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = :bid;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);
END;
\endif
