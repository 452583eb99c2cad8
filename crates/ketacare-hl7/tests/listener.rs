//! The MLLP listener over real TCP on 127.0.0.1.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{minimal, utc, SAMPLE};
use ketacare_hl7::mllp::{frame, send, serve, ListenerConfig, OruHandler, START_BLOCK};
use ketacare_hl7::{ack_code_of, AckCode, OruMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Records every call; answers AE for control id `FAIL` and panics for `PANIC`.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<(SocketAddr, OruMessage)>>,
}

impl Recorder {
    fn control_ids(&self) -> Vec<String> {
        self.calls.lock().unwrap().iter().map(|(_, m)| m.control_id.clone()).collect()
    }
}

#[async_trait::async_trait]
impl OruHandler for Recorder {
    async fn handle(&self, peer: SocketAddr, msg: OruMessage) -> (AckCode, String) {
        match msg.control_id.as_str() {
            "PANIC" => panic!("handler bug"),
            "FAIL" => (AckCode::Error, "storage unavailable".to_owned()),
            _ => {
                let n = msg.observations.len();
                self.calls.lock().unwrap().push((peer, msg));
                (AckCode::Accept, format!("stored {n} observations"))
            }
        }
    }
}

struct Server {
    addr: SocketAddr,
    recorder: Arc<Recorder>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(config: ListenerConfig) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let recorder = Arc::new(Recorder::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let handler: Arc<dyn OruHandler> = recorder.clone();
        let now = Arc::new(|| utc(2024, 3, 1, 12, 0, 0));
        let task = tokio::spawn(serve(listener, handler, config, now, async move {
            let _ = stopped.await;
        }));
        Server { addr, recorder, stop: Some(stop), task }
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }

    /// Stops the listener and checks that it returns promptly, even with connections open.
    async fn shutdown(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        let result = tokio::time::timeout(Duration::from_secs(5), self.task).await.expect("serve returns after shutdown");
        result.unwrap().unwrap();
    }
}

async fn exchange(stream: &mut TcpStream, message: &str) -> (String, String) {
    let ack = tokio::time::timeout(Duration::from_secs(5), send(stream, message)).await.expect("ACK in time").unwrap();
    ack_code_of(&ack).unwrap_or_else(|| panic!("not an ACK: {ack:?}"))
}

fn aa(id: &str) -> (String, String) {
    ("AA".to_owned(), id.to_owned())
}

#[tokio::test]
async fn good_message_is_acknowledged_aa_and_handed_to_the_handler() {
    let server = Server::start(ListenerConfig::default()).await;
    let mut client = server.connect().await;
    let ack = send(&mut client, SAMPLE).await.unwrap();
    assert_eq!(ack_code_of(&ack), Some(aa("MSG00042")));
    assert!(
        ack.starts_with(
            "MSH|^~\\&|KETACARE|CLINIC|MONITOR^0123456789ABCDEF^EUI-64|WARD3|20240301120000+0000||ACK^R01^ACK|ACKMSG00042|P|2.6\r"
        ),
        "{ack:?}"
    );
    assert!(ack.contains("MSA|AA|MSG00042|stored 5 observations\r"), "{ack:?}");

    let calls = server.recorder.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0, client.local_addr().unwrap(), "handler gets the peer address");
    assert_eq!(calls[0].1, ketacare_hl7::parse_oru(SAMPLE).unwrap(), "handler gets the parsed message");
    drop(client);
    server.shutdown().await;
}

#[tokio::test]
async fn bad_messages_are_answered_and_the_same_connection_goes_on() {
    let server = Server::start(ListenerConfig::default()).await;
    let mut client = server.connect().await;

    let adt = "MSH|^~\\&|EPIC|EPICADT|SMS|SMSADT|199912271408||ADT^A01|ADT9|P|2.5\rPID||123\r";
    assert_eq!(exchange(&mut client, adt).await, ("AR".to_owned(), "ADT9".to_owned()));
    assert_eq!(exchange(&mut client, "this is not HL7").await, ("AR".to_owned(), String::new()));
    let no_obx = "MSH|^~\\&|MON|||KETACARE|20240301120000+0000||ORU^R01^ORU_R01|NOOBX|P|2.6\rPID|||P1\r";
    assert_eq!(exchange(&mut client, no_obx).await, ("AE".to_owned(), "NOOBX".to_owned()));
    assert_eq!(exchange(&mut client, &minimal("FAIL")).await, ("AE".to_owned(), "FAIL".to_owned()), "handler's AE");
    let ack = send(&mut client, &minimal("PANIC")).await.unwrap();
    assert_eq!(ack_code_of(&ack), Some(("AE".to_owned(), "PANIC".to_owned())), "a panicking handler is answered AE");
    assert!(ack.contains("\rERR|"), "{ack:?}");

    assert_eq!(exchange(&mut client, &minimal("OK1")).await, aa("OK1"));
    assert_eq!(server.recorder.control_ids(), vec!["OK1"], "rejected messages never reach the handler");
    drop(client);
    server.shutdown().await;
}

