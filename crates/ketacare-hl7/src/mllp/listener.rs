//! The MLLP listener: one task per connection, messages on a connection handled in order.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

use super::{frame, MllpDecoder, MllpFrame, DEFAULT_MAX_FRAME_BYTES};
use crate::ack::{build_ack, AckCode};
use crate::error::Hl7Error;
use crate::oru::{control_id_of, parse_oru, OruMessage, Rejection};

/// Receives each well-formed ORU^R01 accepted by [`serve`].
#[async_trait::async_trait]
pub trait OruHandler: Send + Sync + 'static {
    /// Called once per well-formed ORU^R01; returns the ACK code and text to send. The handler
    /// stores readings durably BEFORE returning AA. The text goes into MSA-3 / ERR-8 and must
    /// carry no patient data. A handler that panics is answered with AE.
    async fn handle(&self, peer: SocketAddr, msg: OruMessage) -> (AckCode, String);
}

/// Settings of [`serve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// Largest accepted frame content in bytes; larger frames are answered AR and discarded
    /// without closing the connection. Default 1 MiB.
    pub max_frame_bytes: usize,
    /// A connection silent this long (no byte received, or an ACK that cannot be written) is
    /// closed. Default 10 minutes.
    pub idle_timeout: Duration,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig { max_frame_bytes: DEFAULT_MAX_FRAME_BYTES, idle_timeout: Duration::from_secs(600) }
    }
}

/// The clock used for ACK timestamps.
type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Serves MLLP on `listener` until `shutdown` resolves; one task per connection; a bad frame or
/// a client that disconnects mid-message never stops the listener. Rejections from
/// [`parse_oru`] are answered with AE/AR without calling the handler. Messages on one
/// connection are processed in order, one at a time (the ACK is written before the next frame
/// is handled).
///
/// On shutdown it stops accepting, lets each connection finish the message it is handling (so a
/// stored message still gets its ACK), closes the connections and returns once all are closed.
/// Accept errors (e.g. out of file descriptors) are logged and retried with a short back-off;
/// they never end the listener.
///
/// Logs carry peer addresses, control ids, sizes, ACK codes and error kinds, never message
/// content.
///
/// # Errors
///
/// None at present: the `io::Result` leaves room for fatal listener errors.
pub async fn serve(
    listener: TcpListener,
    handler: Arc<dyn OruHandler>,
    config: ListenerConfig,
    now: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut backoff = Duration::from_millis(10);
    tokio::pin!(shutdown);
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "MLLP listener started");
    }
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = joined {
                    error!(panic = e.is_panic(), "MLLP connection task failed");
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    backoff = Duration::from_millis(10);
                    let connection = Connection {
                        peer,
                        handler: Arc::clone(&handler),
                        config: config.clone(),
                        now: Arc::clone(&now),
                        stop: stop_rx.clone(),
                    };
                    connections.spawn(connection.run(stream));
                }
                Err(e) => {
                    warn!(kind = ?e.kind(), "MLLP accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            },
        }
    }
    drop(listener);
    info!(open_connections = connections.len(), "MLLP listener stopping");
    // Receivers only ever see `true` once; a send error means no connection is left.
    let _ = stop_tx.send(true);
    while let Some(joined) = connections.join_next().await {
        if let Err(e) = joined {
            error!(panic = e.is_panic(), "MLLP connection task failed");
        }
    }
    info!("MLLP listener stopped");
    Ok(())
}

struct Connection {
    peer: SocketAddr,
    handler: Arc<dyn OruHandler>,
    config: ListenerConfig,
    now: Clock,
    stop: watch::Receiver<bool>,
}

