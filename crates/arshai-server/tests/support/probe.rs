//! A TCP pass-through between the server and its upstream that sees what HTTP hides: when
//! the server closes its upstream connection, and how much of the answer had passed by then.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Default, Clone)]
pub struct ConnectionLog {
    /// Bytes the upstream sent toward the server on this connection.
    pub from_upstream: Vec<u8>,
    /// The server closed (or reset) its side.
    pub closed_by_server: bool,
}

pub struct Probe {
    pub addr: SocketAddr,
    connections: Arc<Mutex<Vec<Arc<Mutex<ConnectionLog>>>>>,
}

impl Probe {
    /// Listens on an ephemeral port and forwards every connection to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind probe");
        let addr = listener.local_addr().expect("probe addr");
        let connections: Arc<Mutex<Vec<Arc<Mutex<ConnectionLog>>>>> = Arc::default();
        let registry = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((server_side, _)) = listener.accept().await {
                let log = Arc::new(Mutex::new(ConnectionLog::default()));
                registry.lock().unwrap().push(Arc::clone(&log));
                tokio::spawn(forward(server_side, target, log));
            }
        });
        Self { addr, connections }
    }

    /// The base URL of the OpenAI-compatible API through the probe.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn connections(&self) -> Vec<ConnectionLog> {
        self.connections
            .lock()
            .unwrap()
            .iter()
            .map(|log| log.lock().unwrap().clone())
            .collect()
    }
}

async fn forward(server_side: TcpStream, target: SocketAddr, log: Arc<Mutex<ConnectionLog>>) {
    let Ok(upstream) = TcpStream::connect(target).await else {
        return;
    };
    let (mut server_read, mut server_write) = server_side.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let down_log = Arc::clone(&log);
    let down = tokio::spawn(async move {
        let mut buffer = [0u8; 8192];
        loop {
            match upstream_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    down_log
                        .lock()
                        .unwrap()
                        .from_upstream
                        .extend_from_slice(&buffer[..n]);
                    if server_write.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut buffer = [0u8; 8192];
    loop {
        match server_read.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if upstream_write.write_all(&buffer[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    log.lock().unwrap().closed_by_server = true;
    // Closing our side toward the upstream ends its answer too.
    drop(upstream_write);
    down.abort();
}
