//! The forward pass and its kernels against references: the AVX2 products against the
//! portable ones and against plain f32 arithmetic, and the whole model against candle's
//! `quantized_llama` on the real file.

use std::fs::File;
use std::io::BufReader;

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::ModelWeights;

use super::kernels::{Heads, Kernels, exp_nonpositive};
use super::quant::{Activations, QMatrix};
use super::{Llama, Rows};

fn random_values(rng: &mut fastrand::Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.f32() * 4.0 - 2.0).collect()
}

/// A Q4_1 matrix of random blocks, in the file's byte layout.
fn random_q4_1(rng: &mut fastrand::Rng, rows: usize, cols: usize) -> QMatrix {
    let mut raw = Vec::new();
    for _ in 0..rows * cols / 32 {
        raw.extend(half::f16::from_f32(rng.f32() * 0.1).to_le_bytes());
        raw.extend(half::f16::from_f32(rng.f32() * -0.5).to_le_bytes());
        raw.extend((0..16).map(|_| rng.u8(..)));
    }
    QMatrix::from_q4_1(&raw, rows, cols).expect("valid blocks")
}

/// `x · wᵀ` in f32 from the dequantized weights and activations.
fn reference_product(weights: &QMatrix, x: &[f32], rows: usize) -> Vec<f32> {
    let cols = weights.cols;
    let mut row = vec![0.0; cols];
    let mut out = vec![0.0; rows * weights.rows];
    for r in 0..weights.rows {
        weights.dequantize_row(r, &mut row);
        for m in 0..rows {
            out[m * weights.rows + r] = row
                .iter()
                .zip(&x[m * cols..(m + 1) * cols])
                .map(|(a, b)| a * b)
                .sum();
        }
    }
    out
}

fn assert_close(found: &[f32], expected: &[f32], tolerance: f32, what: &str) {
    assert_eq!(found.len(), expected.len());
    let scale = expected
        .iter()
        .fold(1.0f32, |max, value| max.max(value.abs()));
    for (index, (a, b)) in found.iter().zip(expected).enumerate() {
        assert!(
            (a - b).abs() <= tolerance * scale,
            "{what}: element {index}: {a} against {b} (scale {scale})"
        );
    }
}

#[test]
fn products_match_f32_arithmetic_on_every_kernel_and_batch_shape() {
    let mut rng = fastrand::Rng::with_seed(7);
    let (rows, cols) = (70, 96);
    let q4 = random_q4_1(&mut rng, rows, cols);
    let q8 = QMatrix::quantize_q8_0(&random_values(&mut rng, rows * cols), rows, cols)
        .expect("quantizes");
    let kernels = [Kernels::portable(), Kernels::detect()];
    // 1 to 9 activation rows: every group size of the kernels, and a tile's remainder.
    for batch in 1..=9 {
        let x = random_values(&mut rng, batch * cols);
        let mut acts = Activations::default();
        acts.quantize(&x, cols);
        for weights in [&q4, &q8] {
            let expected = reference_product(weights, &x, batch);
            let mut outputs = Vec::new();
            for kernels in kernels {
                let mut out = vec![f32::NAN; batch * rows];
                kernels.matmul(weights, &acts, &mut out);
                // Activations are quantized to 8 bits: within a percent of the f32 result.
                assert_close(&out, &expected, 0.01, kernels.name());
                outputs.push(out);
            }
            // The two kernels sum the same integers: the same up to float rounding.
            assert_close(&outputs[0], &outputs[1], 1e-5, "portable against detected");
        }
    }
}

#[test]
fn each_row_of_a_product_is_the_same_alone_or_in_a_batch() {
    let mut rng = fastrand::Rng::with_seed(11);
    let (rows, cols) = (40, 64);
    let weights = random_q4_1(&mut rng, rows, cols);
    let x = random_values(&mut rng, 7 * cols);
    let mut acts = Activations::default();
    acts.quantize(&x, cols);
    let mut together = vec![0.0; 7 * rows];
    Kernels::detect().matmul(&weights, &acts, &mut together);
    for m in 0..7 {
        acts.quantize(&x[m * cols..(m + 1) * cols], cols);
        let mut alone = vec![0.0; rows];
        Kernels::detect().matmul(&weights, &acts, &mut alone);
        assert_eq!(alone, together[m * rows..(m + 1) * rows], "row {m}");
    }
}

