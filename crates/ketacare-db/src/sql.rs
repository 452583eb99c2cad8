//! The SQL both backends run, written once.
//!
//! [`impl_sql_store!`](crate::impl_sql_store) expands to `impl Store for $store` with the
//! concrete sqlx database type, so the same statements are compiled against SQLite and
//! PostgreSQL. The statements use only what both dialects accept: `$n` placeholders, text ids
//! and timestamps, `BIGINT`-compatible integers, `||`, `lower()`, `LIKE … ESCAPE`.
//! The implementing type provides `pool`, `begin_write()` (SQLite starts `BEGIN IMMEDIATE`),
//! `run_migrations()` and `BACKEND`.

use crate::AuditCtx;
use ketacare_domain::audit::{AuditAction, AuditEvent, AuditOutcome};
use ketacare_domain::ids::PatientId;

/// Columns of `patient_versions`, in [`crate::codec::PatientRow`] order.
pub const PATIENT_COLS: &str = "pv.version_id, pv.patient_id, pv.version, pv.action, pv.mrn, pv.family_name, pv.given_name, pv.date_of_birth, pv.sex, pv.contact, pv.reason, pv.recorded_by, pv.recorded_by_name, pv.recorded_at";

/// Columns of `record_versions`.
pub const RECORD_COLS: &str =
    "r.version_id, r.record_id, r.version, r.supersedes, r.patient_id, r.kind, r.action, r.body, r.reason, r.recorded_by, r.recorded_by_name, r.recorded_at";

/// Columns of `users`.
pub const USER_COLS: &str = "id, username, display_name, role, password_hash, active, created_at, failed_logins, locked_until";

/// Columns of `sessions`.
pub const SESSION_COLS: &str = "id, token_hash, user_id, csrf_token, created_at, last_seen_at, expires_at, client_addr";

/// Columns of `api_tokens`.
pub const TOKEN_COLS: &str = "id, user_id, label, token_hash, created_at, created_by, revoked_at";

/// Columns of `questionnaire_requests`, in [`crate::codec::RequestRow`] order.
pub const REQUEST_COLS: &str = "id, patient_id, instrument, token_hash, session_record_id, timepoint, sent_by, sent_by_name, sent_at, expires_at, completed_at, response_record_id, cancelled_at";

/// Columns of `safety_alerts`.
pub const ALERT_COLS: &str = "id, patient_id, code, label, source_record_id, raised_at, assigned_to, acknowledged_by, acknowledged_by_name, acknowledged_at, action_taken";

/// Columns of `assessment_schedules`.
pub const SCHEDULE_COLS: &str =
    "id, patient_id, instrument, anchor, timepoints, interval_days, start_date, created_by_name, created_at, ended_at";

/// Columns of `audit_log`.
pub const AUDIT_COLS: &str =
    "seq, recorded_at, user_id, username, role, session_ref, client_addr, action, outcome, entity_type, entity_id, patient_id, detail";

/// Insert statement for an audit row.
pub const INSERT_AUDIT: &str = "INSERT INTO audit_log (recorded_at, user_id, username, role, session_ref, client_addr, action, outcome, entity_type, entity_id, patient_id, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";

/// Builds the audit event for a store call.
pub fn event(
    ctx: &AuditCtx,
    action: AuditAction,
    outcome: AuditOutcome,
    entity_type: &str,
    entity_id: Option<String>,
    patient_id: Option<PatientId>,
    detail: Option<String>,
) -> AuditEvent {
    let detail = match detail {
        Some(d) => Some(format!("purpose={}; {d}", ctx.purpose)),
        None => Some(format!("purpose={}", ctx.purpose)),
    };
    AuditEvent {
        recorded_at: ctx.at,
        actor: ctx.actor.clone(),
        action,
        outcome,
        entity_type: entity_type.to_owned(),
        entity_id,
        patient_id,
        detail,
    }
}

