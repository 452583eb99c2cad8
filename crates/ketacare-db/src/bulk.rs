//! Bulk writes that must be all-or-nothing: importing a patient with their records from
//! another system in one transaction.

use crate::{AuditCtx, DbResult};
use ketacare_domain::record::{PatientVersion, RecordVersion};

/// All-or-nothing writes of many rows.
#[crate::__async_trait]
pub trait BulkStore {
    /// Imports a patient and their records in one write transaction: `patient` is a new
    /// registration (version 1: the patient row, the MRN claim, the demographics), an amended
    /// demographics version (version 2 or later, on top of the current one), or `None` when the
    /// demographics stay as they are. Every record version is appended with the same checks as
    /// [`crate::Store::append_record_versions`], and belongs to that patient. Each row is
    /// audited, and one `Execute` row on entity `Bundle` sums the import up. If anything fails
    /// (a taken MRN, a concurrent amendment, a record of another patient), nothing is written.
    async fn import_patient(&self, ctx: &AuditCtx, patient: Option<&PatientVersion>, records: &[RecordVersion]) -> DbResult<()>;
}

/// Implements [`BulkStore`] for a backend type that also uses [`crate::impl_sql_store!`].
#[macro_export]
macro_rules! impl_bulk_store {
    ($store:ty, $db:ty) => {
        #[$crate::__async_trait]
        impl $crate::bulk::BulkStore for $store {
            async fn import_patient(
                &self,
                ctx: &$crate::AuditCtx,
                patient: Option<&::ketacare_domain::record::PatientVersion>,
                records: &[::ketacare_domain::record::RecordVersion],
            ) -> $crate::DbResult<()> {
                use ::ketacare_domain::audit::{AuditAction, AuditOutcome};
                use ::ketacare_domain::record::VersionAction;
                let patient_id = match (patient, records.first()) {
                    (Some(p), _) => p.patient_id,
                    (None, Some(r)) => r.patient_id,
                    (None, None) => return Ok(()),
                };
                if records.iter().any(|r| r.patient_id != patient_id) {
                    return Err($crate::DbError::Conflict("every imported record must belong to the imported patient".into()));
                }
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                if let Some(v) = patient {
                    if v.version == 1 {
                        if v.action != VersionAction::Create {
                            return Err($crate::DbError::Conflict("a registration is version 1 with action create".into()));
                        }
                        $crate::__sqlx::query("INSERT INTO patients (id, created_at, created_by) VALUES ($1, $2, $3)")
                            .bind(v.patient_id.to_string())
                            .bind($crate::codec::ts(v.provenance.recorded_at))
                            .bind(v.provenance.user_id.to_string())
                            .execute(&mut *tx)
                            .await
                            .map_err($crate::DbError::from_sqlx)?;
                        Self::__claim_mrn(&mut *tx, v.demographics.mrn.as_str(), v.patient_id).await?;
                        Self::__insert_patient_version(&mut *tx, v).await?;
                        let e = $crate::sql::event(
                            ctx,
                            AuditAction::Create,
                            AuditOutcome::Success,
                            "Patient",
                            Some(v.patient_id.to_string()),
                            Some(v.patient_id),
                            Some("imported".into()),
                        );
                        Self::__audit(&mut *tx, &e).await?;
                    } else {
                        if v.action != VersionAction::Amend || v.reason.is_none() {
                            return Err($crate::DbError::Conflict(
                                "an imported change of demographics is an amendment with a reason".into(),
                            ));
                        }
                        let prev: Option<(String,)> =
                            $crate::__sqlx::query_as("SELECT action FROM patient_versions WHERE patient_id = $1 AND version = $2")
                                .bind(v.patient_id.to_string())
                                .bind(i64::from(v.version) - 1)
                                .fetch_optional(&mut *tx)
                                .await
                                .map_err($crate::DbError::from_sqlx)?;
                        match prev {
                            None => {
                                return Err($crate::DbError::Conflict(
                                    "the patient record changed since it was opened; reload and try again".into(),
                                ))
                            }
                            Some((a,)) if a == "void" => return Err($crate::DbError::Conflict("the patient record is voided".into())),
                            Some(_) => {}
                        }
                        Self::__claim_mrn(&mut *tx, v.demographics.mrn.as_str(), v.patient_id).await?;
                        Self::__insert_patient_version(&mut *tx, v).await?;
                        let e = $crate::sql::event(
                            ctx,
                            AuditAction::Update,
                            AuditOutcome::Success,
                            "Patient",
                            Some(v.patient_id.to_string()),
                            Some(v.patient_id),
                            Some(format!("version={}; imported", v.version)),
                        );
                        Self::__audit(&mut *tx, &e).await?;
                    }
                }
                for r in records {
                    Self::__insert_record_version(&mut *tx, r).await?;
                    Self::__audit(&mut *tx, &Self::__record_event(ctx, r)).await?;
                }
                let detail = format!("FHIR import: {} demographics, {} records", usize::from(patient.is_some()), records.len());
                let e =
                    $crate::sql::event(ctx, AuditAction::Execute, AuditOutcome::Success, "Bundle", None, Some(patient_id), Some(detail));
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)
            }
        }
    };
}
