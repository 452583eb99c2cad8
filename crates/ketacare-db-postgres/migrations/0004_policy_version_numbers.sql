-- Clinic policy versions are numbered per key, so the value in force is unambiguous even when
-- two changes carry the same timestamp, and two servers changing one key at once cannot both
-- win: the second insert of a version number fails and is reported as a conflict.
ALTER TABLE policy_versions ADD COLUMN version INTEGER;
DROP TRIGGER policy_versions_append_only ON policy_versions;
UPDATE policy_versions p SET version = n.v FROM (
    SELECT id, ROW_NUMBER() OVER (PARTITION BY key ORDER BY set_at, id) AS v FROM policy_versions
) n WHERE n.id = p.id;
CREATE TRIGGER policy_versions_append_only BEFORE UPDATE OR DELETE ON policy_versions FOR EACH ROW EXECUTE FUNCTION ketacare_refuse_change();
ALTER TABLE policy_versions ALTER COLUMN version SET NOT NULL;
ALTER TABLE policy_versions ADD CONSTRAINT policy_versions_version_positive CHECK (version >= 1);
CREATE UNIQUE INDEX policy_versions_key_version ON policy_versions(key, version);
