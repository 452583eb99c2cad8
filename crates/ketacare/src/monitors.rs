//! Bedside monitors: the MLLP listener's handler (HL7 v2 ORU^R01 → the session's readings and
//! alarms, stored before the ACK), and the demo's simulated monitors.

use chrono::Utc;
use ketacare_app::{App, AppError, MonitorBatch};
use ketacare_db::session::ReadingSource;
use ketacare_demo::room::{RoomChair, Story};
use ketacare_hl7::{AckCode, OruHandler, OruMessage, Reading};
use std::net::SocketAddr;
use std::sync::Arc;

/// Files each accepted ORU^R01 into the session its monitor is bound to (device id, else the
/// PV1-3 location). AA: stored (values that are not readings are counted in MSA-3 and never
/// stored); AE: no active session for this monitor, or storage failed (the monitor resends).
pub struct MonitorHandler {
    /// The application.
    pub app: Arc<App>,
}

#[async_trait::async_trait]
impl OruHandler for MonitorHandler {
    async fn handle(&self, _peer: SocketAddr, msg: OruMessage) -> (AckCode, String) {
        // Status X rows are device-hierarchy rows without a value: never readings.
        let values: Vec<(String, String, Option<chrono::DateTime<Utc>>)> = msg
            .observations
            .iter()
            .map(|o| (o.observation_id.clone(), if o.status == "X" { String::new() } else { o.value.clone() }, o.observed_at))
            .collect();
        let by = format!("monitor {}", msg.device_id.as_deref().unwrap_or("unknown"));
        let batch = MonitorBatch {
            source: ReadingSource::Hl7,
            device_id: msg.device_id.as_deref(),
            location: msg.location.as_deref(),
            message_id: Some(&msg.control_id),
            values: &values,
            by: &by,
        };
        let r = self.app.ingest_monitor(batch, None).await;
        match r {
            Ok(o) if o.rejected.is_empty() => (AckCode::Accept, format!("stored {}", o.stored)),
            Ok(o) => {
                (AckCode::Accept, format!("stored {}; {} values were not readings (no value or implausible)", o.stored, o.rejected.len()))
            }
            Err(AppError::NotFound) => (AckCode::Error, "no active treatment session is bound to this monitor or location".into()),
            Err(AppError::Conflict(why)) => (AckCode::Error, why),
            Err(e) => {
                tracing::warn!(error = %e, control_id = %msg.control_id, "monitor message not stored");
                (AckCode::Error, "not stored; send again".into())
            }
        }
    }
}

/// The MDC terms (OBX-3) and units (OBX-6) the simulated monitors send (IHE PCD-01).
pub mod mdc {
    /// Non-invasive systolic pressure.
    pub const SYS: &str = "150021^MDC_PRESS_BLD_NONINV_SYS^MDC";
    /// Non-invasive diastolic pressure.
    pub const DIA: &str = "150022^MDC_PRESS_BLD_NONINV_DIA^MDC";
    /// Heart rate from the ECG.
    pub const HR: &str = "147842^MDC_ECG_HEART_RATE^MDC";
    /// SpO2.
    pub const SPO2: &str = "150456^MDC_PULS_OXIM_SAT_O2^MDC";
    /// Respiratory rate.
    pub const RR: &str = "151562^MDC_RESP_RATE^MDC";
    /// mmHg.
    pub const MMHG: &str = "266016^MDC_DIM_MMHG^MDC";
    /// Beats per minute.
    pub const BPM: &str = "264864^MDC_DIM_BEAT_PER_MIN^MDC";
    /// Percent.
    pub const PCT: &str = "262688^MDC_DIM_PERCENT^MDC";
    /// Breaths per minute.
    pub const RPM: &str = "264928^MDC_DIM_RESP_PER_MIN^MDC";
}
use mdc::*;

/// The readings a demo monitor sends at second `t` of its story (`None`: silent).
pub fn demo_readings(story: Story, t: u64) -> Option<Vec<Reading>> {
    let wobble = |n: u64| (t.wrapping_mul(7919).wrapping_add(n) % 5) as i64 - 2;
    let (sys, dia) = match story {
        Story::Calm => (122 + wobble(1), 78 + wobble(2)),
        // From 134 up by one mmHg every 3 s to a plateau of 186/104.
        Story::Hypertensive => ((134 + (t / 3) as i64).min(186) + wobble(1).abs(), (86 + (t / 8) as i64).min(104)),
        Story::Silent if t > 20 => return None,
        Story::Silent => (116 + wobble(1), 74 + wobble(2)),
    };
    let r = |mdc, value: i64, unit| Reading { mdc, value: value.to_string(), unit };
    let mut out = vec![r(HR, 76 + wobble(3), BPM), r(SPO2, 97 + wobble(4).min(1), PCT), r(RR, 14 + wobble(5) / 2, RPM)];
    // The cuff measures every 30 s in the demo (every 10-15 min in clinic).
    if t.is_multiple_of(30) {
        out.push(r(SYS, sys, MMHG));
        out.push(r(DIA, dia, MMHG));
    }
    Some(out)
}

/// Runs the demo room's monitors: each chair sends one ORU^R01 a second over MLLP to `addr`
/// (reconnecting if the connection drops), until the process stops.
pub fn simulate_room(addr: SocketAddr, chairs: Vec<RoomChair>) {
    for c in chairs {
        tokio::spawn(async move {
            let mut t: u64 = 0;
            let mut stream: Option<tokio::net::TcpStream> = None;
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                t += 1;
                let Some(readings) = demo_readings(c.story, t) else { continue };
                if stream.is_none() {
                    stream = tokio::net::TcpStream::connect(addr).await.ok();
                }
                let Some(s) = stream.as_mut() else { continue };
                let msg = ketacare_hl7::build_oru(&format!("{}-{t}", &c.device[12..]), c.device, c.chair, Utc::now(), &readings);
                if ketacare_hl7::send(s, &msg).await.is_err() {
                    stream = None;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_stories_do_what_they_say() {
        let sys = |story, t| demo_readings(story, t).unwrap().iter().find(|r| r.mdc == SYS).map(|r| r.value.parse::<i64>().unwrap());
        assert!(sys(Story::Calm, 300).unwrap() < 140);
        assert!(sys(Story::Hypertensive, 30).unwrap() < 150);
        assert!(sys(Story::Hypertensive, 300).unwrap() > 180, "the hypertensive chair crosses the alarm limit");
        assert!(demo_readings(Story::Silent, 10).is_some());
        assert!(demo_readings(Story::Silent, 21).is_none(), "the silent monitor stops");
    }
}