#[tokio::test]
async fn oversize_frame_is_answered_ar_with_its_id_and_the_connection_goes_on() {
    let server = Server::start(ListenerConfig { max_frame_bytes: 2048, ..ListenerConfig::default() }).await;
    let mut client = server.connect().await;
    let big = format!("{}{}", minimal("BIG1"), "OBX|2|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|97\r".repeat(100));
    assert!(big.len() > 2048);
    assert_eq!(exchange(&mut client, &big).await, ("AR".to_owned(), "BIG1".to_owned()));
    assert_eq!(exchange(&mut client, &minimal("OK2")).await, aa("OK2"));
    assert_eq!(server.recorder.control_ids(), vec!["OK2"]);
    drop(client);
    server.shutdown().await;
}

#[tokio::test]
async fn junk_and_pipelined_frames_on_one_connection() {
    let server = Server::start(ListenerConfig::default()).await;
    let mut client = server.connect().await;
    // Junk, then two frames in one write: both are answered, in order.
    let bytes = [b"\r\nnoise".to_vec(), frame(&minimal("P1")), frame(&minimal("P2"))].concat();
    client.write_all(&bytes).await.unwrap();
    let mut decoder = ketacare_hl7::mllp::MllpDecoder::default();
    let mut acks = Vec::new();
    while acks.len() < 2 {
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "server closed early");
        decoder.feed(&chunk[..n]);
        while let Some(ketacare_hl7::mllp::MllpFrame::Message { text, .. }) = decoder.next_frame() {
            acks.push(ack_code_of(&text).unwrap());
        }
    }
    assert_eq!(acks, vec![aa("P1"), aa("P2")]);
    assert_eq!(server.recorder.control_ids(), vec!["P1", "P2"]);
    drop(client);
    server.shutdown().await;
}

#[tokio::test]
async fn client_leaving_mid_message_does_not_stop_the_listener() {
    let server = Server::start(ListenerConfig::default()).await;
    let mut quitter = server.connect().await;
    let half = frame(SAMPLE);
    quitter.write_all(&half[..half.len() / 2]).await.unwrap();
    quitter.shutdown().await.unwrap();
    drop(quitter);

    let mut client = server.connect().await;
    assert_eq!(exchange(&mut client, SAMPLE).await, aa("MSG00042"));
    // A restart on the same connection: half a frame, then a whole one.
    let mut restarter = server.connect().await;
    restarter.write_all(&[START_BLOCK]).await.unwrap();
    restarter.write_all(b"MSH|^~\\&|half").await.unwrap();
    assert_eq!(exchange(&mut restarter, &minimal("R2")).await, aa("R2"));
    assert_eq!(server.recorder.control_ids(), vec!["MSG00042", "R2"]);
    drop((client, restarter));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_clients_each_get_their_acks() {
    let server = Server::start(ListenerConfig::default()).await;
    let clients: Vec<_> = (0..20)
        .map(|c| {
            let addr = server.addr;
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(addr).await.unwrap();
                for m in 0..5 {
                    let id = format!("C{c}M{m}");
                    assert_eq!(exchange(&mut stream, &minimal(&id)).await, aa(&id));
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    let mut ids = server.recorder.control_ids();
    ids.sort();
    let mut expected: Vec<String> = (0..20).flat_map(|c| (0..5).map(move |m| format!("C{c}M{m}"))).collect();
    expected.sort();
    assert_eq!(ids, expected, "every message handled exactly once");
    server.shutdown().await;
}

#[tokio::test]
async fn idle_connection_is_closed_and_shutdown_closes_open_connections() {
    let server = Server::start(ListenerConfig { idle_timeout: Duration::from_millis(200), ..ListenerConfig::default() }).await;
    let mut idle = server.connect().await;
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf)).await.expect("closed by the server").unwrap_or(0);
    assert_eq!(n, 0, "an idle connection is closed");

    // A connection that is open (and not idle long enough) when shutdown comes is closed too.
    let server2 = Server::start(ListenerConfig::default()).await;
    let mut open = server2.connect().await;
    assert_eq!(exchange(&mut open, &minimal("S1")).await, aa("S1"));
    server2.shutdown().await;
    let n = tokio::time::timeout(Duration::from_secs(5), open.read(&mut buf)).await.expect("closed at shutdown").unwrap_or(0);
    assert_eq!(n, 0);
    server.shutdown().await;
}
