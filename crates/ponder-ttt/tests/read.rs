//! Reading a carried state without updating it (SKIP in stream mode): the output equals the
//! update path with every learning rate 0 set through the config, and the state comes back bit
//! for bit.

use candle::{DType, Device, Result, Tensor};
use ponder_nn::assert_close;
use ponder_ttt::{ConvWindow, FastModelKind, TttConfig, TttParams};

fn tiny(base_lr: f64) -> TttConfig {
    TttConfig {
        hidden_dim: 16,
        num_heads: 2,
        head_dim: 8,
        mini_batch_size: 4,
        conv_window: ConvWindow::Shifted,
        ttt_base_lr: base_lr,
        ..TttConfig::for_gpt2(16, 2)
    }
}

fn randn(shape: &[usize], seed: u64, std: f64) -> Result<Tensor> {
    let mut rng = ponder_nn::init::rng_for(seed, "read-test");
    ponder_nn::init::normal(shape, std, &mut rng, DType::F64, &Device::Cpu)
}

fn params(cfg: &TttConfig, kind: FastModelKind, seed: u64) -> Result<TttParams> {
    let mut p = TttParams::init(cfg, kind, seed, DType::F64, &Device::Cpu)?;
    p.wo = randn(p.wo.dims(), seed + 100, 0.3)?;
    p.fast_init.w[0] = randn(p.fast_init.w[0].dims(), seed + 101, 0.3)?;
    Ok(p)
}

#[test]
fn a_read_is_the_update_with_no_learning_rate() -> Result<()> {
    for kind in [FastModelKind::Linear, FastModelKind::Mlp] {
        let cfg = tiny(1.0);
        let p = params(&cfg, kind, 3)?;
        let x = randn(&[2, 10, 16], 4, 1.0)?;
        // A carried state, not the initial one: the result of an update over another chunk.
        let other = randn(&[2, 12, 16], 5, 1.0)?;
        let state = p.forward(&cfg, &other, &p.initial_state(2)?, 1)?.state;
        let read = p.read(&cfg, &x, &state)?;
        // The same parameters under a config whose base learning rate is 0.
        let frozen = p.forward(&tiny(0.0), &x, &state, 1)?;
        assert_close(&read.y, &frozen.y, 1e-12, 1e-12)?;
        assert_close(&read.stats.step_0, &frozen.stats.step_0, 1e-12, 1e-12)?;
        for (a, b) in read.state.w.iter().zip(&state.w) {
            assert_close(a, b, 0.0, 0.0)?;
        }
        for (a, b) in read.state.b.iter().zip(&state.b) {
            assert_close(a, b, 0.0, 0.0)?;
        }
        // And it differs from the update over the same chunk.
        let update = p.forward(&cfg, &x, &state, 1)?;
        let diff = (&update.y - &read.y)?
            .abs()?
            .max_all()?
            .to_scalar::<f64>()?;
        assert!(diff > 1e-6, "{kind:?}: {diff}");
    }
    Ok(())
}

/// Per-sequence statistics: column `i` is the statistic of sequence `i` run alone, and the
/// columns average to the pooled statistic; a state split into rows and stacked again is the
/// same state.
#[test]
fn per_sequence_statistics_are_each_sequence_alone() -> Result<()> {
    for kind in [FastModelKind::Linear, FastModelKind::Mlp] {
        let cfg = tiny(1.0);
        let p = params(&cfg, kind, 8)?;
        let x = randn(&[3, 10, 16], 9, 1.0)?;
        let other = randn(&[3, 12, 16], 10, 1.0)?;
        let state = p.forward(&cfg, &other, &p.initial_state(3)?, 1)?.state;
        let rows = p.signal_per_sequence(&cfg, &x, &state, 1)?;
        assert_eq!(rows.step_0.dims(), &[3, 3]); // ceil(10 / 4) mini-batches, 3 sequences
        for i in 0..3 {
            let alone = p.signal(&cfg, &x.narrow(0, i, 1)?, &state.row(i)?, 1)?;
            for (got, want) in [
                (&rows.init, &alone.init),
                (&rows.step_0, &alone.step_0),
                (&rows.step_1, &alone.step_1),
            ] {
                assert_close(&got.narrow(1, i, 1)?.squeeze(1)?, want, 1e-12, 1e-12)?;
            }
        }
        // One sequence keeps its column.
        let one = p.signal_per_sequence(&cfg, &x.narrow(0, 0, 1)?, &state.row(0)?, 1)?;
        assert_eq!(one.step_0.dims(), &[3, 1]);
        let pooled = p.signal(&cfg, &x, &state, 1)?;
        assert_close(&rows.step_0.mean(1)?, &pooled.step_0, 1e-12, 1e-12)?;
        let parts = (0..3).map(|i| state.row(i)).collect::<Result<Vec<_>>>()?;
        let again = ponder_ttt::TttState::cat(&parts.iter().collect::<Vec<_>>())?;
        for (a, b) in again.w.iter().zip(&state.w) {
            assert_close(a, b, 0.0, 0.0)?;
        }
    }
    Ok(())
}
