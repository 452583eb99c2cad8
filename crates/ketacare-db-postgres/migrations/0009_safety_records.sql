-- Long-term safety: more kinds of clinical record (lab results with the laboratory's upper limit of
-- normal, safety observations, signed benefit-risk reviews, the care plan). Only the CHECK
-- constraint on the kind changes; no row is touched.
ALTER TABLE record_versions DROP CONSTRAINT record_versions_kind_check;
ALTER TABLE record_versions ADD CONSTRAINT record_versions_kind_check
    CHECK (kind IN ('diagnosis', 'medication', 'allergy', 'encounter', 'observation', 'assessment', 'prior_treatment', 'condition', 'screening', 'treatment_plan', 'dose_order', 'lab_result', 'safety_event', 'safety_review', 'care_plan'));