#[test]
fn attention_matches_softmax_over_grouped_heads() {
    let mut rng = fastrand::Rng::with_seed(3);
    let heads = Heads {
        n_head: 6,
        n_kv_head: 2,
        head_dim: 16,
    };
    let positions = 13;
    let kv_dim = 2 * 16;
    let q = random_values(&mut rng, 6 * 16);
    let keys = random_values(&mut rng, positions * kv_dim);
    let values = random_values(&mut rng, positions * kv_dim);
    let mut expected = vec![0.0; 6 * 16];
    for head in 0..6 {
        let kv = head / 3 * 16;
        let scores: Vec<f32> = (0..positions)
            .map(|t| {
                (0..16)
                    .map(|i| q[head * 16 + i] * keys[t * kv_dim + kv + i])
                    .sum::<f32>()
                    / 4.0
            })
            .collect();
        let total: f32 = scores.iter().map(|s| s.exp()).sum();
        for i in 0..16 {
            expected[head * 16 + i] = (0..positions)
                .map(|t| scores[t].exp() / total * values[t * kv_dim + kv + i])
                .sum();
        }
    }
    for kernels in [Kernels::portable(), Kernels::detect()] {
        let mut out = vec![0.0; 6 * 16];
        kernels.attend(heads, 0..6, &q, &keys, &values, &mut Vec::new(), &mut out);
        assert_close(&out, &expected, 1e-5, kernels.name());
        // The heads of one key/value head alone: the same numbers.
        let mut part = vec![0.0; 3 * 16];
        kernels.attend(heads, 3..6, &q, &keys, &values, &mut Vec::new(), &mut part);
        assert_eq!(part, out[3 * 16..]);
        assert_close(&out, &expected, 1e-5, kernels.name());
    }
}

#[test]
fn the_vectorizable_exp_matches_the_standard_one_below_zero() {
    for step in 0..=87_000 {
        let x = -(step as f32) / 1000.0;
        let (found, expected) = (exp_nonpositive(x), x.exp());
        assert!(
            (found - expected).abs() <= 4e-7 * expected.max(f32::MIN_POSITIVE),
            "e^{x}: {found} against {expected}"
        );
    }
    assert_eq!(exp_nonpositive(0.0), 1.0);
    assert!(
        exp_nonpositive(-1000.0) < 1e-37,
        "far below zero is (almost) nothing"
    );
}

fn open() -> (gguf_file::Content, BufReader<File>) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/SmolLM2-135M-Instruct-Q4_1.gguf");
    let mut reader = BufReader::new(File::open(&path).expect("run scripts/fetch-model first"));
    let content = gguf_file::Content::read(&mut reader).expect("a GGUF file");
    (content, reader)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

fn argmax(values: &[f32]) -> usize {
    (0..values.len())
        .max_by(|&a, &b| values[a].total_cmp(&values[b]))
        .unwrap_or(0)
}

#[test]
fn the_forward_pass_matches_candles_quantized_llama_on_the_real_model() {
    let (content, mut reader) = open();
    let ours = Llama::from_gguf(&content, &mut reader, false).expect("loads");
    let (content, mut reader) = open();
    let mut theirs = ModelWeights::from_gguf(content, &mut reader, &Device::Cpu).expect("loads");
    // A ChatML prompt read in one pass, then tokens fed one by one (teacher forcing with
    // candle's greedy choice), comparing the logits after every pass.
    let prompt: Vec<u32> = vec![
        1, 9690, 198, 2683, 359, 253, 5356, 5646, 30, 2, 198, 1, 4093,
    ];
    let mut cache = ours.cache(64).expect("a cache");
    let mut tokens = prompt.clone();
    let mut position = 0;
    for step in 0..8 {
        let input = &tokens[position..];
        let logits = ours
            .forward(&mut [Rows {
                tokens: input,
                cache: &mut cache,
            }])
            .expect("our forward pass");
        let expected = theirs
            .forward(
                &Tensor::new(input, &Device::Cpu)
                    .and_then(|ids| ids.unsqueeze(0))
                    .expect("ids"),
                position,
            )
            .and_then(|logits| logits.squeeze(0)?.to_vec1::<f32>())
            .expect("candle's forward pass");
        let similarity = cosine(&logits, &expected);
        assert!(
            similarity > 0.995,
            "step {step}: cosine similarity {similarity}"
        );
        assert_eq!(argmax(&logits), argmax(&expected), "step {step}");
        position = tokens.len();
        tokens.push(argmax(&expected) as u32);
    }
}

#[test]
fn a_pass_shared_by_several_threads_gives_the_same_logits_as_one() {
    let (content, mut reader) = open();
    let model = Llama::from_gguf(&content, &mut reader, false).expect("loads");
    // Two sequences: one reading a prompt, one decoding, then both decoding.
    let run = |model: &Llama| {
        let (mut first, mut second) = (
            model.cache(32).expect("a cache"),
            model.cache(32).expect("a cache"),
        );
        let mut all = Vec::new();
        for step in 0..3u32 {
            let prompt = [1, 9690, 198, 2683, 359, 253];
            let one = [4093 + step];
            let logits = model
                .forward(&mut [
                    Rows {
                        tokens: if step == 0 { &prompt } else { &one },
                        cache: &mut first,
                    },
                    Rows {
                        tokens: &[1 + step],
                        cache: &mut second,
                    },
                ])
                .expect("a pass");
            all.extend(logits);
        }
        all
    };
    let alone = run(&model);
    let model = model.with_threads(3);
    let shared = run(&model);
    assert_eq!(alone.len(), 3 * 2 * model.vocab());
    assert!(
        alone == shared,
        "the logits differ between one thread and three"
    );
    let model = model.with_threads(2);
    assert!(
        run(&model) == alone,
        "the logits differ between one thread and two"
    );
}
