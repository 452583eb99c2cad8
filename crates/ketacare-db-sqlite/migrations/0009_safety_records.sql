-- Long-term safety: more kinds of clinical record (lab results with the laboratory's upper limit of
-- normal, safety observations, signed benefit-risk reviews, the care plan). SQLite cannot change a
-- CHECK constraint in place, so the append-only record table is rebuilt with the same columns and
-- rows, as in 0005: the old table is renamed, the new one created under the old name, the rows
-- copied in their original order, and the old table dropped. Foreign keys are checked at commit.
PRAGMA defer_foreign_keys = ON;
DROP TRIGGER record_versions_no_update;
DROP TRIGGER record_versions_no_delete;
DROP INDEX record_versions_patient;
ALTER TABLE record_versions RENAME TO record_versions_0008;
CREATE TABLE record_versions (
    version_id TEXT PRIMARY KEY,
    record_id TEXT NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 1),
    supersedes TEXT REFERENCES record_versions(version_id),
    patient_id TEXT NOT NULL REFERENCES patients(id),
    kind TEXT NOT NULL CHECK (kind IN ('diagnosis', 'medication', 'allergy', 'encounter', 'observation', 'assessment', 'prior_treatment', 'condition', 'screening', 'treatment_plan', 'dose_order', 'lab_result', 'safety_event', 'safety_review', 'care_plan')),
    action TEXT NOT NULL CHECK (action IN ('create', 'amend', 'void')),
    body TEXT NOT NULL,
    reason TEXT,
    recorded_by TEXT NOT NULL REFERENCES users(id),
    recorded_by_name TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    UNIQUE (record_id, version)
);
INSERT INTO record_versions (version_id, record_id, version, supersedes, patient_id, kind, action, body, reason, recorded_by, recorded_by_name, recorded_at)
    SELECT version_id, record_id, version, supersedes, patient_id, kind, action, body, reason, recorded_by, recorded_by_name, recorded_at
    FROM record_versions_0008 ORDER BY rowid;
DROP TABLE record_versions_0008;
CREATE INDEX record_versions_patient ON record_versions(patient_id);
CREATE TRIGGER record_versions_no_update BEFORE UPDATE ON record_versions BEGIN SELECT RAISE(ABORT, 'record_versions is append-only'); END;
CREATE TRIGGER record_versions_no_delete BEFORE DELETE ON record_versions BEGIN SELECT RAISE(ABORT, 'record_versions is append-only'); END;
