-- Changes to the drug library need two people: one proposes (with a reason), another approves
-- or rejects. An approval writes the policy version in the same transaction. A proposal is
-- decided once and never deleted; the proposer cannot decide their own.
CREATE TABLE policy_proposals (
    id TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    value TEXT,
    reason TEXT NOT NULL,
    proposed_by TEXT NOT NULL REFERENCES users(id),
    proposed_by_name TEXT NOT NULL,
    proposed_at TEXT NOT NULL,
    decided_by TEXT REFERENCES users(id),
    decided_by_name TEXT,
    decided_at TEXT,
    decision TEXT CHECK (decision IN ('approved', 'rejected')),
    decision_reason TEXT,
    CHECK (decided_by IS NULL OR decided_by <> proposed_by)
);
CREATE INDEX policy_proposals_open ON policy_proposals(decided_at);
CREATE TRIGGER policy_proposals_no_delete BEFORE DELETE ON policy_proposals BEGIN SELECT RAISE(ABORT, 'policy_proposals is append-only'); END;
CREATE TRIGGER policy_proposals_once BEFORE UPDATE ON policy_proposals
    WHEN OLD.decided_at IS NOT NULL OR NEW.key <> OLD.key OR NEW.value IS NOT OLD.value OR NEW.proposed_by <> OLD.proposed_by OR NEW.reason <> OLD.reason
    BEGIN SELECT RAISE(ABORT, 'a decided proposal cannot change'); END;
