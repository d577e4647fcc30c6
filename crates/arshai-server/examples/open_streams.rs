//! Memory per open stream: holds N streamed turns open at once against a server whose
//! upstream is slow, and reads the server's resident memory while they are all open.
//!
//! ```text
//! open_streams --server 127.0.0.1:8000 --pid <server pid> [--streams 4000]
//!              [--endpoint chat|messages] [--agent assistant] [--open-timeout 60]
//! ```
//!
//! Each stream is one raw HTTP/1.1 connection (`Connection: close`, so the tool keeps no
//! pool and reads each response to its end): `POST /v1/chat/completions` with
//! `"stream": true` (stateless), or `POST /v1/agents/{agent}/messages` with `"stream": true`
//! (a new conversation each). The tool reads the server's `VmRSS` from `/proc/<pid>/status`
//! before the first request (idle), then polls the server's `arshai_turns_in_flight` gauge on
//! `/metrics` until all N turns are in flight and reads it again (open), then waits for every
//! stream to end and counts those that ended with their done marker (`data: [DONE]`, or the
//! `done` event) as completed and everything else as errors. The upstream must be slow enough
//! (`arshai-fake-upstream --latency-ms`) that the last stream opens before the first ends.
//! `scripts/bench-open-streams` starts the processes and runs this.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

struct Args {
    server: String,
    pid: u32,
    streams: usize,
    messages_endpoint: bool,
    agent: String,
    open_timeout: Duration,
    connect_parallelism: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        server: "127.0.0.1:8000".to_owned(),
        pid: 0,
        streams: 4000,
        messages_endpoint: false,
        agent: "assistant".to_owned(),
        open_timeout: Duration::from_secs(60),
        connect_parallelism: 128,
    };
    let mut raw = std::env::args().skip(1);
    while let Some(flag) = raw.next() {
        let value = raw
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--server" => {
                args.server = value
                    .trim_start_matches("http://")
                    .trim_end_matches('/')
                    .to_owned();
            }
            "--pid" => args.pid = value.parse()?,
            "--streams" => args.streams = value.parse()?,
            "--agent" => args.agent = value,
            "--open-timeout" => args.open_timeout = Duration::from_secs_f64(value.parse()?),
            "--connect-parallelism" => args.connect_parallelism = value.parse()?,
            "--endpoint" => {
                args.messages_endpoint = match value.as_str() {
                    "chat" => false,
                    "messages" => true,
                    other => bail!("--endpoint is chat or messages, not {other}"),
                }
            }
            other => bail!("unknown flag {other}"),
        }
    }
    if args.pid == 0 {
        bail!("--pid <server pid> is required");
    }
    Ok(args)
}

/// `VmRSS` of `pid`, in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .context("no VmRSS in /proc/<pid>/status")
}

/// How one stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Completed,
    Connect,
    Io,
    Status(u16),
    NoDoneMarker,
}

/// The head and the tail of the response the tool keeps (enough for the status line and
/// for the done marker, which the `done` event's data follows; the rest is read and dropped
/// so the tool's own memory stays small).
const KEEP: usize = 4096;

