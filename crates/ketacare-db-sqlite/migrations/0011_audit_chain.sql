-- Tamper-evident audit trail: a SHA-256 link per audit entry (sealed in sequence order by the
-- server) and signed checkpoints of the chain's head. Both are append-only like audit_log.
CREATE TABLE audit_chain (
    seq INTEGER PRIMARY KEY,
    link TEXT NOT NULL,
    sealed_at TEXT NOT NULL
);
CREATE TABLE audit_checkpoints (
    seq INTEGER PRIMARY KEY,
    head TEXT NOT NULL,
    signed_at TEXT NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE TRIGGER audit_chain_no_update BEFORE UPDATE ON audit_chain BEGIN SELECT RAISE(ABORT, 'audit_chain is append-only'); END;
CREATE TRIGGER audit_chain_no_delete BEFORE DELETE ON audit_chain BEGIN SELECT RAISE(ABORT, 'audit_chain is append-only'); END;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