impl Connection {
    async fn run(mut self, mut stream: TcpStream) {
        let peer = self.peer;
        // ACKs are small and awaited by the sender: do not let Nagle hold them back.
        let _ = stream.set_nodelay(true);
        info!(%peer, "MLLP connection opened");
        let mut decoder = MllpDecoder::new(self.config.max_frame_bytes);
        let mut chunk = vec![0u8; 16 * 1024];
        let reason = 'connection: loop {
            while let Some(item) = decoder.next_frame() {
                if *self.stop.borrow() {
                    break 'connection "shutdown";
                }
                let ack = frame(&self.answer(item).await);
                let write = tokio::time::timeout(self.config.idle_timeout, stream.write_all(&ack));
                tokio::select! {
                    biased;
                    _ = self.stop.wait_for(|stop| *stop) => break 'connection "shutdown",
                    written = write => match written {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            debug!(%peer, kind = ?e.kind(), "MLLP ACK write failed");
                            break 'connection "write error";
                        }
                        Err(_) => break 'connection "ACK write timed out",
                    },
                }
            }
            let junk = decoder.take_junk_bytes();
            if junk > 0 {
                warn!(%peer, bytes = junk, "discarded bytes outside MLLP frames");
            }
            let read = tokio::time::timeout(self.config.idle_timeout, stream.read(&mut chunk));
            tokio::select! {
                biased;
                _ = self.stop.wait_for(|stop| *stop) => break 'connection "shutdown",
                read = read => match read {
                    Err(_) => break 'connection "idle timeout",
                    Ok(Ok(0)) => break 'connection "closed by peer",
                    Ok(Ok(n)) => decoder.feed(&chunk[..n]),
                    Ok(Err(e)) => {
                        debug!(%peer, kind = ?e.kind(), "MLLP read failed");
                        break 'connection "read error";
                    }
                },
            }
        };
        if decoder.is_mid_frame() {
            warn!(%peer, bytes = decoder.pending_bytes(), reason, "MLLP connection ended in the middle of a message");
        }
        info!(%peer, reason, "MLLP connection closed");
    }

    /// Handles one frame and returns the ACK to send.
    async fn answer(&self, item: MllpFrame) -> String {
        let peer = self.peer;
        let now = (self.now)();
        match item {
            MllpFrame::Message { text, invalid_utf8 } => {
                if invalid_utf8 {
                    warn!(%peer, bytes = text.len(), "MLLP frame was not valid UTF-8; decoded lossily");
                }
                match parse_oru(&text) {
                    Ok(msg) => self.deliver(msg, text.len(), now).await,
                    Err(rejection) => {
                        log_rejection(peer, &rejection, text.len());
                        build_ack(None, rejection.control_id.as_deref(), rejection.code, &rejection.text, now)
                    }
                }
            }
            MllpFrame::Oversize { head, size } => {
                let error = Hl7Error::FrameTooLarge { size, max: self.config.max_frame_bytes };
                let rejection = Rejection::from_error(&error, control_id_of(&head));
                log_rejection(peer, &rejection, size);
                build_ack(None, rejection.control_id.as_deref(), rejection.code, &rejection.text, now)
            }
        }
    }

    /// Passes a parsed message to the handler (in its own task, so that a panicking handler is
    /// answered AE instead of killing the connection) and builds the ACK from its answer.
    async fn deliver(&self, msg: OruMessage, bytes: usize, now: DateTime<Utc>) -> String {
        let peer = self.peer;
        let header = header_of(&msg);
        let observations = msg.observations.len();
        debug!(%peer, control_id = %header.control_id, bytes, observations, "ORU^R01 received");
        let handler = Arc::clone(&self.handler);
        let (code, text) = match tokio::spawn(async move { handler.handle(peer, msg).await }).await {
            Ok(answer) => answer,
            Err(e) => {
                error!(%peer, control_id = %header.control_id, panic = e.is_panic(), "ORU handler failed");
                (AckCode::Error, "internal error while storing the message".to_owned())
            }
        };
        if code == AckCode::Accept {
            debug!(%peer, control_id = %header.control_id, ack = code.code(), "ORU^R01 acknowledged");
        } else {
            warn!(%peer, control_id = %header.control_id, ack = code.code(), "ORU^R01 not accepted by the handler");
        }
        build_ack(Some(&header), Some(&header.control_id), code, &text, now)
    }
}

/// The MSH fields of a message (what an ACK needs), without observations or patient fields.
fn header_of(msg: &OruMessage) -> OruMessage {
    OruMessage {
        control_id: msg.control_id.clone(),
        sending_application: msg.sending_application.clone(),
        sending_facility: msg.sending_facility.clone(),
        receiving_application: msg.receiving_application.clone(),
        receiving_facility: msg.receiving_facility.clone(),
        version: msg.version.clone(),
        message_time: msg.message_time,
        ..OruMessage::default()
    }
}

fn log_rejection(peer: SocketAddr, rejection: &Rejection, bytes: usize) {
    warn!(
        %peer,
        control_id = rejection.control_id.as_deref().unwrap_or(""),
        bytes,
        ack = rejection.code.code(),
        reason = %rejection.text,
        "HL7 message rejected"
    );
}
