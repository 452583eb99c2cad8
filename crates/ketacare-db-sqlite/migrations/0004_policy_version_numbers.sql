-- Clinic policy versions are numbered per key, so the value in force is unambiguous even when
-- two changes carry the same timestamp, and two servers changing one key at once cannot both
-- win: the second insert of a version number fails and is reported as a conflict.
ALTER TABLE policy_versions ADD COLUMN version INTEGER;
DROP TRIGGER policy_versions_no_update;
UPDATE policy_versions SET version = (
    SELECT COUNT(*) FROM policy_versions q
    WHERE q.key = policy_versions.key
      AND (q.set_at < policy_versions.set_at OR (q.set_at = policy_versions.set_at AND q.id <= policy_versions.id))
);
CREATE TRIGGER policy_versions_no_update BEFORE UPDATE ON policy_versions BEGIN SELECT RAISE(ABORT, 'policy_versions is append-only'); END;
CREATE UNIQUE INDEX policy_versions_key_version ON policy_versions(key, version);
CREATE TRIGGER policy_versions_numbered BEFORE INSERT ON policy_versions WHEN NEW.version IS NULL OR NEW.version < 1
    BEGIN SELECT RAISE(ABORT, 'a policy version needs a version number'); END;
