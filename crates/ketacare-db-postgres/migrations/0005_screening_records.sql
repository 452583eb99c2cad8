-- Screening and dosing: more kinds of clinical record (prior treatments, comorbid conditions, signed
-- screening verdicts, treatment plans, dose orders). Only the CHECK constraint on the kind changes; no row is touched.
ALTER TABLE record_versions DROP CONSTRAINT record_versions_kind_check;
ALTER TABLE record_versions ADD CONSTRAINT record_versions_kind_check
    CHECK (kind IN ('diagnosis', 'medication', 'allergy', 'encounter', 'observation', 'assessment', 'prior_treatment', 'condition', 'screening', 'treatment_plan', 'dose_order'));
