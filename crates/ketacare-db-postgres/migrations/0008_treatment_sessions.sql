-- The treatment session: one row per session (its id is the treatment encounter's record id)
-- holding where it is now; every step, check, dose, adverse event, signature and addendum is
-- an append-only event numbered per session; readings and alarms are the monitoring record.
-- A step is taken by a conditional UPDATE on (id, seq): two writers (or two servers) cannot
-- both take the next step. One active session per chair and per monitor.
CREATE TABLE treatment_sessions (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients(id),
    chair TEXT NOT NULL,
    device_id TEXT,
    order_id TEXT,
    phase TEXT NOT NULL,
    active BIGINT NOT NULL CHECK (active IN (0, 1)),
    seq BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    scheduled_at TEXT NOT NULL,
    created_by TEXT NOT NULL REFERENCES users(id),
    created_by_name TEXT NOT NULL,
    bound_at TEXT,
    baseline_sbp BIGINT,
    baseline_dbp BIGINT,
    dose_started_at TEXT,
    dose_ended_at TEXT,
    signed_at TEXT,
    signed_by_name TEXT
);
CREATE INDEX treatment_sessions_patient ON treatment_sessions(patient_id);
CREATE UNIQUE INDEX treatment_sessions_chair_active ON treatment_sessions(chair) WHERE active = 1;
CREATE UNIQUE INDEX treatment_sessions_device_active ON treatment_sessions(device_id) WHERE active = 1 AND device_id IS NOT NULL;
CREATE UNIQUE INDEX treatment_sessions_patient_active ON treatment_sessions(patient_id) WHERE active = 1;
-- A dose order is given in one session only.
CREATE UNIQUE INDEX treatment_sessions_order_given ON treatment_sessions(order_id) WHERE order_id IS NOT NULL AND dose_started_at IS NOT NULL;
CREATE FUNCTION ketacare_session_locked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'treatment_sessions is append-only';
    END IF;
    IF NEW.id IS DISTINCT FROM OLD.id OR NEW.patient_id IS DISTINCT FROM OLD.patient_id OR NEW.created_at IS DISTINCT FROM OLD.created_at
        OR NEW.created_by IS DISTINCT FROM OLD.created_by OR NEW.seq IS DISTINCT FROM OLD.seq + 1
        OR (OLD.signed_at IS NOT NULL AND (NEW.phase IS DISTINCT FROM OLD.phase OR NEW.active IS DISTINCT FROM OLD.active
            OR NEW.signed_at IS DISTINCT FROM OLD.signed_at OR NEW.signed_by_name IS DISTINCT FROM OLD.signed_by_name
            OR NEW.chair IS DISTINCT FROM OLD.chair OR NEW.device_id IS DISTINCT FROM OLD.device_id
            OR NEW.order_id IS DISTINCT FROM OLD.order_id OR NEW.bound_at IS DISTINCT FROM OLD.bound_at
            OR NEW.scheduled_at IS DISTINCT FROM OLD.scheduled_at OR NEW.baseline_sbp IS DISTINCT FROM OLD.baseline_sbp
            OR NEW.baseline_dbp IS DISTINCT FROM OLD.baseline_dbp OR NEW.dose_started_at IS DISTINCT FROM OLD.dose_started_at
            OR NEW.dose_ended_at IS DISTINCT FROM OLD.dose_ended_at)) THEN
        RAISE EXCEPTION 'a signed session is locked: only addenda may follow';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER treatment_sessions_signed BEFORE UPDATE OR DELETE ON treatment_sessions FOR EACH ROW EXECUTE FUNCTION ketacare_session_locked();

CREATE TABLE session_events (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES treatment_sessions(id),
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    at TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    by_name TEXT NOT NULL,
    phase TEXT NOT NULL,
    detail TEXT NOT NULL,
    reason TEXT,
    UNIQUE (session_id, seq)
);
CREATE TRIGGER session_events_append_only BEFORE UPDATE OR DELETE ON session_events FOR EACH ROW EXECUTE FUNCTION ketacare_refuse_change();

CREATE TABLE session_readings (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES treatment_sessions(id),
    patient_id TEXT NOT NULL REFERENCES patients(id),
    vital TEXT NOT NULL CHECK (vital IN ('systolic', 'diastolic', 'heart_rate', 'spo2', 'respiratory_rate')),
    value TEXT NOT NULL,
    observed_at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('manual', 'device', 'hl7')),
    device_id TEXT,
    message_id TEXT,
    recorded_by_name TEXT NOT NULL,
    UNIQUE (session_id, vital, observed_at, source, value)
);
CREATE INDEX session_readings_session ON session_readings(session_id, observed_at);
CREATE INDEX session_readings_latest ON session_readings(session_id, vital, observed_at);
CREATE INDEX session_readings_received ON session_readings(session_id, received_at);
CREATE TRIGGER session_readings_append_only BEFORE UPDATE OR DELETE ON session_readings FOR EACH ROW EXECUTE FUNCTION ketacare_refuse_change();

-- An alarm is raised once, acknowledged once (who, when, what was done) and cleared once
-- (its value back inside the limit after acknowledgement). At most one alarm per rule is open
-- or latched in a session at a time.
CREATE TABLE session_alarms (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES treatment_sessions(id),
    patient_id TEXT NOT NULL REFERENCES patients(id),
    rule TEXT NOT NULL,
    level TEXT NOT NULL CHECK (level IN ('advisory', 'warning', 'critical')),
    message TEXT NOT NULL,
    source TEXT NOT NULL,
    raised_at TEXT NOT NULL,
    acknowledged_at TEXT,
    acknowledged_by TEXT REFERENCES users(id),
    acknowledged_by_name TEXT,
    action_taken TEXT,
    cleared_at TEXT
);
CREATE INDEX session_alarms_session ON session_alarms(session_id);
CREATE UNIQUE INDEX session_alarms_one_live ON session_alarms(session_id, rule) WHERE cleared_at IS NULL;
CREATE FUNCTION ketacare_alarm_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'session_alarms is append-only';
    END IF;
    IF OLD.cleared_at IS NOT NULL
        OR (OLD.acknowledged_at IS NOT NULL AND (NEW.acknowledged_at IS DISTINCT FROM OLD.acknowledged_at
            OR NEW.acknowledged_by IS DISTINCT FROM OLD.acknowledged_by OR NEW.acknowledged_by_name IS DISTINCT FROM OLD.acknowledged_by_name
            OR NEW.action_taken IS DISTINCT FROM OLD.action_taken))
        OR (NEW.cleared_at IS NOT NULL AND NEW.acknowledged_at IS NULL)
        OR NEW.id IS DISTINCT FROM OLD.id OR NEW.rule IS DISTINCT FROM OLD.rule OR NEW.session_id IS DISTINCT FROM OLD.session_id
        OR NEW.patient_id IS DISTINCT FROM OLD.patient_id OR NEW.level IS DISTINCT FROM OLD.level OR NEW.source IS DISTINCT FROM OLD.source
        OR NEW.raised_at IS DISTINCT FROM OLD.raised_at OR NEW.message IS DISTINCT FROM OLD.message THEN
        RAISE EXCEPTION 'an acknowledged or cleared alarm cannot change';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER session_alarms_once BEFORE UPDATE OR DELETE ON session_alarms FOR EACH ROW EXECUTE FUNCTION ketacare_alarm_once();
