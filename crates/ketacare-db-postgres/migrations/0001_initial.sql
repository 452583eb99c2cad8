-- Ketacare schema, PostgreSQL. Kept behaviourally identical to the PostgreSQL migrations by the
-- conformance suite; both sets must have the same number of migrations.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'medical_director', 'prescriber', 'nurse', 'researcher')),
    password_hash TEXT NOT NULL,
    active BIGINT NOT NULL CHECK (active IN (0, 1)),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users(id),
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    client_addr TEXT
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    label TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL REFERENCES users(id),
    revoked_at TEXT
);

CREATE TABLE patients (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL REFERENCES users(id)
);

CREATE TABLE patient_mrns (
    mrn TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients(id)
);

CREATE TABLE patient_versions (
    version_id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients(id),
    version BIGINT NOT NULL CHECK (version >= 1),
    action TEXT NOT NULL CHECK (action IN ('create', 'amend', 'void')),
    mrn TEXT NOT NULL,
    family_name TEXT NOT NULL,
    given_name TEXT NOT NULL,
    date_of_birth TEXT NOT NULL,
    sex TEXT NOT NULL,
    contact TEXT NOT NULL,
    reason TEXT,
    recorded_by TEXT NOT NULL REFERENCES users(id),
    recorded_by_name TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    UNIQUE (patient_id, version)
);

CREATE TABLE record_versions (
    version_id TEXT PRIMARY KEY,
    record_id TEXT NOT NULL,
    version BIGINT NOT NULL CHECK (version >= 1),
    supersedes TEXT REFERENCES record_versions(version_id),
    patient_id TEXT NOT NULL REFERENCES patients(id),
    kind TEXT NOT NULL CHECK (kind IN ('diagnosis', 'medication', 'allergy', 'encounter', 'observation', 'assessment')),
    action TEXT NOT NULL CHECK (action IN ('create', 'amend', 'void')),
    body TEXT NOT NULL,
    reason TEXT,
    recorded_by TEXT NOT NULL REFERENCES users(id),
    recorded_by_name TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    UNIQUE (record_id, version)
);
CREATE INDEX record_versions_patient ON record_versions(patient_id);

CREATE TABLE audit_log (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recorded_at TEXT NOT NULL,
    user_id TEXT,
    username TEXT NOT NULL,
    role TEXT,
    session_ref TEXT,
    client_addr TEXT,
    action TEXT NOT NULL CHECK (action IN ('C', 'R', 'U', 'D', 'E')),
    outcome TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    entity_id TEXT,
    patient_id TEXT,
    detail TEXT
);
CREATE INDEX audit_log_patient ON audit_log(patient_id);
CREATE INDEX audit_log_user ON audit_log(username);

-- Append-only: clinical data and the audit trail are never updated or deleted.
CREATE FUNCTION ketacare_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER patients_append_only BEFORE UPDATE OR DELETE ON patients FOR EACH ROW EXECUTE FUNCTION ketacare_refuse_change();
CREATE TRIGGER patient_mrns_append_only BEFORE UPDATE OR DELETE ON patient_mrns FOR EACH ROW EXECUTE FUNCTION ketacare_refuse_change();
CREATE TRIGGER patient_versions_append_only BEFORE UPDATE OR DELETE ON patient_versions FOR EACH ROW EXECUTE FUNCTION ketacare_refuse_change();
CREATE TRIGGER record_versions_append_only BEFORE UPDATE OR DELETE ON record_versions FOR EACH ROW EXECUTE FUNCTION ketacare_refuse_change();
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log FOR EACH ROW EXECUTE FUNCTION ketacare_refuse_change();
