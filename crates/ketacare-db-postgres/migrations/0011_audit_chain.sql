-- Tamper-evident audit trail: a SHA-256 link per audit entry (sealed in sequence order by the
-- server) and signed checkpoints of the chain's head. Both are append-only like audit_log.
CREATE TABLE audit_chain (
    seq BIGINT PRIMARY KEY,
    link TEXT NOT NULL,
    sealed_at TEXT NOT NULL
);
CREATE TABLE audit_checkpoints (
    seq BIGINT PRIMARY KEY,
    head TEXT NOT NULL,
    signed_at TEXT NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE TRIGGER audit_chain_append_only BEFORE UPDATE OR DELETE ON audit_chain FOR EACH ROW EXECUTE FUNCTION ketacare_refuse_change();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints FOR EACH ROW EXECUTE FUNCTION ketacare_refuse_change();
