-- Care teams and emergency ("break-glass") access.
-- Under the clinic policy access.chart_scope = care_team, a nurse or prescriber opens the charts
-- of the patients whose care team they are on; any other chart only through an emergency access
-- with a reason, which lasts a fixed time and which the medical director reviews.

-- A membership is added once and removed once (with who, when and why); never deleted.
CREATE TABLE care_team_members (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    added_by TEXT NOT NULL,
    added_by_name TEXT NOT NULL,
    added_at TEXT NOT NULL,
    removed_by TEXT,
    removed_by_name TEXT,
    removed_at TEXT,
    removal_reason TEXT
);
CREATE UNIQUE INDEX care_team_members_current ON care_team_members(patient_id, user_id) WHERE removed_at IS NULL;
CREATE INDEX care_team_members_user ON care_team_members(user_id) WHERE removed_at IS NULL;
CREATE TRIGGER care_team_members_no_delete BEFORE DELETE ON care_team_members BEGIN SELECT RAISE(ABORT, 'care_team_members is append-only'); END;
CREATE TRIGGER care_team_members_once BEFORE UPDATE ON care_team_members
    WHEN OLD.removed_at IS NOT NULL OR NEW.id <> OLD.id OR NEW.added_by_name <> OLD.added_by_name OR NEW.patient_id <> OLD.patient_id OR NEW.user_id <> OLD.user_id OR NEW.added_at <> OLD.added_at OR NEW.added_by <> OLD.added_by
    BEGIN SELECT RAISE(ABORT, 'a removed care-team membership cannot change'); END;

-- An emergency access: granted with a reason until expires_at; reviewed once by the medical
-- director; never deleted.
CREATE TABLE emergency_access (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    username TEXT NOT NULL,
    reason TEXT NOT NULL,
    granted_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    reviewed_by TEXT,
    reviewed_by_name TEXT,
    reviewed_at TEXT,
    review_note TEXT
);
CREATE INDEX emergency_access_user ON emergency_access(user_id, expires_at);
CREATE INDEX emergency_access_unreviewed ON emergency_access(granted_at) WHERE reviewed_at IS NULL;
CREATE TRIGGER emergency_access_no_delete BEFORE DELETE ON emergency_access BEGIN SELECT RAISE(ABORT, 'emergency_access is append-only'); END;
CREATE TRIGGER emergency_access_once BEFORE UPDATE ON emergency_access
    WHEN OLD.reviewed_at IS NOT NULL OR NEW.id <> OLD.id OR NEW.username <> OLD.username OR NEW.patient_id <> OLD.patient_id OR NEW.user_id <> OLD.user_id OR NEW.reason <> OLD.reason OR NEW.granted_at <> OLD.granted_at OR NEW.expires_at <> OLD.expires_at
    BEGIN SELECT RAISE(ABORT, 'a reviewed emergency access cannot change'); END;