/// Implements [`crate::Store`] for a backend type. See the module docs.
#[macro_export]
macro_rules! impl_sql_store {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Runs `sql` (a SELECT or an UPDATE … RETURNING of one challenge, open at `$2` with
            /// attempts below `$3`) and reads the row.
            async fn __open_challenge(
                &self,
                sql: &str,
                token_hash: &str,
                now: ::chrono::DateTime<::chrono::Utc>,
                max_attempts: u32,
            ) -> $crate::DbResult<Option<$crate::LoginChallenge>> {
                let row: Option<(String, String, String, Option<String>, String, String, i64)> = $crate::__sqlx::query_as(sql)
                    .bind(token_hash.to_owned())
                    .bind($crate::codec::ts(now))
                    .bind(i64::from(max_attempts))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                $crate::sql::challenge_from_row(row)
            }

            async fn __replace_recovery_codes(
                conn: &mut <$db as $crate::__sqlx::Database>::Connection,
                user: ::ketacare_domain::ids::UserId,
                hashes: &[String],
                at: ::chrono::DateTime<::chrono::Utc>,
            ) -> $crate::DbResult<()> {
                $crate::__sqlx::query("DELETE FROM mfa_recovery_codes WHERE user_id = $1").bind(user.to_string()).execute(&mut *conn).await.map_err($crate::DbError::from_sqlx)?;
                for h in hashes {
                    $crate::__sqlx::query("INSERT INTO mfa_recovery_codes (user_id, code_hash, created_at, used_at) VALUES ($1, $2, $3, NULL)")
                        .bind(user.to_string())
                        .bind(h.clone())
                        .bind($crate::codec::ts(at))
                        .execute(&mut *conn)
                        .await
                        .map_err($crate::DbError::from_sqlx)?;
                }
                Ok(())
            }

            /// Puts a clinician on a care team, audited, inside the caller's transaction.
            async fn __insert_member(
                conn: &mut <$db as $crate::__sqlx::Database>::Connection,
                ctx: &$crate::AuditCtx,
                m: &$crate::CareTeamMember,
            ) -> $crate::DbResult<()> {
                $crate::__sqlx::query("INSERT INTO care_team_members (id, patient_id, user_id, added_by, added_by_name, added_at) VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind(m.id.to_string())
                    .bind(m.patient_id.to_string())
                    .bind(m.user_id.to_string())
                    .bind(m.added_by.to_string())
                    .bind(m.added_by_name.clone())
                    .bind($crate::codec::ts(m.added_at))
                    .execute(&mut *conn)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Create, ::ketacare_domain::audit::AuditOutcome::Success, "CareTeam", Some(m.user_id.to_string()), Some(m.patient_id), Some("member added".into()));
                Self::__audit(&mut *conn, &e).await
            }

            /// Current, non-voided patients matching `query`, among those of `scope`'s user's
            /// care teams and emergency accesses in force at its time when given (the same
            /// conditions as `care_team_patients` and `active_emergency_access`); one audit entry.
            async fn __search_patients(
                &self,
                ctx: &$crate::AuditCtx,
                query: &str,
                scope: Option<(::ketacare_domain::ids::UserId, ::chrono::DateTime<::chrono::Utc>)>,
                page: $crate::Page,
            ) -> $crate::DbResult<Vec<::ketacare_domain::record::PatientVersion>> {
                let among = if scope.is_some() {
                    " AND (pv.patient_id IN (SELECT patient_id FROM care_team_members WHERE user_id = $2 AND removed_at IS NULL) OR pv.patient_id IN (SELECT patient_id FROM emergency_access WHERE user_id = $2 AND granted_at <= $3 AND expires_at > $3))"
                } else {
                    ""
                };
                let sql = format!(
                    "SELECT {} FROM patient_versions pv WHERE pv.version = (SELECT MAX(v2.version) FROM patient_versions v2 WHERE v2.patient_id = pv.patient_id) AND pv.action <> 'void' AND (lower(pv.family_name || ' ' || pv.given_name) LIKE $1 ESCAPE '\\' OR lower(pv.given_name || ' ' || pv.family_name) LIKE $1 ESCAPE '\\' OR lower(pv.mrn) LIKE $1 ESCAPE '\\'){among} ORDER BY lower(pv.family_name), lower(pv.given_name), pv.patient_id LIMIT {} OFFSET {}",
                    $crate::sql::PATIENT_COLS,
                    page.limit.clamp(1, 500),
                    page.offset.max(0)
                );
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                let mut q = $crate::__sqlx::query_as::<_, $crate::codec::PatientRow>(&sql).bind($crate::codec::like_pattern(query));
                if let Some((user, now)) = scope {
                    q = q.bind(user.to_string()).bind($crate::codec::ts(now));
                }
                let rows: Vec<$crate::codec::PatientRow> = q.fetch_all(&mut *tx).await.map_err($crate::DbError::from_sqlx)?;
                let detail = format!(
                    "patient search{}, {} results, query length {}",
                    if scope.is_some() { " in the care-team scope" } else { "" },
                    rows.len(),
                    query.trim().chars().count()
                );
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Execute, ::ketacare_domain::audit::AuditOutcome::Success, "Patient", None, None, Some(detail));
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)?;
                rows.into_iter().map(|r| r.into_domain()).collect()
            }

            async fn __audit(
                conn: &mut <$db as $crate::__sqlx::Database>::Connection,
                e: &::ketacare_domain::audit::AuditEvent,
            ) -> $crate::DbResult<()> {
                $crate::__sqlx::query($crate::sql::INSERT_AUDIT)
                    .bind($crate::codec::ts(e.recorded_at))
                    .bind(e.actor.user_id.map(|u| u.to_string()))
                    .bind(e.actor.username.clone())
                    .bind(e.actor.role.map(|r| r.code().to_owned()))
                    .bind(e.actor.session_ref.clone())
                    .bind(e.actor.client_addr.clone())
                    .bind(e.action.code())
                    .bind(e.outcome.code())
                    .bind(e.entity_type.clone())
                    .bind(e.entity_id.clone())
                    .bind(e.patient_id.map(|p| p.to_string()))
                    .bind(e.detail.clone())
                    .execute(&mut *conn)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                Ok(())
            }

            async fn __insert_patient_version(
                conn: &mut <$db as $crate::__sqlx::Database>::Connection,
                v: &::ketacare_domain::record::PatientVersion,
            ) -> $crate::DbResult<()> {
                let d = &v.demographics;
                $crate::__sqlx::query("INSERT INTO patient_versions (version_id, patient_id, version, action, mrn, family_name, given_name, date_of_birth, sex, contact, reason, recorded_by, recorded_by_name, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)")
                    .bind(v.version_id.to_string())
                    .bind(v.patient_id.to_string())
                    .bind(i64::from(v.version))
                    .bind(v.action.code())
                    .bind(d.mrn.as_str().to_owned())
                    .bind(d.name.family().to_owned())
                    .bind(d.name.given().to_owned())
                    .bind(d.date_of_birth.date().format("%Y-%m-%d").to_string())
                    .bind(d.sex.code())
                    .bind($crate::codec::encode_contact(d))
                    .bind(v.reason.as_ref().map(|r| r.as_str().to_owned()))
                    .bind(v.provenance.user_id.to_string())
                    .bind(v.provenance.username.clone())
                    .bind($crate::codec::ts(v.provenance.recorded_at))
                    .execute(&mut *conn)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                Ok(())
            }

            async fn __claim_mrn(
                conn: &mut <$db as $crate::__sqlx::Database>::Connection,
                mrn: &str,
                patient: ::ketacare_domain::ids::PatientId,
            ) -> $crate::DbResult<()> {
                let owner: Option<String> = $crate::__sqlx::query_scalar("SELECT patient_id FROM patient_mrns WHERE mrn = $1")
                    .bind(mrn.to_owned())
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                match owner {
                    Some(o) if o == patient.to_string() => Ok(()),
                    Some(_) => Err($crate::DbError::Conflict("patient_mrns.mrn".into())),
                    None => {
                        $crate::__sqlx::query("INSERT INTO patient_mrns (mrn, patient_id) VALUES ($1, $2)")
                            .bind(mrn.to_owned())
                            .bind(patient.to_string())
                            .execute(&mut *conn)
                            .await
                            .map_err($crate::DbError::from_sqlx)?;
                        Ok(())
                    }
                }
            }
            async fn __insert_record_version(
                conn: &mut <$db as $crate::__sqlx::Database>::Connection,
                v: &::ketacare_domain::record::RecordVersion,
            ) -> $crate::DbResult<()> {
                use ::ketacare_domain::record::VersionAction;
                if v.version == 1 {
                    if v.action != VersionAction::Create || v.supersedes.is_some() {
                        return Err($crate::DbError::Conflict("version 1 must be a create".into()));
                    }
                } else {
                    if v.action == VersionAction::Create || v.reason.is_none() {
                        return Err($crate::DbError::Conflict("an amendment or void needs a reason".into()));
                    }
                    let prev: Option<(String, String, String, String)> = $crate::__sqlx::query_as("SELECT version_id, action, patient_id, kind FROM record_versions WHERE record_id = $1 AND version = $2")
                        .bind(v.record_id.to_string())
                        .bind(i64::from(v.version) - 1)
                        .fetch_optional(&mut *conn)
                        .await
                        .map_err($crate::DbError::from_sqlx)?;
                    match prev {
                        None => return Err($crate::DbError::Conflict("the record changed since it was opened; reload and try again".into())),
                        Some((vid, action, pid, kind)) => {
                            if Some(vid) != v.supersedes.map(|s| s.to_string()) {
                                return Err($crate::DbError::Conflict("the record changed since it was opened; reload and try again".into()));
                            }
                            if action == "void" {
                                return Err($crate::DbError::Conflict("the record is voided".into()));
                            }
                            if pid != v.patient_id.to_string() || kind != v.record.kind().code() {
                                return Err($crate::DbError::Conflict("an amendment must keep the patient and kind of the record".into()));
                            }
                        }
                    }
                }
                $crate::__sqlx::query("INSERT INTO record_versions (version_id, record_id, version, supersedes, patient_id, kind, action, body, reason, recorded_by, recorded_by_name, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
                    .bind(v.version_id.to_string())
                    .bind(v.record_id.to_string())
                    .bind(i64::from(v.version))
                    .bind(v.supersedes.map(|s| s.to_string()))
                    .bind(v.patient_id.to_string())
                    .bind(v.record.kind().code())
                    .bind(v.action.code())
                    .bind($crate::codec::encode_record(&v.record))
                    .bind(v.reason.as_ref().map(|r| r.as_str().to_owned()))
                    .bind(v.provenance.user_id.to_string())
                    .bind(v.provenance.username.clone())
                    .bind($crate::codec::ts(v.provenance.recorded_at))
                    .execute(&mut *conn)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                Ok(())
            }

            fn __record_event(ctx: &$crate::AuditCtx, v: &::ketacare_domain::record::RecordVersion) -> ::ketacare_domain::audit::AuditEvent {
                use ::ketacare_domain::record::VersionAction;
                let action = match v.action {
                    VersionAction::Create => ::ketacare_domain::audit::AuditAction::Create,
                    VersionAction::Amend => ::ketacare_domain::audit::AuditAction::Update,
                    VersionAction::Void => ::ketacare_domain::audit::AuditAction::Delete,
                };
                $crate::sql::event(ctx, action, ::ketacare_domain::audit::AuditOutcome::Success, &format!("Record/{}", v.record.kind().code()), Some(v.record_id.to_string()), Some(v.patient_id), Some(format!("version={}", v.version)))
            }
        }

        #[$crate::__async_trait]
        impl $crate::Store for $store {
            fn backend(&self) -> &'static str {
                <$store>::BACKEND
            }

            async fn migrate(&self) -> $crate::DbResult<()> {
                self.run_migrations().await
            }

            async fn schema_version(&self) -> $crate::DbResult<i64> {
                $crate::__sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                    .fetch_one(&self.pool)
                    .await
                    .map_err($crate::DbError::from_sqlx)
            }

            async fn close(&self) {
                self.pool.close().await;
            }

            async fn scrub_freed_space(&self) -> $crate::DbResult<()> {
                self.__scrub_freed_space().await.map_err($crate::DbError::from_sqlx)
            }

            async fn create_user(&self, ctx: &$crate::AuditCtx, u: $crate::NewUser) -> $crate::DbResult<$crate::User> {
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                let now = $crate::codec::ts(u.created_at);
                $crate::__sqlx::query("INSERT INTO users (id, username, display_name, role, password_hash, active, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 1, $6, $6)")
                    .bind(u.id.to_string())
                    .bind(u.username.as_str().to_owned())
                    .bind(u.display_name.clone())
                    .bind(u.role.code())
                    .bind(u.password_hash.clone())
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Create, ::ketacare_domain::audit::AuditOutcome::Success, "User", Some(u.id.to_string()), None, Some(format!("role={}", u.role.code())));
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)?;
                Ok($crate::User { id: u.id, username: u.username, display_name: u.display_name, role: u.role, active: true, created_at: u.created_at, lock: ::ketacare_domain::login::AccountLock::default() })
            }

            async fn find_user_by_username(&self, username: &str) -> $crate::DbResult<Option<($crate::User, String)>> {
                let sql = format!("SELECT {} FROM users WHERE username = $1", $crate::sql::USER_COLS);
                let row: Option<$crate::codec::UserRow> = $crate::__sqlx::query_as(&sql)
                    .bind(username.trim().to_ascii_lowercase())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                row.map(|r| r.into_domain()).transpose()
            }

            async fn get_user(&self, id: ::ketacare_domain::ids::UserId) -> $crate::DbResult<Option<$crate::User>> {
                let sql = format!("SELECT {} FROM users WHERE id = $1", $crate::sql::USER_COLS);
                let row: Option<$crate::codec::UserRow> = $crate::__sqlx::query_as(&sql)
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                Ok(row.map(|r| r.into_domain()).transpose()?.map(|(u, _)| u))
            }

            async fn list_users(&self) -> $crate::DbResult<Vec<$crate::User>> {
                let sql = format!("SELECT {} FROM users ORDER BY username", $crate::sql::USER_COLS);
                let rows: Vec<$crate::codec::UserRow> = $crate::__sqlx::query_as(&sql).fetch_all(&self.pool).await.map_err($crate::DbError::from_sqlx)?;
                rows.into_iter().map(|r| r.into_domain().map(|(u, _)| u)).collect()
            }

            async fn set_user_active(&self, ctx: &$crate::AuditCtx, id: ::ketacare_domain::ids::UserId, active: bool) -> $crate::DbResult<()> {
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                let n = $crate::__sqlx::query("UPDATE users SET active = $1, updated_at = $2 WHERE id = $3")
                    .bind(i64::from(active))
                    .bind($crate::codec::ts(ctx.at))
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::DbError::from_sqlx)?
                    .rows_affected();
                if n == 0 {
                    return Err($crate::DbError::NotFound);
                }
                if !active {
                    $crate::__sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(id.to_string()).execute(&mut *tx).await.map_err($crate::DbError::from_sqlx)?;
                }
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Update, ::ketacare_domain::audit::AuditOutcome::Success, "User", Some(id.to_string()), None, Some(format!("active={active}")));
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)
            }

            async fn set_password_hash(&self, id: ::ketacare_domain::ids::UserId, hash: &str) -> $crate::DbResult<()> {
                $crate::__sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                    .bind(hash.to_owned())
                    .bind(id.to_string())
                    .execute(&self.pool)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                Ok(())
            }

            async fn record_login_failure(
                &self,
                id: ::ketacare_domain::ids::UserId,
                now: ::chrono::DateTime<::chrono::Utc>,
                max_failures: u32,
                lock_until: ::chrono::DateTime<::chrono::Utc>,
            ) -> $crate::DbResult<::ketacare_domain::login::AccountLock> {
                // Timestamps are fixed-width UTC text, so they compare as text.
                let row: Option<(i64, Option<String>)> = $crate::__sqlx::query_as(
                    "UPDATE users SET \
                       failed_logins = CASE WHEN locked_until IS NOT NULL AND locked_until <= $1 THEN 1 ELSE failed_logins + 1 END, \
                       locked_until = CASE \
                         WHEN locked_until IS NOT NULL AND locked_until > $1 THEN locked_until \
                         WHEN (CASE WHEN locked_until IS NOT NULL AND locked_until <= $1 THEN 1 ELSE failed_logins + 1 END) >= $2 THEN $3 \
                         ELSE NULL END \
                     WHERE id = $4 RETURNING failed_logins, locked_until",
                )
                .bind($crate::codec::ts(now))
                .bind(i64::from(max_failures))
                .bind($crate::codec::ts(lock_until))
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::DbError::from_sqlx)?;
                let (failed, until) = row.ok_or($crate::DbError::NotFound)?;
                Ok(::ketacare_domain::login::AccountLock {
                    failed: u32::try_from(failed).map_err(|_| $crate::DbError::Corrupt(format!("failed_logins {failed}")))?,
                    locked_until: until.as_deref().map($crate::codec::parse_ts).transpose()?,
                })
            }

            async fn clear_login_failures(&self, id: ::ketacare_domain::ids::UserId, now: ::chrono::DateTime<::chrono::Utc>) -> $crate::DbResult<bool> {
                let n = $crate::__sqlx::query("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1 AND (locked_until IS NULL OR locked_until <= $2)")
                    .bind(id.to_string())
                    .bind($crate::codec::ts(now))
                    .execute(&self.pool)
                    .await
                    .map_err($crate::DbError::from_sqlx)?
                    .rows_affected();
                Ok(n == 1)
            }

            async fn unlock_user(&self, ctx: &$crate::AuditCtx, id: ::ketacare_domain::ids::UserId) -> $crate::DbResult<()> {
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                let n = $crate::__sqlx::query("UPDATE users SET failed_logins = 0, locked_until = NULL, updated_at = $1 WHERE id = $2")
                    .bind($crate::codec::ts(ctx.at))
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::DbError::from_sqlx)?
                    .rows_affected();
                if n == 0 {
                    return Err($crate::DbError::NotFound);
                }
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Update, ::ketacare_domain::audit::AuditOutcome::Success, "User", Some(id.to_string()), None, Some("unlocked".into()));
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)
            }

            async fn get_totp(&self, user: ::ketacare_domain::ids::UserId) -> $crate::DbResult<Option<$crate::TotpEnrolment>> {
                let row: Option<(String, String, i64)> = $crate::__sqlx::query_as("SELECT secret, enrolled_at, last_step FROM user_totp WHERE user_id = $1")
                    .bind(user.to_string())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                row.map(|(secret, at, last_step)| Ok($crate::TotpEnrolment { secret, enrolled_at: $crate::codec::parse_ts(&at)?, last_step })).transpose()
            }

            async fn list_totp_enrolled(&self) -> $crate::DbResult<Vec<::ketacare_domain::ids::UserId>> {
                let rows: Vec<(String,)> = $crate::__sqlx::query_as("SELECT user_id FROM user_totp ORDER BY user_id")
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                rows.into_iter()
                    .map(|(id,)| ::ketacare_domain::ids::UserId::parse(&id).map_err(|e| $crate::DbError::Corrupt(format!("user_totp.user_id: {e}"))))
                    .collect()
            }

            async fn enrol_totp(&self, ctx: &$crate::AuditCtx, user: ::ketacare_domain::ids::UserId, secret: &str, step: i64, recovery_hashes: &[String]) -> $crate::DbResult<()> {
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                $crate::__sqlx::query("DELETE FROM user_totp WHERE user_id = $1").bind(user.to_string()).execute(&mut *tx).await.map_err($crate::DbError::from_sqlx)?;
                $crate::__sqlx::query("INSERT INTO user_totp (user_id, secret, enrolled_at, last_step) VALUES ($1, $2, $3, $4)")
                    .bind(user.to_string())
                    .bind(secret.to_owned())
                    .bind($crate::codec::ts(ctx.at))
                    .bind(step)
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                Self::__replace_recovery_codes(&mut *tx, user, recovery_hashes, ctx.at).await?;
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Update, ::ketacare_domain::audit::AuditOutcome::Success, "User", Some(user.to_string()), None, Some(format!("two-step sign-in enrolled; {} recovery codes issued", recovery_hashes.len())));
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)
            }

            async fn reseal_totp(&self, user: ::ketacare_domain::ids::UserId, old: &str, new: &str) -> $crate::DbResult<bool> {
                let n = $crate::__sqlx::query("UPDATE user_totp SET secret = $1 WHERE user_id = $2 AND secret = $3")
                    .bind(new.to_owned())
                    .bind(user.to_string())
                    .bind(old.to_owned())
                    .execute(&self.pool)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                Ok(n.rows_affected() == 1)
            }

            async fn claim_totp_step(&self, user: ::ketacare_domain::ids::UserId, step: i64) -> $crate::DbResult<bool> {
                let n = $crate::__sqlx::query("UPDATE user_totp SET last_step = $1 WHERE user_id = $2 AND last_step < $1")
                    .bind(step)
                    .bind(user.to_string())
                    .execute(&self.pool)
                    .await
                    .map_err($crate::DbError::from_sqlx)?
                    .rows_affected();
                Ok(n == 1)
            }

            async fn use_recovery_code(&self, user: ::ketacare_domain::ids::UserId, hash: &str, at: ::chrono::DateTime<::chrono::Utc>) -> $crate::DbResult<bool> {
                let n = $crate::__sqlx::query("UPDATE mfa_recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL")
                    .bind($crate::codec::ts(at))
                    .bind(user.to_string())
                    .bind(hash.to_owned())
                    .execute(&self.pool)
                    .await
                    .map_err($crate::DbError::from_sqlx)?
                    .rows_affected();
                Ok(n == 1)
            }

            async fn unused_recovery_codes(&self, user: ::ketacare_domain::ids::UserId) -> $crate::DbResult<i64> {
                let (n,): (i64,) = $crate::__sqlx::query_as("SELECT COUNT(*) FROM mfa_recovery_codes WHERE user_id = $1 AND used_at IS NULL")
                    .bind(user.to_string())
                    .fetch_one(&self.pool)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                Ok(n)
            }

            async fn replace_recovery_codes(&self, ctx: &$crate::AuditCtx, user: ::ketacare_domain::ids::UserId, hashes: &[String]) -> $crate::DbResult<()> {
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                Self::__replace_recovery_codes(&mut *tx, user, hashes, ctx.at).await?;
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Update, ::ketacare_domain::audit::AuditOutcome::Success, "User", Some(user.to_string()), None, Some(format!("{} new recovery codes issued; earlier codes withdrawn", hashes.len())));
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)
            }

            async fn remove_totp(&self, ctx: &$crate::AuditCtx, user: ::ketacare_domain::ids::UserId) -> $crate::DbResult<()> {
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                let n = $crate::__sqlx::query("DELETE FROM user_totp WHERE user_id = $1").bind(user.to_string()).execute(&mut *tx).await.map_err($crate::DbError::from_sqlx)?.rows_affected();
                if n == 0 {
                    return Err($crate::DbError::NotFound);
                }
                $crate::__sqlx::query("DELETE FROM mfa_recovery_codes WHERE user_id = $1").bind(user.to_string()).execute(&mut *tx).await.map_err($crate::DbError::from_sqlx)?;
                $crate::__sqlx::query("DELETE FROM login_challenges WHERE user_id = $1").bind(user.to_string()).execute(&mut *tx).await.map_err($crate::DbError::from_sqlx)?;
                $crate::__sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(user.to_string()).execute(&mut *tx).await.map_err($crate::DbError::from_sqlx)?;
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Update, ::ketacare_domain::audit::AuditOutcome::Success, "User", Some(user.to_string()), None, Some("two-step sign-in reset; sessions ended".into()));
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)
            }

            async fn create_login_challenge(&self, c: &$crate::LoginChallenge) -> $crate::DbResult<()> {
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                $crate::__sqlx::query("DELETE FROM login_challenges WHERE expires_at <= $1").bind($crate::codec::ts(c.created_at)).execute(&mut *tx).await.map_err($crate::DbError::from_sqlx)?;
                $crate::__sqlx::query("INSERT INTO login_challenges (token_hash, user_id, purpose, pending_secret, created_at, expires_at, attempts) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                    .bind(c.token_hash.clone())
                    .bind(c.user_id.to_string())
                    .bind(c.purpose.code())
                    .bind(c.pending_secret.clone())
                    .bind($crate::codec::ts(c.created_at))
                    .bind($crate::codec::ts(c.expires_at))
                    .bind(i64::from(c.attempts))
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)
            }

            async fn find_login_challenge(&self, token_hash: &str, now: ::chrono::DateTime<::chrono::Utc>, max_attempts: u32) -> $crate::DbResult<Option<$crate::LoginChallenge>> {
                self.__open_challenge(
                    "SELECT token_hash, user_id, purpose, pending_secret, created_at, expires_at, attempts FROM login_challenges \
                     WHERE token_hash = $1 AND expires_at > $2 AND attempts < $3",
                    token_hash,
                    now,
                    max_attempts,
                )
                .await
            }

            async fn attempt_login_challenge(&self, token_hash: &str, now: ::chrono::DateTime<::chrono::Utc>, max_attempts: u32) -> $crate::DbResult<Option<$crate::LoginChallenge>> {
                self.__open_challenge(
                    "UPDATE login_challenges SET attempts = attempts + 1 WHERE token_hash = $1 AND expires_at > $2 AND attempts < $3 \
                     RETURNING token_hash, user_id, purpose, pending_secret, created_at, expires_at, attempts",
                    token_hash,
                    now,
                    max_attempts,
                )
                .await
            }

            async fn end_login_challenge(&self, token_hash: &str) -> $crate::DbResult<bool> {
                let n = $crate::__sqlx::query("DELETE FROM login_challenges WHERE token_hash = $1")
                    .bind(token_hash.to_owned())
                    .execute(&self.pool)
                    .await
                    .map_err($crate::DbError::from_sqlx)?
                    .rows_affected();
                Ok(n == 1)
            }

            async fn create_session(&self, s: &$crate::StoredSession) -> $crate::DbResult<()> {
                $crate::__sqlx::query("INSERT INTO sessions (id, token_hash, user_id, csrf_token, created_at, last_seen_at, expires_at, client_addr) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                    .bind(s.id.to_string())
                    .bind(s.token_hash.clone())
                    .bind(s.user_id.to_string())
                    .bind(s.csrf_token.clone())
                    .bind($crate::codec::ts(s.created_at))
                    .bind($crate::codec::ts(s.last_seen_at))
                    .bind($crate::codec::ts(s.expires_at))
                    .bind(s.client_addr.clone())
                    .execute(&self.pool)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                Ok(())
            }

            async fn find_session(&self, token_hash: &str) -> $crate::DbResult<Option<$crate::StoredSession>> {
                let sql = format!("SELECT {} FROM sessions WHERE token_hash = $1", $crate::sql::SESSION_COLS);
                let row: Option<$crate::codec::SessionRow> = $crate::__sqlx::query_as(&sql).bind(token_hash.to_owned()).fetch_optional(&self.pool).await.map_err($crate::DbError::from_sqlx)?;
                row.map(|r| r.into_model()).transpose()
            }

            async fn touch_session(&self, id: ::ketacare_domain::ids::SessionId, at: ::chrono::DateTime<::chrono::Utc>) -> $crate::DbResult<()> {
                $crate::__sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2")
                    .bind($crate::codec::ts(at))
                    .bind(id.to_string())
                    .execute(&self.pool)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                Ok(())
            }

            async fn end_other_sessions(&self, user: ::ketacare_domain::ids::UserId, keep: Option<::ketacare_domain::ids::SessionId>) -> $crate::DbResult<u64> {
                Ok($crate::__sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id <> $2")
                    .bind(user.to_string())
                    .bind(keep.map(|k| k.to_string()).unwrap_or_default())
                    .execute(&self.pool)
                    .await
                    .map_err($crate::DbError::from_sqlx)?
                    .rows_affected())
            }

            async fn delete_session(&self, id: ::ketacare_domain::ids::SessionId) -> $crate::DbResult<()> {
                $crate::__sqlx::query("DELETE FROM sessions WHERE id = $1").bind(id.to_string()).execute(&self.pool).await.map_err($crate::DbError::from_sqlx)?;
                Ok(())
            }

            async fn create_api_token(&self, ctx: &$crate::AuditCtx, t: &$crate::ApiToken) -> $crate::DbResult<()> {
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                $crate::__sqlx::query("INSERT INTO api_tokens (id, user_id, label, token_hash, created_at, created_by, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, NULL)")
                    .bind(t.id.to_string())
                    .bind(t.user_id.to_string())
                    .bind(t.label.clone())
                    .bind(t.token_hash.clone())
                    .bind($crate::codec::ts(t.created_at))
                    .bind(t.created_by.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Create, ::ketacare_domain::audit::AuditOutcome::Success, "ApiToken", Some(t.id.to_string()), None, Some(format!("for_user={}", t.user_id)));
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)
            }

            async fn find_api_token(&self, token_hash: &str) -> $crate::DbResult<Option<$crate::ApiToken>> {
                let sql = format!("SELECT {} FROM api_tokens WHERE token_hash = $1", $crate::sql::TOKEN_COLS);
                let row: Option<$crate::codec::TokenRow> = $crate::__sqlx::query_as(&sql).bind(token_hash.to_owned()).fetch_optional(&self.pool).await.map_err($crate::DbError::from_sqlx)?;
                row.map(|r| r.into_model()).transpose()
            }

            async fn list_api_tokens(&self) -> $crate::DbResult<Vec<$crate::ApiToken>> {
                let sql = format!("SELECT {} FROM api_tokens ORDER BY created_at DESC", $crate::sql::TOKEN_COLS);
                let rows: Vec<$crate::codec::TokenRow> = $crate::__sqlx::query_as(&sql).fetch_all(&self.pool).await.map_err($crate::DbError::from_sqlx)?;
                rows.into_iter().map(|r| r.into_model()).collect()
            }

            async fn revoke_api_token(&self, ctx: &$crate::AuditCtx, id: ::ketacare_domain::ids::TokenId) -> $crate::DbResult<()> {
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                let n = $crate::__sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                    .bind($crate::codec::ts(ctx.at))
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::DbError::from_sqlx)?
                    .rows_affected();
                if n == 0 {
                    return Err($crate::DbError::NotFound);
                }
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Delete, ::ketacare_domain::audit::AuditOutcome::Success, "ApiToken", Some(id.to_string()), None, None);
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)
            }

            async fn append_audit(&self, event: &::ketacare_domain::audit::AuditEvent) -> $crate::DbResult<()> {
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                Self::__audit(&mut *tx, event).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)
            }

            async fn search_audit(&self, ctx: &$crate::AuditCtx, f: &$crate::AuditFilter) -> $crate::DbResult<Vec<::ketacare_domain::audit::AuditEntry>> {
                let mut conds: Vec<String> = Vec::new();
                let mut args: Vec<String> = Vec::new();
                let mut add = |col: &str, op: &str, v: String| {
                    args.push(v);
                    conds.push(format!("{col} {op} ${}", args.len()));
                };
                if let Some(u) = &f.username { add("username", "=", u.clone()); }
                if let Some(p) = f.patient_id { add("patient_id", "=", p.to_string()); }
                if let Some(a) = f.action { add("action", "=", a.code().to_owned()); }
                if let Some(o) = f.outcome { add("outcome", "=", o.code().to_owned()); }
                if let Some(t) = &f.entity_type { add("entity_type", "=", t.clone()); }
                if let Some(t) = f.from { add("recorded_at", ">=", $crate::codec::ts(t)); }
                if let Some(t) = f.to { add("recorded_at", "<", $crate::codec::ts(t)); }
                let where_sql = if conds.is_empty() { String::new() } else { format!("WHERE {}", conds.join(" AND ")) };
                let dir = if f.ascending { "ASC" } else { "DESC" };
                let sql = format!(
                    "SELECT {} FROM audit_log {where_sql} ORDER BY {} {dir}, seq {dir} LIMIT {} OFFSET {}",
                    $crate::sql::AUDIT_COLS,
                    f.sort.column(),
                    f.page.limit.clamp(1, 500),
                    f.page.offset.max(0)
                );
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                let mut q = $crate::__sqlx::query_as::<_, $crate::codec::AuditRow>(&sql);
                for a in args {
                    q = q.bind(a);
                }
                let rows = q.fetch_all(&mut *tx).await.map_err($crate::DbError::from_sqlx)?;
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Execute, ::ketacare_domain::audit::AuditOutcome::Success, "AuditEvent", None, f.patient_id, Some(format!("audit search, {} rows", rows.len())));
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)?;
                rows.into_iter().map(|r| r.into_domain()).collect()
            }

            async fn register_patient_with_member(&self, ctx: &$crate::AuditCtx, v: &::ketacare_domain::record::PatientVersion, member: Option<&$crate::CareTeamMember>) -> $crate::DbResult<()> {
                if v.version != 1 || v.action != ::ketacare_domain::record::VersionAction::Create {
                    return Err($crate::DbError::Conflict("a registration is version 1 with action create".into()));
                }
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                $crate::__sqlx::query("INSERT INTO patients (id, created_at, created_by) VALUES ($1, $2, $3)")
                    .bind(v.patient_id.to_string())
                    .bind($crate::codec::ts(v.provenance.recorded_at))
                    .bind(v.provenance.user_id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                Self::__claim_mrn(&mut *tx, v.demographics.mrn.as_str(), v.patient_id).await?;
                Self::__insert_patient_version(&mut *tx, v).await?;
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Create, ::ketacare_domain::audit::AuditOutcome::Success, "Patient", Some(v.patient_id.to_string()), Some(v.patient_id), None);
                Self::__audit(&mut *tx, &e).await?;
                if let Some(m) = member {
                    Self::__insert_member(&mut *tx, ctx, m).await?;
                }
                tx.commit().await.map_err($crate::DbError::from_sqlx)
            }

            async fn append_patient_version(&self, ctx: &$crate::AuditCtx, v: &::ketacare_domain::record::PatientVersion) -> $crate::DbResult<()> {
                use ::ketacare_domain::record::VersionAction;
                if v.version < 2 || v.action == VersionAction::Create || v.reason.is_none() {
                    return Err($crate::DbError::Conflict("an amendment or void is version 2 or later and has a reason".into()));
                }
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                let prev: Option<(String,)> = $crate::__sqlx::query_as("SELECT action FROM patient_versions WHERE patient_id = $1 AND version = $2")
                    .bind(v.patient_id.to_string())
                    .bind(i64::from(v.version) - 1)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                match prev {
                    None => return Err($crate::DbError::Conflict("the patient record changed since it was opened; reload and try again".into())),
                    Some((a,)) if a == "void" => return Err($crate::DbError::Conflict("the patient record is voided".into())),
                    Some(_) => {}
                }
                Self::__claim_mrn(&mut *tx, v.demographics.mrn.as_str(), v.patient_id).await?;
                Self::__insert_patient_version(&mut *tx, v).await?;
                let action = if v.action == VersionAction::Void { ::ketacare_domain::audit::AuditAction::Delete } else { ::ketacare_domain::audit::AuditAction::Update };
                let e = $crate::sql::event(ctx, action, ::ketacare_domain::audit::AuditOutcome::Success, "Patient", Some(v.patient_id.to_string()), Some(v.patient_id), Some(format!("version={}", v.version)));
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)
            }

            async fn get_patient(&self, ctx: &$crate::AuditCtx, id: ::ketacare_domain::ids::PatientId) -> $crate::DbResult<Option<::ketacare_domain::record::PatientVersion>> {
                let sql = format!("SELECT {} FROM patient_versions pv WHERE pv.patient_id = $1 ORDER BY pv.version DESC LIMIT 1", $crate::sql::PATIENT_COLS);
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                let row: Option<$crate::codec::PatientRow> = $crate::__sqlx::query_as(&sql).bind(id.to_string()).fetch_optional(&mut *tx).await.map_err($crate::DbError::from_sqlx)?;
                let outcome = if row.is_some() { ::ketacare_domain::audit::AuditOutcome::Success } else { ::ketacare_domain::audit::AuditOutcome::NotFound };
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Read, outcome, "Patient", Some(id.to_string()), Some(id), None);
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)?;
                row.map(|r| r.into_domain()).transpose()
            }

            async fn patient_history(&self, ctx: &$crate::AuditCtx, id: ::ketacare_domain::ids::PatientId) -> $crate::DbResult<Vec<::ketacare_domain::record::PatientVersion>> {
                let sql = format!("SELECT {} FROM patient_versions pv WHERE pv.patient_id = $1 ORDER BY pv.version", $crate::sql::PATIENT_COLS);
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                let rows: Vec<$crate::codec::PatientRow> = $crate::__sqlx::query_as(&sql).bind(id.to_string()).fetch_all(&mut *tx).await.map_err($crate::DbError::from_sqlx)?;
                let outcome = if rows.is_empty() { ::ketacare_domain::audit::AuditOutcome::NotFound } else { ::ketacare_domain::audit::AuditOutcome::Success };
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Read, outcome, "Patient/_history", Some(id.to_string()), Some(id), None);
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)?;
                rows.into_iter().map(|r| r.into_domain()).collect()
            }

            async fn search_patients(&self, ctx: &$crate::AuditCtx, query: &str, page: $crate::Page) -> $crate::DbResult<Vec<::ketacare_domain::record::PatientVersion>> {
                self.__search_patients(ctx, query, None, page).await
            }

            async fn search_patients_in_scope(
                &self,
                ctx: &$crate::AuditCtx,
                query: &str,
                user: ::ketacare_domain::ids::UserId,
                now: ::chrono::DateTime<::chrono::Utc>,
                page: $crate::Page,
            ) -> $crate::DbResult<Vec<::ketacare_domain::record::PatientVersion>> {
                self.__search_patients(ctx, query, Some((user, now)), page).await
            }

            async fn count_patients(&self) -> $crate::DbResult<i64> {
                $crate::__sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM patient_versions pv WHERE pv.version = (SELECT MAX(v2.version) FROM patient_versions v2 WHERE v2.patient_id = pv.patient_id) AND pv.action <> 'void'")
                    .fetch_one(&self.pool)
                    .await
                    .map_err($crate::DbError::from_sqlx)
            }

            async fn append_record_version(&self, ctx: &$crate::AuditCtx, v: &::ketacare_domain::record::RecordVersion) -> $crate::DbResult<()> {
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                Self::__insert_record_version(&mut *tx, v).await?;
                Self::__audit(&mut *tx, &Self::__record_event(ctx, v)).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)
            }

            async fn append_record_versions(&self, ctx: &$crate::AuditCtx, vs: &[::ketacare_domain::record::RecordVersion]) -> $crate::DbResult<()> {
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                for v in vs {
                    Self::__insert_record_version(&mut *tx, v).await?;
                    Self::__audit(&mut *tx, &Self::__record_event(ctx, v)).await?;
                }
                tx.commit().await.map_err($crate::DbError::from_sqlx)
            }

            async fn current_records(&self, ctx: &$crate::AuditCtx, patient: ::ketacare_domain::ids::PatientId) -> $crate::DbResult<Vec<::ketacare_domain::record::RecordVersion>> {
                let sql = format!("SELECT {} FROM record_versions r WHERE r.patient_id = $1 AND r.version = (SELECT MAX(r2.version) FROM record_versions r2 WHERE r2.record_id = r.record_id) ORDER BY r.recorded_at, r.record_id", $crate::sql::RECORD_COLS);
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                let rows: Vec<$crate::codec::RecordRow> = $crate::__sqlx::query_as(&sql).bind(patient.to_string()).fetch_all(&mut *tx).await.map_err($crate::DbError::from_sqlx)?;
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Read, ::ketacare_domain::audit::AuditOutcome::Success, "Record", None, Some(patient), Some(format!("{} records", rows.len())));
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)?;
                rows.into_iter().map(|r| r.into_domain()).collect()
            }

            async fn get_record(&self, ctx: &$crate::AuditCtx, id: ::ketacare_domain::ids::RecordId) -> $crate::DbResult<Option<::ketacare_domain::record::RecordVersion>> {
                let sql = format!("SELECT {} FROM record_versions r WHERE r.record_id = $1 ORDER BY r.version DESC LIMIT 1", $crate::sql::RECORD_COLS);
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                let row: Option<$crate::codec::RecordRow> = $crate::__sqlx::query_as(&sql).bind(id.to_string()).fetch_optional(&mut *tx).await.map_err($crate::DbError::from_sqlx)?;
                let v = row.map(|r| r.into_domain()).transpose()?;
                let (outcome, pid, et) = match &v {
                    Some(v) => (::ketacare_domain::audit::AuditOutcome::Success, Some(v.patient_id), format!("Record/{}", v.record.kind().code())),
                    None => (::ketacare_domain::audit::AuditOutcome::NotFound, None, "Record".to_owned()),
                };
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Read, outcome, &et, Some(id.to_string()), pid, None);
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)?;
                Ok(v)
            }

            async fn record_history(&self, ctx: &$crate::AuditCtx, id: ::ketacare_domain::ids::RecordId) -> $crate::DbResult<Vec<::ketacare_domain::record::RecordVersion>> {
                let sql = format!("SELECT {} FROM record_versions r WHERE r.record_id = $1 ORDER BY r.version", $crate::sql::RECORD_COLS);
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                let rows: Vec<$crate::codec::RecordRow> = $crate::__sqlx::query_as(&sql).bind(id.to_string()).fetch_all(&mut *tx).await.map_err($crate::DbError::from_sqlx)?;
                let versions: Vec<::ketacare_domain::record::RecordVersion> = rows.into_iter().map(|r| r.into_domain()).collect::<Result<_, _>>()?;
                let pid = versions.first().map(|v| v.patient_id);
                let outcome = if versions.is_empty() { ::ketacare_domain::audit::AuditOutcome::NotFound } else { ::ketacare_domain::audit::AuditOutcome::Success };
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Read, outcome, "Record/_history", Some(id.to_string()), pid, None);
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)?;
                Ok(versions)
            }

            async fn append_assessment(
                &self,
                ctx: &$crate::AuditCtx,
                v: &::ketacare_domain::record::RecordVersion,
                alerts: &[::ketacare_domain::assessment::SafetyAlert],
                complete_request: Option<::ketacare_domain::ids::RequestId>,
            ) -> $crate::DbResult<()> {
                use ::ketacare_domain::audit::{AuditAction, AuditOutcome};
                if v.record.kind() != ::ketacare_domain::record::RecordKind::Assessment {
                    return Err($crate::DbError::Conflict("not an assessment".into()));
                }
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                Self::__insert_record_version(&mut *tx, v).await?;
                Self::__audit(&mut *tx, &Self::__record_event(ctx, v)).await?;
                if let Some(rid) = complete_request {
                    let done = $crate::__sqlx::query("UPDATE questionnaire_requests SET completed_at = $1, response_record_id = $2 WHERE id = $3 AND patient_id = $4 AND completed_at IS NULL AND cancelled_at IS NULL AND expires_at > $1")
                        .bind($crate::codec::ts(ctx.at))
                        .bind(v.record_id.to_string())
                        .bind(rid.to_string())
                        .bind(v.patient_id.to_string())
                        .execute(&mut *tx)
                        .await
                        .map_err($crate::DbError::from_sqlx)?;
                    if done.rows_affected() != 1 {
                        return Err($crate::DbError::Conflict("this questionnaire link has already been used, was withdrawn or has expired".into()));
                    }
                    let e = $crate::sql::event(ctx, AuditAction::Update, AuditOutcome::Success, "QuestionnaireRequest", Some(rid.to_string()), Some(v.patient_id), Some("completed".into()));
                    Self::__audit(&mut *tx, &e).await?;
                }
                for a in alerts {
                    $crate::__sqlx::query("INSERT INTO safety_alerts (id, patient_id, code, label, source_record_id, raised_at, assigned_to) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                        .bind(a.id.to_string())
                        .bind(a.patient_id.to_string())
                        .bind(a.code.clone())
                        .bind(a.label.clone())
                        .bind(a.source_record.to_string())
                        .bind($crate::codec::ts(a.raised_at))
                        .bind(a.assigned_to.map(|u| u.to_string()))
                        .execute(&mut *tx)
                        .await
                        .map_err($crate::DbError::from_sqlx)?;
                    let e = $crate::sql::event(ctx, AuditAction::Create, AuditOutcome::Success, "SafetyAlert", Some(a.id.to_string()), Some(a.patient_id), Some(format!("code={}", a.code)));
                    Self::__audit(&mut *tx, &e).await?;
                }
                tx.commit().await.map_err($crate::DbError::from_sqlx)
            }

            async fn create_request(&self, ctx: &$crate::AuditCtx, r: &::ketacare_domain::assessment::QuestionnaireRequest) -> $crate::DbResult<()> {
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                $crate::__sqlx::query("INSERT INTO questionnaire_requests (id, patient_id, instrument, token_hash, session_record_id, timepoint, sent_by, sent_by_name, sent_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
                    .bind(r.id.to_string())
                    .bind(r.patient_id.to_string())
                    .bind(r.instrument.clone())
                    .bind(r.token_hash.clone())
                    .bind(r.session.map(|s| s.to_string()))
                    .bind(r.timepoint.clone())
                    .bind(r.sent_by.to_string())
                    .bind(r.sent_by_name.clone())
                    .bind($crate::codec::ts(r.sent_at))
                    .bind($crate::codec::ts(r.expires_at))
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Create, ::ketacare_domain::audit::AuditOutcome::Success, "QuestionnaireRequest", Some(r.id.to_string()), Some(r.patient_id), Some(format!("instrument={}", r.instrument)));
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)
            }

            async fn find_request_by_token(&self, ctx: &$crate::AuditCtx, token_hash: &str) -> $crate::DbResult<Option<::ketacare_domain::assessment::QuestionnaireRequest>> {
                let sql = format!("SELECT {} FROM questionnaire_requests WHERE token_hash = $1", $crate::sql::REQUEST_COLS);
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                let row: Option<$crate::codec::RequestRow> = $crate::__sqlx::query_as(&sql).bind(token_hash.to_owned()).fetch_optional(&mut *tx).await.map_err($crate::DbError::from_sqlx)?;
                let r = row.map(|r| r.into_domain()).transpose()?;
                let (outcome, pid, eid) = match &r {
                    Some(r) => (::ketacare_domain::audit::AuditOutcome::Success, Some(r.patient_id), Some(r.id.to_string())),
                    None => (::ketacare_domain::audit::AuditOutcome::NotFound, None, None),
                };
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Read, outcome, "QuestionnaireRequest", eid, pid, Some("opened by link".into()));
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)?;
                Ok(r)
            }

            async fn list_requests(&self, ctx: &$crate::AuditCtx, patient: ::ketacare_domain::ids::PatientId) -> $crate::DbResult<Vec<::ketacare_domain::assessment::QuestionnaireRequest>> {
                let sql = format!("SELECT {} FROM questionnaire_requests WHERE patient_id = $1 ORDER BY sent_at DESC, id", $crate::sql::REQUEST_COLS);
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                let rows: Vec<$crate::codec::RequestRow> = $crate::__sqlx::query_as(&sql).bind(patient.to_string()).fetch_all(&mut *tx).await.map_err($crate::DbError::from_sqlx)?;
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Read, ::ketacare_domain::audit::AuditOutcome::Success, "QuestionnaireRequest", None, Some(patient), Some(format!("{} requests", rows.len())));
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)?;
                rows.into_iter().map(|r| r.into_domain()).collect()
            }

            async fn cancel_request(&self, ctx: &$crate::AuditCtx, id: ::ketacare_domain::ids::RequestId, by: ::ketacare_domain::ids::UserId) -> $crate::DbResult<()> {
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                let pid: Option<String> = $crate::__sqlx::query_scalar("SELECT patient_id FROM questionnaire_requests WHERE id = $1").bind(id.to_string()).fetch_optional(&mut *tx).await.map_err($crate::DbError::from_sqlx)?;
                let Some(pid) = pid else { return Err($crate::DbError::NotFound) };
                let done = $crate::__sqlx::query("UPDATE questionnaire_requests SET cancelled_at = $1, cancelled_by = $2 WHERE id = $3 AND completed_at IS NULL AND cancelled_at IS NULL")
                    .bind($crate::codec::ts(ctx.at))
                    .bind(by.to_string())
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                if done.rows_affected() != 1 {
                    return Err($crate::DbError::Conflict("the request was already answered or withdrawn".into()));
                }
                let pid = ::ketacare_domain::ids::PatientId::parse(&pid).map_err(|_| $crate::DbError::Corrupt("identifier".into()))?;
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Update, ::ketacare_domain::audit::AuditOutcome::Success, "QuestionnaireRequest", Some(id.to_string()), Some(pid), Some("cancelled".into()));
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)
            }

            async fn list_alerts(&self, ctx: &$crate::AuditCtx, patient: Option<::ketacare_domain::ids::PatientId>, open_only: bool) -> $crate::DbResult<Vec<::ketacare_domain::assessment::SafetyAlert>> {
                let sql = format!(
                    "SELECT {} FROM safety_alerts WHERE ($1 = '' OR patient_id = $1) AND ($2 = 0 OR acknowledged_at IS NULL) ORDER BY raised_at DESC, id LIMIT 500",
                    $crate::sql::ALERT_COLS
                );
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                let rows: Vec<$crate::codec::AlertRow> = $crate::__sqlx::query_as(&sql)
                    .bind(patient.map(|p| p.to_string()).unwrap_or_default())
                    .bind(i64::from(open_only))
                    .fetch_all(&mut *tx)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Read, ::ketacare_domain::audit::AuditOutcome::Success, "SafetyAlert", None, patient, Some(format!("{} alerts", rows.len())));
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)?;
                rows.into_iter().map(|r| r.into_domain()).collect()
            }

            async fn count_open_alerts(&self) -> $crate::DbResult<i64> {
                $crate::__sqlx::query_scalar("SELECT COUNT(*) FROM safety_alerts WHERE acknowledged_at IS NULL").fetch_one(&self.pool).await.map_err($crate::DbError::from_sqlx)
            }

            async fn acknowledge_alert(&self, ctx: &$crate::AuditCtx, id: ::ketacare_domain::ids::AlertId, ack: &::ketacare_domain::assessment::Acknowledgement) -> $crate::DbResult<::ketacare_domain::assessment::SafetyAlert> {
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                let sql = format!("SELECT {} FROM safety_alerts WHERE id = $1", $crate::sql::ALERT_COLS);
                let row: Option<$crate::codec::AlertRow> = $crate::__sqlx::query_as(&sql).bind(id.to_string()).fetch_optional(&mut *tx).await.map_err($crate::DbError::from_sqlx)?;
                let Some(mut alert) = row.map(|r| r.into_domain()).transpose()? else { return Err($crate::DbError::NotFound) };
                let done = $crate::__sqlx::query("UPDATE safety_alerts SET acknowledged_by = $1, acknowledged_by_name = $2, acknowledged_at = $3, action_taken = $4 WHERE id = $5 AND acknowledged_at IS NULL")
                    .bind(ack.by.to_string())
                    .bind(ack.by_name.clone())
                    .bind($crate::codec::ts(ack.at))
                    .bind(ack.action_taken.clone())
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                if done.rows_affected() != 1 {
                    return Err($crate::DbError::Conflict("the alert was already acknowledged".into()));
                }
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Update, ::ketacare_domain::audit::AuditOutcome::Success, "SafetyAlert", Some(id.to_string()), Some(alert.patient_id), Some("acknowledged".into()));
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)?;
                alert.acknowledgement = Some(ack.clone());
                Ok(alert)
            }

            async fn create_schedule(&self, ctx: &$crate::AuditCtx, s: &::ketacare_domain::assessment::Schedule, created_by: ::ketacare_domain::ids::UserId) -> $crate::DbResult<()> {
                let (anchor, tps, days, start) = $crate::codec::encode_anchor(&s.anchor);
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                $crate::__sqlx::query("INSERT INTO assessment_schedules (id, patient_id, instrument, anchor, timepoints, interval_days, start_date, created_by, created_by_name, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
                    .bind(s.id.to_string())
                    .bind(s.patient_id.to_string())
                    .bind(s.instrument.clone())
                    .bind(anchor)
                    .bind(tps)
                    .bind(days)
                    .bind(start)
                    .bind(created_by.to_string())
                    .bind(s.created_by.clone())
                    .bind($crate::codec::ts(s.created_at))
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Create, ::ketacare_domain::audit::AuditOutcome::Success, "AssessmentSchedule", Some(s.id.to_string()), Some(s.patient_id), Some(format!("instrument={}", s.instrument)));
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)
            }

            async fn list_schedules(&self, ctx: &$crate::AuditCtx, patient: ::ketacare_domain::ids::PatientId) -> $crate::DbResult<Vec<::ketacare_domain::assessment::Schedule>> {
                let sql = format!("SELECT {} FROM assessment_schedules WHERE patient_id = $1 ORDER BY created_at, id", $crate::sql::SCHEDULE_COLS);
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                let rows: Vec<$crate::codec::ScheduleRow> = $crate::__sqlx::query_as(&sql).bind(patient.to_string()).fetch_all(&mut *tx).await.map_err($crate::DbError::from_sqlx)?;
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Read, ::ketacare_domain::audit::AuditOutcome::Success, "AssessmentSchedule", None, Some(patient), Some(format!("{} schedules", rows.len())));
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)?;
                rows.into_iter().map(|r| r.into_domain()).collect()
            }

            async fn end_schedule(&self, ctx: &$crate::AuditCtx, id: ::ketacare_domain::ids::ScheduleId, by: ::ketacare_domain::ids::UserId) -> $crate::DbResult<()> {
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                let pid: Option<String> = $crate::__sqlx::query_scalar("SELECT patient_id FROM assessment_schedules WHERE id = $1").bind(id.to_string()).fetch_optional(&mut *tx).await.map_err($crate::DbError::from_sqlx)?;
                let Some(pid) = pid else { return Err($crate::DbError::NotFound) };
                let done = $crate::__sqlx::query("UPDATE assessment_schedules SET ended_at = $1, ended_by = $2 WHERE id = $3 AND ended_at IS NULL")
                    .bind($crate::codec::ts(ctx.at))
                    .bind(by.to_string())
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                if done.rows_affected() != 1 {
                    return Err($crate::DbError::Conflict("the schedule was already stopped".into()));
                }
                let pid = ::ketacare_domain::ids::PatientId::parse(&pid).map_err(|_| $crate::DbError::Corrupt("identifier".into()))?;
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Update, ::ketacare_domain::audit::AuditOutcome::Success, "AssessmentSchedule", Some(id.to_string()), Some(pid), Some("ended".into()));
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)
            }

            async fn append_dose_evaluation(&self, ctx: &$crate::AuditCtx, ev: &::ketacare_domain::dose::DoseEvaluation) -> $crate::DbResult<()> {
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                $crate::__sqlx::query("INSERT INTO dose_evaluations (id, at, user_id, username, patient_id, order_id, drug, route, dose_mg, mg_per_kg, outcome, breaches, reason, second_username) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)")
                    .bind(ev.id.to_string())
                    .bind($crate::codec::ts(ev.at))
                    .bind(ev.user_id.to_string())
                    .bind(ev.username.clone())
                    .bind(ev.patient_id.map(|p| p.to_string()))
                    .bind(ev.order_id.map(|o| o.to_string()))
                    .bind(ev.drug.clone())
                    .bind(ev.route.code())
                    .bind(ev.dose_mg.normalize().to_string())
                    .bind(ev.mg_per_kg.map(|d| d.normalize().to_string()))
                    .bind(ev.outcome.code())
                    .bind(ev.breaches.join("\n"))
                    .bind(ev.reason.clone())
                    .bind(ev.second_username.clone())
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Create, ::ketacare_domain::audit::AuditOutcome::Success, "DoseEvaluation", Some(ev.id.to_string()), ev.patient_id, Some(format!("route={} outcome={}", ev.route.code(), ev.outcome.code())));
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)
            }

            async fn list_dose_evaluations(&self, from: ::chrono::DateTime<::chrono::Utc>, to: ::chrono::DateTime<::chrono::Utc>) -> $crate::DbResult<Vec<::ketacare_domain::dose::DoseEvaluation>> {
                #[allow(clippy::type_complexity)]
                let rows: Vec<(String, String, String, String, Option<String>, Option<String>, String, String, String, Option<String>, String, String, Option<String>, Option<String>)> = $crate::__sqlx::query_as(
                    "SELECT id, at, user_id, username, patient_id, order_id, drug, route, dose_mg, mg_per_kg, outcome, breaches, reason, second_username FROM dose_evaluations WHERE at >= $1 AND at < $2 ORDER BY at, id",
                )
                .bind($crate::codec::ts(from))
                .bind($crate::codec::ts(to))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::DbError::from_sqlx)?;
                let bad = |w: &str| $crate::DbError::Corrupt(format!("dose evaluation {w}"));
                rows.into_iter()
                    .map(|(id, at, uid, username, pid, oid, drug, route, dose, mgkg, outcome, breaches, reason, second)| {
                        Ok(::ketacare_domain::dose::DoseEvaluation {
                            id: ::ketacare_domain::ids::RecordId::parse(&id).map_err(|_| bad("id"))?,
                            at: $crate::codec::parse_ts(&at)?,
                            user_id: ::ketacare_domain::ids::UserId::parse(&uid).map_err(|_| bad("user"))?,
                            username,
                            patient_id: pid.as_deref().map(::ketacare_domain::ids::PatientId::parse).transpose().map_err(|_| bad("patient"))?,
                            order_id: oid.as_deref().map(::ketacare_domain::ids::RecordId::parse).transpose().map_err(|_| bad("order"))?,
                            drug,
                            route: ::ketacare_domain::dose::Route::parse(&route).map_err(|_| bad("route"))?,
                            dose_mg: dose.parse().map_err(|_| bad("dose"))?,
                            mg_per_kg: mgkg.as_deref().map(str::parse).transpose().map_err(|_| bad("mg/kg"))?,
                            outcome: ::ketacare_domain::dose::EvaluationOutcome::parse(&outcome).map_err(|_| bad("outcome"))?,
                            breaches: breaches.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect(),
                            reason,
                            second_username: second,
                        })
                    })
                    .collect()
            }

            async fn create_policy_proposal(&self, ctx: &$crate::AuditCtx, p: &$crate::PolicyProposal) -> $crate::DbResult<()> {
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                $crate::__sqlx::query("INSERT INTO policy_proposals (id, key, value, reason, proposed_by, proposed_by_name, proposed_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                    .bind(p.id.to_string())
                    .bind(p.key.clone())
                    .bind(p.value.clone())
                    .bind(p.reason.clone())
                    .bind(p.proposed_by.to_string())
                    .bind(p.proposed_by_name.clone())
                    .bind($crate::codec::ts(p.proposed_at))
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Create, ::ketacare_domain::audit::AuditOutcome::Success, "PolicyProposal", Some(p.id.to_string()), None, Some(format!("key={} value={}", p.key, p.value.as_deref().unwrap_or("default"))));
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)
            }

            async fn list_policy_proposals(&self, open_only: bool) -> $crate::DbResult<Vec<$crate::PolicyProposal>> {
                let sql = format!(
                    "SELECT id, key, value, reason, proposed_by, proposed_by_name, proposed_at, decided_by, decided_by_name, decided_at, decision, decision_reason FROM policy_proposals {} ORDER BY proposed_at DESC, id",
                    if open_only { "WHERE decided_at IS NULL" } else { "" }
                );
                #[allow(clippy::type_complexity)]
                let rows: Vec<(String, String, Option<String>, String, String, String, String, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>)> =
                    $crate::__sqlx::query_as(&sql).fetch_all(&self.pool).await.map_err($crate::DbError::from_sqlx)?;
                let bad = |w: &str| $crate::DbError::Corrupt(format!("policy proposal {w}"));
                rows.into_iter()
                    .map(|(id, key, value, reason, by, by_name, at, dby, dname, dat, decision, dreason)| {
                        let decision = match (dby, dat, decision) {
                            (Some(dby), Some(dat), Some(d)) => Some($crate::ProposalDecision {
                                approved: d == "approved",
                                by: ::ketacare_domain::ids::UserId::parse(&dby).map_err(|_| bad("decider"))?,
                                by_name: dname.unwrap_or_default(),
                                at: $crate::codec::parse_ts(&dat)?,
                                reason: dreason,
                            }),
                            _ => None,
                        };
                        Ok($crate::PolicyProposal {
                            id: $crate::__uuid::Uuid::parse_str(&id).map_err(|_| bad("id"))?,
                            key,
                            value,
                            reason,
                            proposed_by: ::ketacare_domain::ids::UserId::parse(&by).map_err(|_| bad("proposer"))?,
                            proposed_by_name: by_name,
                            proposed_at: $crate::codec::parse_ts(&at)?,
                            decision,
                        })
                    })
                    .collect()
            }

            async fn decide_policy_proposal(&self, ctx: &$crate::AuditCtx, id: $crate::__uuid::Uuid, d: &$crate::ProposalDecision) -> $crate::DbResult<$crate::PolicyProposal> {
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                let row: Option<(String, Option<String>, String, Option<String>)> =
                    $crate::__sqlx::query_as("SELECT key, value, proposed_by, decided_at FROM policy_proposals WHERE id = $1")
                        .bind(id.to_string())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err($crate::DbError::from_sqlx)?;
                let Some((key, value, proposed_by, decided_at)) = row else { return Err($crate::DbError::NotFound) };
                if decided_at.is_some() {
                    return Err($crate::DbError::Conflict("the proposal was already decided".into()));
                }
                if proposed_by == d.by.to_string() {
                    return Err($crate::DbError::Conflict("the second person must be someone other than the proposer".into()));
                }
                let n = $crate::__sqlx::query("UPDATE policy_proposals SET decided_by = $1, decided_by_name = $2, decided_at = $3, decision = $4, decision_reason = $5 WHERE id = $6 AND decided_at IS NULL AND proposed_by <> $1")
                    .bind(d.by.to_string())
                    .bind(d.by_name.clone())
                    .bind($crate::codec::ts(d.at))
                    .bind(if d.approved { "approved" } else { "rejected" })
                    .bind(d.reason.clone())
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::DbError::from_sqlx)?
                    .rows_affected();
                if n != 1 {
                    return Err($crate::DbError::Conflict("the proposal was already decided".into()));
                }
                if d.approved {
                    let reason: Option<String> = $crate::__sqlx::query_scalar("SELECT reason FROM policy_proposals WHERE id = $1").bind(id.to_string()).fetch_one(&mut *tx).await.map_err($crate::DbError::from_sqlx)?;
                    $crate::__sqlx::query("INSERT INTO policy_versions (id, key, value, reason, set_by, set_by_name, set_at, version) VALUES ($1, $2, $3, $4, $5, $6, $7, (SELECT COALESCE(MAX(q.version), 0) + 1 FROM policy_versions q WHERE q.key = $2))")
                        .bind($crate::__uuid::Uuid::new_v4().to_string())
                        .bind(key.clone())
                        .bind(value.clone())
                        .bind(format!("{} (approved by {})", reason.unwrap_or_default(), d.by_name))
                        .bind(d.by.to_string())
                        .bind(d.by_name.clone())
                        .bind($crate::codec::ts(d.at))
                        .execute(&mut *tx)
                        .await
                        .map_err($crate::DbError::from_sqlx)?;
                }
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Update, ::ketacare_domain::audit::AuditOutcome::Success, "PolicyProposal", Some(id.to_string()), None, Some(format!("key={key} decision={}", if d.approved { "approved" } else { "rejected" })));
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)?;
                self.list_policy_proposals(false).await?.into_iter().find(|p| p.id == id).ok_or($crate::DbError::NotFound)
            }

            async fn add_care_team_member(&self, ctx: &$crate::AuditCtx, m: &$crate::CareTeamMember) -> $crate::DbResult<()> {
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                Self::__insert_member(&mut *tx, ctx, m).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)
            }

            async fn remove_care_team_member(&self, ctx: &$crate::AuditCtx, patient: ::ketacare_domain::ids::PatientId, user: ::ketacare_domain::ids::UserId, reason: &str) -> $crate::DbResult<()> {
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                let n = $crate::__sqlx::query("UPDATE care_team_members SET removed_by = $1, removed_by_name = $2, removed_at = $3, removal_reason = $4 WHERE patient_id = $5 AND user_id = $6 AND removed_at IS NULL")
                    .bind(ctx.actor.user_id.map(|u| u.to_string()).unwrap_or_default())
                    .bind(ctx.actor.username.clone())
                    .bind($crate::codec::ts(ctx.at))
                    .bind(reason.to_owned())
                    .bind(patient.to_string())
                    .bind(user.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::DbError::from_sqlx)?
                    .rows_affected();
                if n == 0 {
                    return Err($crate::DbError::NotFound);
                }
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Update, ::ketacare_domain::audit::AuditOutcome::Success, "CareTeam", Some(user.to_string()), Some(patient), Some(format!("member removed: {reason}")));
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)
            }

            async fn care_team(&self, ctx: &$crate::AuditCtx, patient: ::ketacare_domain::ids::PatientId) -> $crate::DbResult<Vec<$crate::CareTeamMember>> {
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                let rows: Vec<(String, String, String, String, String, String)> = $crate::__sqlx::query_as(
                    "SELECT id, patient_id, user_id, added_by, added_by_name, added_at FROM care_team_members WHERE patient_id = $1 AND removed_at IS NULL ORDER BY added_at, id",
                )
                .bind(patient.to_string())
                .fetch_all(&mut *tx)
                .await
                .map_err($crate::DbError::from_sqlx)?;
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Read, ::ketacare_domain::audit::AuditOutcome::Success, "CareTeam", None, Some(patient), Some(format!("{} members", rows.len())));
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)?;
                rows.into_iter()
                    .map(|(id, pid, uid, by, by_name, at)| {
                        Ok($crate::CareTeamMember {
                            id: $crate::sql::uuid_col(&id)?,
                            patient_id: $crate::sql::id_col(&pid, ::ketacare_domain::ids::PatientId::parse)?,
                            user_id: $crate::sql::id_col(&uid, ::ketacare_domain::ids::UserId::parse)?,
                            added_by: $crate::sql::id_col(&by, ::ketacare_domain::ids::UserId::parse)?,
                            added_by_name: by_name,
                            added_at: $crate::codec::parse_ts(&at)?,
                        })
                    })
                    .collect()
            }

            async fn patient_of(&self, thing: $crate::Owned, id: &str) -> $crate::DbResult<Option<::ketacare_domain::ids::PatientId>> {
                let pid: Option<String> = $crate::__sqlx::query_scalar(thing.patient_query()).bind(id.to_owned()).fetch_optional(&self.pool).await.map_err($crate::DbError::from_sqlx)?;
                pid.map(|p| $crate::sql::id_col(&p, ::ketacare_domain::ids::PatientId::parse)).transpose()
            }

            async fn care_team_patients(&self, user: ::ketacare_domain::ids::UserId) -> $crate::DbResult<Vec<::ketacare_domain::ids::PatientId>> {
                let rows: Vec<(String,)> = $crate::__sqlx::query_as("SELECT patient_id FROM care_team_members WHERE user_id = $1 AND removed_at IS NULL")
                    .bind(user.to_string())
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                rows.into_iter().map(|(p,)| $crate::sql::id_col(&p, ::ketacare_domain::ids::PatientId::parse)).collect()
            }

            async fn create_emergency_access(&self, ctx: &$crate::AuditCtx, g: &$crate::EmergencyAccess) -> $crate::DbResult<()> {
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                $crate::__sqlx::query("INSERT INTO emergency_access (id, patient_id, user_id, username, reason, granted_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                    .bind(g.id.to_string())
                    .bind(g.patient_id.to_string())
                    .bind(g.user_id.to_string())
                    .bind(g.username.clone())
                    .bind(g.reason.clone())
                    .bind($crate::codec::ts(g.granted_at))
                    .bind($crate::codec::ts(g.expires_at))
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                let flagged = $crate::AuditCtx { actor: ctx.actor.clone(), at: ctx.at, purpose: "emergency" };
                let e = $crate::sql::event(&flagged, ::ketacare_domain::audit::AuditAction::Create, ::ketacare_domain::audit::AuditOutcome::Success, "EmergencyAccess", Some(g.id.to_string()), Some(g.patient_id), Some(format!("until {}; reason: {}", $crate::codec::ts(g.expires_at), g.reason)));
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)
            }

            async fn active_emergency_access(&self, user: ::ketacare_domain::ids::UserId, now: ::chrono::DateTime<::chrono::Utc>) -> $crate::DbResult<Vec<$crate::EmergencyAccess>> {
                let sql = format!("SELECT {} FROM emergency_access WHERE user_id = $1 AND granted_at <= $2 AND expires_at > $2 ORDER BY granted_at DESC, id", $crate::sql::EMERGENCY_COLS);
                let rows: Vec<$crate::sql::EmergencyRow> = $crate::__sqlx::query_as(&sql)
                    .bind(user.to_string())
                    .bind($crate::codec::ts(now))
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                rows.into_iter().map($crate::sql::emergency_from_row).collect()
            }

            async fn list_emergency_access(&self, unreviewed_only: bool, limit: i64) -> $crate::DbResult<Vec<$crate::EmergencyAccess>> {
                let filter = if unreviewed_only { "WHERE reviewed_at IS NULL" } else { "" };
                let sql = format!("SELECT {} FROM emergency_access {filter} ORDER BY granted_at DESC, id LIMIT $1", $crate::sql::EMERGENCY_COLS);
                let rows: Vec<$crate::sql::EmergencyRow> = $crate::__sqlx::query_as(&sql).bind(limit).fetch_all(&self.pool).await.map_err($crate::DbError::from_sqlx)?;
                rows.into_iter().map($crate::sql::emergency_from_row).collect()
            }

            async fn review_emergency_access(&self, ctx: &$crate::AuditCtx, id: $crate::__uuid::Uuid, review: &$crate::AccessReview) -> $crate::DbResult<$crate::EmergencyAccess> {
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                let sql = format!("SELECT {} FROM emergency_access WHERE id = $1", $crate::sql::EMERGENCY_COLS);
                let row: Option<$crate::sql::EmergencyRow> = $crate::__sqlx::query_as(&sql).bind(id.to_string()).fetch_optional(&mut *tx).await.map_err($crate::DbError::from_sqlx)?;
                let Some(mut g) = row.map($crate::sql::emergency_from_row).transpose()? else { return Err($crate::DbError::NotFound) };
                let n = $crate::__sqlx::query("UPDATE emergency_access SET reviewed_by = $1, reviewed_by_name = $2, reviewed_at = $3, review_note = $4 WHERE id = $5 AND reviewed_at IS NULL")
                    .bind(review.by.to_string())
                    .bind(review.by_name.clone())
                    .bind($crate::codec::ts(review.at))
                    .bind(review.note.clone())
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::DbError::from_sqlx)?
                    .rows_affected();
                if n != 1 {
                    return Err($crate::DbError::Conflict("the emergency access was already reviewed".into()));
                }
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Update, ::ketacare_domain::audit::AuditOutcome::Success, "EmergencyAccess", Some(id.to_string()), Some(g.patient_id), Some(format!("reviewed: {}", review.note)));
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)?;
                g.review = Some(review.clone());
                Ok(g)
            }

            async fn set_policy(&self, ctx: &$crate::AuditCtx, v: &$crate::PolicyVersion) -> $crate::DbResult<()> {
                let mut tx = self.begin_write().await.map_err($crate::DbError::from_sqlx)?;
                $crate::__sqlx::query("INSERT INTO policy_versions (id, key, value, reason, set_by, set_by_name, set_at, version) VALUES ($1, $2, $3, $4, $5, $6, $7, (SELECT COALESCE(MAX(q.version), 0) + 1 FROM policy_versions q WHERE q.key = $2))")
                    .bind($crate::__uuid::Uuid::new_v4().to_string())
                    .bind(v.key.clone())
                    .bind(v.value.clone())
                    .bind(v.reason.clone())
                    .bind(v.set_by.to_string())
                    .bind(v.set_by_name.clone())
                    .bind($crate::codec::ts(v.set_at))
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::DbError::from_sqlx)?;
                let e = $crate::sql::event(ctx, ::ketacare_domain::audit::AuditAction::Update, ::ketacare_domain::audit::AuditOutcome::Success, "ClinicPolicy", Some(v.key.clone()), None, Some(match v.value.as_deref() {
                    None => "value=default".to_owned(),
                    // Long values (a wording file) are recorded by size; the policy table keeps the text.
                    Some(x) if x.chars().count() > 120 => format!("value=({} characters)", x.chars().count()),
                    Some(x) => format!("value={x}"),
                }));
                Self::__audit(&mut *tx, &e).await?;
                tx.commit().await.map_err($crate::DbError::from_sqlx)
            }

            async fn current_policies(&self) -> $crate::DbResult<Vec<$crate::PolicyVersion>> {
                let rows: Vec<(String, Option<String>, String, String, String, String)> = $crate::__sqlx::query_as(
                    "SELECT p.key, p.value, p.reason, p.set_by, p.set_by_name, p.set_at FROM policy_versions p WHERE p.version = (SELECT MAX(q.version) FROM policy_versions q WHERE q.key = p.key) ORDER BY p.key",
                )
                .fetch_all(&self.pool)
                .await
                .map_err($crate::DbError::from_sqlx)?;
                rows.into_iter()
                    .map(|(key, value, reason, by, by_name, at)| {
                        Ok($crate::PolicyVersion {
                            key,
                            value,
                            reason,
                            set_by: ::ketacare_domain::ids::UserId::parse(&by).map_err(|_| $crate::DbError::Corrupt("identifier".into()))?,
                            set_by_name: by_name,
                            set_at: $crate::codec::parse_ts(&at)?,
                        })
                    })
                    .collect()
            }
        }
    };
}

