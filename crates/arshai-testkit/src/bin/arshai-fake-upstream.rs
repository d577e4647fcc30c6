//! Runs the fake OpenAI-compatible upstream as its own process, for local runs and load tests.
//!
//! `arshai-fake-upstream [--port P] [--latency-ms MS]`

use std::time::Duration;

use arshai_testkit::{FakeUpstream, UpstreamOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut options = UpstreamOptions::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--port" => options.port = value.parse()?,
            "--latency-ms" => options.latency = Duration::from_millis(value.parse()?),
            other => anyhow::bail!("unknown flag {other}; use --port and --latency-ms"),
        }
    }
    let upstream = FakeUpstream::start_with(options).await?;
    println!(
        "fake OpenAI-compatible upstream listening on {}",
        upstream.base_url()
    );
    tokio::select! {
        () = upstream.wait_forever() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}
