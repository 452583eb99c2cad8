-- Clinic policy: the medical director's choices that replace a knowledge-file default (for
-- example an instrument's response cut-off). Append-only: the value in force is the latest
-- version of each key; every change keeps who, when and why.
CREATE TABLE policy_versions (
    id TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    value TEXT,
    reason TEXT NOT NULL,
    set_by TEXT NOT NULL REFERENCES users(id),
    set_by_name TEXT NOT NULL,
    set_at TEXT NOT NULL
);
CREATE INDEX policy_versions_key ON policy_versions(key, set_at);
CREATE TRIGGER policy_versions_append_only BEFORE UPDATE OR DELETE ON policy_versions FOR EACH ROW EXECUTE FUNCTION ketacare_refuse_change();