/// A login challenge from its row.
#[allow(clippy::type_complexity)]
pub fn challenge_from_row(
    row: Option<(String, String, String, Option<String>, String, String, i64)>,
) -> crate::DbResult<Option<crate::LoginChallenge>> {
    let Some((token_hash, user_id, purpose, pending_secret, created_at, expires_at, attempts)) = row else { return Ok(None) };
    Ok(Some(crate::LoginChallenge {
        token_hash,
        user_id: ketacare_domain::ids::UserId::parse(&user_id)
            .map_err(|e| crate::DbError::Corrupt(format!("login_challenges.user_id: {e}")))?,
        purpose: match purpose.as_str() {
            "login" => crate::ChallengePurpose::Login,
            "enrol" => crate::ChallengePurpose::Enrol,
            "account_enrol" => crate::ChallengePurpose::AccountEnrol,
            other => return Err(crate::DbError::Corrupt(format!("login_challenges.purpose {other}"))),
        },
        pending_secret,
        created_at: crate::codec::parse_ts(&created_at)?,
        expires_at: crate::codec::parse_ts(&expires_at)?,
        attempts: u32::try_from(attempts).map_err(|_| crate::DbError::Corrupt(format!("login_challenges.attempts {attempts}")))?,
    }))
}

/// Columns of `emergency_access`, in the order of [`EmergencyRow`].
pub const EMERGENCY_COLS: &str =
    "id, patient_id, user_id, username, reason, granted_at, expires_at, reviewed_by, reviewed_by_name, reviewed_at, review_note";

