-- Every evaluation of a dose against the drug library (accepted, soft breach, overridden,
-- rejected by a hard limit, double-check mismatch), kept like an infusion pump's log for the
-- quality report. Append-only.
CREATE TABLE dose_evaluations (
    id TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    username TEXT NOT NULL,
    patient_id TEXT REFERENCES patients(id),
    order_id TEXT,
    drug TEXT NOT NULL,
    route TEXT NOT NULL CHECK (route IN ('iv', 'sc', 'im', 'in')),
    dose_mg TEXT NOT NULL,
    mg_per_kg TEXT,
    outcome TEXT NOT NULL CHECK (outcome IN ('accepted', 'soft_breach', 'overridden', 'rejected', 'check_mismatch')),
    breaches TEXT NOT NULL,
    reason TEXT,
    second_username TEXT
);
CREATE INDEX dose_evaluations_at ON dose_evaluations(at);
CREATE TRIGGER dose_evaluations_no_update BEFORE UPDATE ON dose_evaluations BEGIN SELECT RAISE(ABORT, 'dose_evaluations is append-only'); END;
CREATE TRIGGER dose_evaluations_no_delete BEFORE DELETE ON dose_evaluations BEGIN SELECT RAISE(ABORT, 'dose_evaluations is append-only'); END;
