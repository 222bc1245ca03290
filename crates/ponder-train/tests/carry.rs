//! Carrying the fast weights works: a TTT-Linear layer trained (in reset mode, 300 steps) on
//! chunks of random tokens whose second half repeats their first learns to use its within-chunk
//! updates as an induction mechanism; then, in a stream whose second chunk repeats its first,
//! UPDATE_1 on the first chunk lowers the second chunk's loss under SKIP (a read of the carried
//! weights) below the SKIP loss from the fresh state (about 3.2 against 4.3 nats, chance being
//! ln 64 = 4.16).
//!
//! The layer uses the causal convolution window: on a random backbone, whose hidden state at a
//! position carries that position's token and not a prediction of the next, recalling the next
//! token needs a query that sees the current token, which the shifted window (the original's)
//! never does.

mod common;

use candle::{DType, Device, Tensor};
use common::t;
use ponder_experiment::FastConfig;
use ponder_gpt2::{Gpt2Config, LoadOptions};
use ponder_model::{FastLayerKind, TttConfig};
use ponder_nn::Precision;
use ponder_train::{fast_step, FastModel};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const VOCAB: usize = 64;
const HALF: usize = 16;
const LEN: usize = 2 * HALF;
const BATCH: usize = 8;

fn config() -> FastConfig {
    FastConfig {
        backbone: "random".into(),
        layer: FastLayerKind::TttLinear,
        mode: Default::default(),
        chunks_per_window: None,
        chunk_len: LEN,
        k: 1,
        steps: 1,
        batch_size: BATCH,
        lr: 1e-2,
        grad_clip: 1.0,
        ssl_weight: 0.1,
        eval_every: 1,
        eval_chunks: 1,
        checkpoint_every: 1,
        ttt: Some(TttConfig {
            head_dim: 16,
            mini_batch_size: 8,
            conv_window: ponder_model::ConvWindow::Causal,
            ..TttConfig::for_gpt2(32, 2)
        }),
        lora: None,
        precision: Precision::F32,
        hidden_cache_mb: 0,
    }
}

/// `rows` chunks of random tokens, each half repeated: `a b c … a b c …`.
fn repeated(rng: &mut ChaCha8Rng, rows: usize) -> candle::Result<Tensor> {
    let mut v = Vec::with_capacity(rows * LEN);
    for _ in 0..rows {
        let half: Vec<u32> = (0..HALF)
            .map(|_| rng.random_range(0..VOCAB as u32))
            .collect();
        v.extend_from_slice(&half);
        v.extend_from_slice(&half);
    }
    Tensor::from_vec(v, (rows, LEN), &Device::Cpu)
}

#[test]
fn an_update_carried_to_a_repeated_chunk_lowers_its_skip_loss() -> candle::Result<()> {
    let gpt2 = Gpt2Config {
        vocab_size: VOCAB,
        n_positions: LEN,
        n_embd: 32,
        n_head: 2,
        ..Gpt2Config::tiny()
    };
    let options = LoadOptions {
        dtype: DType::F32,
        device: Device::Cpu,
        pad_token: None,
    };
    let backbone = ponder_gpt2::random(gpt2, 11, &options)?;
    let f = config();
    let model = t(FastModel::new(&backbone, &f, 0))?;
    let mut opt = t(model.optimizer())?;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for _ in 0..300 {
        let ids = repeated(&mut rng, BATCH)?;
        let hidden = t(model.hidden(&ids))?;
        t(fast_step(
            &model,
            &mut opt,
            std::slice::from_ref(&hidden),
            std::slice::from_ref(&ids),
            &f,
        ))?;
    }
    let lm = model.master();
    // Held-out chunks: each is the first and the second chunk of its own stream.
    let ids = repeated(&mut rng, 16)?;
    let hidden = lm.backbone(&ids)?;
    let fresh = lm.initial_state(16)?;
    let mean = |l: Tensor| -> candle::Result<f32> { l.mean_all()?.to_scalar::<f32>() };
    let first = lm.update(&hidden, &ids, &fresh, 1)?;
    let update_loss = mean(lm.next_token_loss(&first.features, &ids)?)?;
    let fresh_skip = mean(lm.next_token_loss(&lm.read(&hidden, &ids, &fresh)?.features, &ids)?)?;
    let carried_skip =
        mean(lm.next_token_loss(&lm.read(&hidden, &ids, &first.state)?.features, &ids)?)?;
    // Training taught the layer to use its updates within a chunk…
    assert!(
        update_loss < fresh_skip - 0.5,
        "UPDATE_1 {update_loss} against SKIP {fresh_skip}"
    );
    // …and the carried weights hold what the first chunk taught them.
    assert!(
        carried_skip < fresh_skip - 0.5,
        "SKIP after a carried update {carried_skip}, from the fresh state {fresh_skip}"
    );
    Ok(())
}
