//! Storage for cohort analytics: the whole clinic read a page of patients at a time, so that
//! a cohort of 100,000 patients is read in bounded memory with a handful of range queries per
//! page (patients ordered by id; records, sessions, peak readings and adverse events of the
//! page's id range), never one query per patient.

use crate::{AuditCtx, DbResult};
use ketacare_domain::ids::PatientId;
use ketacare_domain::record::{PatientVersion, RecordKind, RecordVersion};

/// One treatment session as cohort analytics needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionSummary {
    /// Session id.
    pub id: String,
    /// The dose order it gave, if any.
    pub order_id: Option<String>,
    /// Phase code (e.g. `discharged`, `stopped`, `cancelled`).
    pub phase: String,
    /// When it was booked for.
    pub scheduled_at: chrono::DateTime<chrono::Utc>,
    /// When the dose started, if it did.
    pub dose_started_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Baseline blood pressure (systolic, diastolic), mmHg.
    pub baseline_bp: Option<(i64, i64)>,
    /// Highest systolic and diastolic readings of the session, mmHg.
    pub peak_systolic: Option<f64>,
    /// Highest diastolic reading.
    pub peak_diastolic: Option<f64>,
    /// Adverse events recorded in the session (the event detail, JSON).
    pub adverse_events: Vec<String>,
}

/// A patient with what cohort analytics reads of them.
#[derive(Clone, Debug)]
pub struct CohortPatient {
    /// Current demographics (voided patients are never returned).
    pub patient: PatientVersion,
    /// Current, non-voided records of the asked kinds, oldest first.
    pub records: Vec<RecordVersion>,
    /// Treatment sessions, oldest first.
    pub sessions: Vec<SessionSummary>,
}

/// Whole-clinic reads for research. Each page is audited once (entity `Cohort`), with the
/// purpose and the number of patients read.
#[crate::__async_trait]
pub trait ResearchStore {
    /// Up to `limit` current patients with ids above `after` (in id order), with their current
    /// records of `kinds` and their treatment sessions.
    async fn cohort_page(&self, ctx: &AuditCtx, kinds: &[RecordKind], after: Option<PatientId>, limit: u32)
        -> DbResult<Vec<CohortPatient>>;
}