/// A row of `emergency_access`.
pub type EmergencyRow =
    (String, String, String, String, String, String, String, Option<String>, Option<String>, Option<String>, Option<String>);

/// A uuid column.
pub fn uuid_col(s: &str) -> crate::DbResult<uuid::Uuid> {
    uuid::Uuid::parse_str(s).map_err(|e| crate::DbError::Corrupt(format!("identifier {s}: {e}")))
}

/// An id column parsed by `parse`.
pub fn id_col<T, E: std::fmt::Display>(s: &str, parse: impl Fn(&str) -> Result<T, E>) -> crate::DbResult<T> {
    parse(s).map_err(|e| crate::DbError::Corrupt(format!("identifier {s}: {e}")))
}

/// An emergency access from its row.
pub fn emergency_from_row(r: EmergencyRow) -> crate::DbResult<crate::EmergencyAccess> {
    use ketacare_domain::ids::{PatientId, UserId};
    let (id, pid, uid, username, reason, granted, expires, by, by_name, at, note) = r;
    let review = match (by, at) {
        (Some(by), Some(at)) => Some(crate::AccessReview {
            by: id_col(&by, UserId::parse)?,
            by_name: by_name.unwrap_or_default(),
            at: crate::codec::parse_ts(&at)?,
            note: note.unwrap_or_default(),
        }),
        _ => None,
    };
    Ok(crate::EmergencyAccess {
        id: uuid_col(&id)?,
        patient_id: id_col(&pid, PatientId::parse)?,
        user_id: id_col(&uid, UserId::parse)?,
        username,
        reason,
        granted_at: crate::codec::parse_ts(&granted)?,
        expires_at: crate::codec::parse_ts(&expires)?,
        review,
    })
}