async fn one_stream(
    server: Arc<str>,
    request: Arc<[u8]>,
    done_marker: &'static [u8],
    connecting: Arc<Semaphore>,
) -> Outcome {
    let permit = connecting.acquire_owned().await;
    let Ok(mut socket) = TcpStream::connect(&*server).await else {
        return Outcome::Connect;
    };
    if socket.write_all(&request).await.is_err() {
        return Outcome::Io;
    }
    drop(permit);
    let mut head = Vec::with_capacity(KEEP);
    let mut tail: Vec<u8> = Vec::with_capacity(2 * KEEP);
    let mut buffer = [0u8; 4096];
    loop {
        match socket.read(&mut buffer).await {
            Ok(0) => break,
            Ok(read) => {
                if head.len() < KEEP {
                    let take = read.min(KEEP - head.len());
                    head.extend_from_slice(&buffer[..take]);
                }
                tail.extend_from_slice(&buffer[..read]);
                if tail.len() > KEEP {
                    tail.drain(..tail.len() - KEEP);
                }
            }
            Err(_) => return Outcome::Io,
        }
    }
    let status = std::str::from_utf8(&head[..head.len().min(64)])
        .ok()
        .and_then(|text| text.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .unwrap_or(0);
    if status != 200 {
        return Outcome::Status(status);
    }
    if tail.windows(done_marker.len()).any(|w| w == done_marker) {
        Outcome::Completed
    } else {
        Outcome::NoDoneMarker
    }
}

/// The server's `arshai_turns_in_flight`, read from `/metrics` on a fresh connection.
async fn turns_in_flight(server: &str) -> anyhow::Result<u64> {
    let mut socket = TcpStream::connect(server).await?;
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await?;
    let mut body = Vec::new();
    socket.read_to_end(&mut body).await?;
    let text = String::from_utf8_lossy(&body);
    text.lines()
        .find_map(|line| line.strip_prefix("arshai_turns_in_flight "))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map(|value| value as u64)
        .context("no arshai_turns_in_flight on /metrics")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let content = "Tell me a short story about the sea";
    let (path, body, done_marker): (String, String, &'static [u8]) = if args.messages_endpoint {
        (
            format!("/v1/agents/{}/messages", args.agent),
            format!(r#"{{"message":"{content}","stream":true}}"#),
            b"event: done",
        )
    } else {
        (
            "/v1/chat/completions".to_owned(),
            format!(
                r#"{{"model":"{}","messages":[{{"role":"user","content":"{content}"}}],"stream":true}}"#,
                args.agent
            ),
            b"data: [DONE]",
        )
    };
    let request: Arc<[u8]> = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Accept: text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        args.server,
        body.len()
    )
    .into_bytes()
    .into();
    let server: Arc<str> = args.server.clone().into();

    let idle = rss_kib(args.pid)?;
    let before = turns_in_flight(&server).await?;
    println!("idle: server VmRSS {idle} KiB, {before} turns in flight");

    let started = Instant::now();
    let connecting = Arc::new(Semaphore::new(args.connect_parallelism));
    let mut streams = Vec::with_capacity(args.streams);
    for _ in 0..args.streams {
        streams.push(tokio::spawn(one_stream(
            Arc::clone(&server),
            Arc::clone(&request),
            done_marker,
            Arc::clone(&connecting),
        )));
    }

    // Wait until every stream is in flight at the server.
    let target = before + args.streams as u64;
    let mut peak = 0;
    let mut peak_rss = idle;
    let all_open = loop {
        let now = turns_in_flight(&server).await.unwrap_or(0);
        peak = peak.max(now);
        peak_rss = peak_rss.max(rss_kib(args.pid).unwrap_or(0));
        if now >= target {
            break true;
        }
        if started.elapsed() > args.open_timeout || streams.iter().all(|s| s.is_finished()) {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let open_after = started.elapsed();
    // Let the last connections settle (their first reads, the allocator), then read.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let open_rss = rss_kib(args.pid)?;
    let in_flight = turns_in_flight(&server).await.unwrap_or(0);
    if all_open {
        println!(
            "open: all {} streams in flight after {:.1} s; server VmRSS {open_rss} KiB \
             ({in_flight} turns in flight)",
            args.streams,
            open_after.as_secs_f64()
        );
    } else {
        println!(
            "open: NOT all streams in flight (peak {peak} of {target}) after {:.1} s; \
             server VmRSS {open_rss} KiB — raise --latency-ms or the limits",
            open_after.as_secs_f64()
        );
    }

    let mut outcomes: BTreeMap<Outcome, usize> = BTreeMap::new();
    for stream in streams {
        let outcome = stream.await.context("a stream task panicked")?;
        *outcomes.entry(outcome).or_default() += 1;
    }
    let completed = outcomes.get(&Outcome::Completed).copied().unwrap_or(0);
    let errors = args.streams - completed;
    let after = rss_kib(args.pid)?;
    let per_stream = (open_rss.saturating_sub(idle)) as f64 / args.streams as f64;
    println!(
        "done after {:.1} s: {completed} completed, {errors} errors {:?}; server VmRSS after \
         {after} KiB",
        started.elapsed().as_secs_f64(),
        outcomes
            .iter()
            .filter(|(o, _)| **o != Outcome::Completed)
            .collect::<Vec<_>>()
    );
    println!(
        "RESULT streams={} idle_kib={idle} open_kib={open_rss} peak_kib={} kib_per_stream={per_stream:.1} \
         completed={completed} errors={errors} all_open={all_open}",
        args.streams,
        peak_rss.max(open_rss),
    );
    Ok(())
}
