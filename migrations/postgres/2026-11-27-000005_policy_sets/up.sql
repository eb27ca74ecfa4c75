-- Role policy sets (issue 5). The same table on both backends.

-- Each set loaded with `pramaan policy reload`, the admin API or SIGHUP, whole: `files` is a
-- JSON object of file name → text (the schema and the .cedar files), validated before it was
-- written. The row with the highest seq is the set every instance runs; each instance polls
-- for a newer one every second. Rows are never changed, so the history says who loaded what,
-- when and why (the audit trail records the same).
CREATE TABLE policy_sets (
    seq       BIGINT PRIMARY KEY,
    version   TEXT NOT NULL,
    files     TEXT NOT NULL,
    loaded_by TEXT NOT NULL,
    reason    TEXT NOT NULL,
    loaded_at TIMESTAMP NOT NULL
);