/// Implements [`ResearchStore`] for a backend type that also uses [`crate::impl_sql_store!`].
#[macro_export]
macro_rules! impl_research_store {
    ($store:ty, $db:ty) => {
        #[$crate::__async_trait]
        impl $crate::research::ResearchStore for $store {
            async fn cohort_page(
                &self,
                ctx: &$crate::AuditCtx,
                kinds: &[::ketacare_domain::record::RecordKind],
                after: Option<::ketacare_domain::ids::PatientId>,
                limit: u32,
            ) -> $crate::DbResult<Vec<$crate::research::CohortPatient>> {
                use $crate::__sqlx::Row as _;
                let limit = limit.clamp(1, 10_000);
                let after = after.map(|p| p.to_string()).unwrap_or_default();
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                let sql = format!(
                    "SELECT {} FROM patient_versions pv WHERE pv.patient_id > $1 AND pv.version = (SELECT MAX(v2.version) FROM patient_versions v2 WHERE v2.patient_id = pv.patient_id) AND pv.action <> 'void' ORDER BY pv.patient_id LIMIT {}",
                    $crate::sql::PATIENT_COLS,
                    limit
                );
                let rows: Vec<$crate::codec::PatientRow> = $crate::__sqlx::query_as(&sql).bind(after.clone()).fetch_all(&mut *tx).await.map_err($crate::DbError::from_sqlx)?;
                let Some(last) = rows.last().map(|r| r.patient_id.clone()) else {
                    tx.commit().await.map_err($crate::DbError::from_sqlx)?;
                    return Ok(Vec::new());
                };
                let mut out: Vec<$crate::research::CohortPatient> = Vec::with_capacity(rows.len());
                let mut index = ::std::collections::HashMap::new();
                for r in rows {
                    // Voided patients are left out in SQL, so a page is short only at the end.
                    let v = r.into_domain()?;
                    index.insert(v.patient_id.to_string(), out.len());
                    out.push($crate::research::CohortPatient { patient: v, records: Vec::new(), sessions: Vec::new() });
                }
                if !kinds.is_empty() {
                    let list: Vec<String> = kinds.iter().map(|k| format!("'{}'", k.code())).collect();
                    let sql = format!(
                        "SELECT {} FROM record_versions r WHERE r.patient_id > $1 AND r.patient_id <= $2 AND r.kind IN ({}) AND r.version = (SELECT MAX(r2.version) FROM record_versions r2 WHERE r2.record_id = r.record_id) ORDER BY r.recorded_at, r.record_id",
                        $crate::sql::RECORD_COLS,
                        list.join(", ")
                    );
                    let recs: Vec<$crate::codec::RecordRow> = $crate::__sqlx::query_as(&sql).bind(after.clone()).bind(last.clone()).fetch_all(&mut *tx).await.map_err($crate::DbError::from_sqlx)?;
                    for r in recs {
                        let Some(&i) = index.get(&r.patient_id) else { continue };
                        let v = r.into_domain()?;
                        if !v.is_void() {
                            out[i].records.push(v);
                        }
                    }
                }
                let srows = $crate::__sqlx::query("SELECT id, patient_id, order_id, phase, scheduled_at, dose_started_at, baseline_sbp, baseline_dbp FROM treatment_sessions WHERE patient_id > $1 AND patient_id <= $2 ORDER BY scheduled_at, id")
                    .bind(after.clone())
                    .bind(last.clone())
                    .fetch_all(&mut *tx)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                let mut by_session = ::std::collections::HashMap::new();
                for r in srows {
                    let pid: String = r.try_get("patient_id").map_err($crate::DbError::from_sqlx)?;
                    let Some(&i) = index.get(&pid) else { continue };
                    let id: String = r.try_get("id").map_err($crate::DbError::from_sqlx)?;
                    let scheduled: String = r.try_get("scheduled_at").map_err($crate::DbError::from_sqlx)?;
                    let started: Option<String> = r.try_get("dose_started_at").map_err($crate::DbError::from_sqlx)?;
                    let sbp: Option<i64> = r.try_get("baseline_sbp").map_err($crate::DbError::from_sqlx)?;
                    let dbp: Option<i64> = r.try_get("baseline_dbp").map_err($crate::DbError::from_sqlx)?;
                    by_session.insert(id.clone(), (i, out[i].sessions.len()));
                    out[i].sessions.push($crate::research::SessionSummary {
                        id,
                        order_id: r.try_get("order_id").map_err($crate::DbError::from_sqlx)?,
                        phase: r.try_get("phase").map_err($crate::DbError::from_sqlx)?,
                        scheduled_at: $crate::codec::parse_ts(&scheduled)?,
                        dose_started_at: started.as_deref().map($crate::codec::parse_ts).transpose()?,
                        baseline_bp: sbp.zip(dbp),
                        peak_systolic: None,
                        peak_diastolic: None,
                        adverse_events: Vec::new(),
                    });
                }
                let peaks = $crate::__sqlx::query("SELECT s.id AS session_id, x.vital AS vital, MAX(CAST(x.value AS DOUBLE PRECISION)) AS peak FROM treatment_sessions s JOIN session_readings x ON x.session_id = s.id WHERE s.patient_id > $1 AND s.patient_id <= $2 AND x.vital IN ('systolic', 'diastolic') GROUP BY s.id, x.vital")
                    .bind(after.clone())
                    .bind(last.clone())
                    .fetch_all(&mut *tx)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                for r in peaks {
                    let sid: String = r.try_get("session_id").map_err($crate::DbError::from_sqlx)?;
                    let vital: String = r.try_get("vital").map_err($crate::DbError::from_sqlx)?;
                    let peak: Option<f64> = r.try_get("peak").map_err($crate::DbError::from_sqlx)?;
                    if let Some(&(i, j)) = by_session.get(&sid) {
                        if vital == "systolic" {
                            out[i].sessions[j].peak_systolic = peak;
                        } else {
                            out[i].sessions[j].peak_diastolic = peak;
                        }
                    }
                }
                let aes = $crate::__sqlx::query("SELECT e.session_id AS session_id, e.detail AS detail FROM treatment_sessions s JOIN session_events e ON e.session_id = s.id WHERE s.patient_id > $1 AND s.patient_id <= $2 AND e.kind = 'adverse_event' ORDER BY e.session_id, e.seq")
                    .bind(after)
                    .bind(last)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                for r in aes {
                    let sid: String = r.try_get("session_id").map_err($crate::DbError::from_sqlx)?;
                    let detail: String = r.try_get("detail").map_err($crate::DbError::from_sqlx)?;
                    if let Some(&(i, j)) = by_session.get(&sid) {
                        out[i].sessions[j].adverse_events.push(detail);
                    }
                }
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Read, ::ketacare_domain::audit::AuditOutcome::Success, "Cohort", None, None, Some(format!("{} patients", out.len())));
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)?;
                Ok(out)
            }
        }
    };
}
