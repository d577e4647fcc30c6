//! Time of one forward pass of the embedded model by shape: decoding steps of 1, 4 and 8
//! sequences (at positions 16 and 256) and a 44-token prompt, on 1 and 2 threads.
//!
//! ```sh
//! scripts/fetch-model
//! cargo run --release -p arshai-llama --example forward_bench [-- --q8_0]
//! ```

use std::fs::File;
use std::io::BufReader;
use std::time::Instant;

use arshai_llama::{Llama, Rows};
use candle_core::quantized::gguf_file;

fn main() -> candle_core::Result<()> {
    let q8_0 = std::env::args().any(|arg| arg == "--q8_0");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/SmolLM2-135M-Instruct-Q4_1.gguf");
    let mut reader = BufReader::new(File::open(&path)?);
    let content = gguf_file::Content::read(&mut reader)?;
    let mut model = Llama::from_gguf(&content, &mut reader, q8_0)?;
    println!(
        "kernels: {}, weights: {}",
        model.kernels(),
        if q8_0 { "Q8_0" } else { "as in the file" }
    );
    for threads in [1, 2] {
        model = model.with_threads(threads);
        for (sequences, position) in [(1, 16), (1, 256), (4, 256), (8, 16), (8, 256)] {
            let mut caches: Vec<_> = (0..sequences)
                .map(|_| model.cache(320))
                .collect::<candle_core::Result<_>>()?;
            // Fill each cache to position 256.
            let filler: Vec<u32> = (0..position).map(|i| 100 + i).collect();
            for cache in &mut caches {
                model.forward(&mut [Rows {
                    tokens: &filler,
                    cache,
                }])?;
            }
            let steps = 32;
            let started = Instant::now();
            for step in 0..steps {
                let token = [500 + step];
                let mut rows: Vec<Rows> = caches
                    .iter_mut()
                    .map(|cache| Rows {
                        tokens: &token,
                        cache,
                    })
                    .collect();
                model.forward(&mut rows)?;
            }
            let per_step = started.elapsed().as_secs_f64() / f64::from(steps);
            println!(
                "threads {threads}: decode step of {sequences} at position {position}: {:.2} ms ({:.0} tokens/s)",
                per_step * 1e3,
                sequences as f64 / per_step
            );
        }
        let prompt: Vec<u32> = (0..44).map(|i| 200 + i).collect();
        let runs = 8;
        let started = Instant::now();
        for _ in 0..runs {
            let mut cache = model.cache(64)?;
            model.forward(&mut [Rows {
                tokens: &prompt,
                cache: &mut cache,
            }])?;
        }
        let per_run = started.elapsed().as_secs_f64() / f64::from(runs);
        println!(
            "threads {threads}: 44-token prompt: {:.2} ms ({:.0} tokens/s)",
            per_run * 1e3,
            44.0 / per_run
        );
    }
    Ok(())
}
