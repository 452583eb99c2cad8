-- Measurement-based care: questionnaire requests (single-use patient links), safety alerts
-- raised by urgent flags, and assessment schedules. Administrations themselves are clinical
-- records (record_versions, kind 'assessment').

CREATE TABLE questionnaire_requests (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients(id),
    instrument TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    session_record_id TEXT,
    timepoint TEXT,
    sent_by TEXT NOT NULL REFERENCES users(id),
    sent_by_name TEXT NOT NULL,
    sent_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    completed_at TEXT,
    response_record_id TEXT,
    cancelled_at TEXT,
    cancelled_by TEXT REFERENCES users(id)
);
CREATE INDEX questionnaire_requests_patient ON questionnaire_requests(patient_id);

CREATE TABLE safety_alerts (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients(id),
    code TEXT NOT NULL,
    label TEXT NOT NULL,
    source_record_id TEXT NOT NULL,
    raised_at TEXT NOT NULL,
    assigned_to TEXT REFERENCES users(id),
    acknowledged_by TEXT REFERENCES users(id),
    acknowledged_by_name TEXT,
    acknowledged_at TEXT,
    action_taken TEXT
);
CREATE INDEX safety_alerts_patient ON safety_alerts(patient_id);
CREATE INDEX safety_alerts_open ON safety_alerts(acknowledged_at);

CREATE TABLE assessment_schedules (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients(id),
    instrument TEXT NOT NULL,
    anchor TEXT NOT NULL CHECK (anchor IN ('session', 'calendar')),
    timepoints TEXT,
    interval_days INTEGER,
    start_date TEXT,
    created_by TEXT NOT NULL REFERENCES users(id),
    created_by_name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    ended_at TEXT,
    ended_by TEXT REFERENCES users(id)
);
CREATE INDEX assessment_schedules_patient ON assessment_schedules(patient_id);

-- A request is completed or cancelled once; an alert is acknowledged once; a schedule is
-- ended once. Nothing is deleted.
CREATE TRIGGER questionnaire_requests_no_delete BEFORE DELETE ON questionnaire_requests BEGIN SELECT RAISE(ABORT, 'questionnaire_requests is append-only'); END;
CREATE TRIGGER questionnaire_requests_once BEFORE UPDATE ON questionnaire_requests
    WHEN OLD.completed_at IS NOT NULL OR OLD.cancelled_at IS NOT NULL OR NEW.token_hash <> OLD.token_hash OR NEW.patient_id <> OLD.patient_id
    BEGIN SELECT RAISE(ABORT, 'a completed or cancelled request cannot change'); END;
CREATE TRIGGER safety_alerts_no_delete BEFORE DELETE ON safety_alerts BEGIN SELECT RAISE(ABORT, 'safety_alerts is append-only'); END;
CREATE TRIGGER safety_alerts_once BEFORE UPDATE ON safety_alerts
    WHEN OLD.acknowledged_at IS NOT NULL OR NEW.code <> OLD.code OR NEW.patient_id <> OLD.patient_id OR NEW.raised_at <> OLD.raised_at
    BEGIN SELECT RAISE(ABORT, 'an acknowledged alert cannot change'); END;
CREATE TRIGGER assessment_schedules_no_delete BEFORE DELETE ON assessment_schedules BEGIN SELECT RAISE(ABORT, 'assessment_schedules is append-only'); END;
CREATE TRIGGER assessment_schedules_once BEFORE UPDATE ON assessment_schedules
    WHEN OLD.ended_at IS NOT NULL OR NEW.instrument <> OLD.instrument OR NEW.patient_id <> OLD.patient_id
    BEGIN SELECT RAISE(ABORT, 'an ended schedule cannot change'); END;
