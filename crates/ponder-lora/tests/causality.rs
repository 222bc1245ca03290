//! Causality of `LoraFastLayer`: changing the inputs after position `t` leaves the outputs at
//! positions `<= t` unchanged, and does change the outputs after `t` (so the check can fail).
//! The original layer (`docs/original.md` §4.2) had no causal mask and fails the first half.

use candle::{DType, Device, IndexOp, Result, Tensor};
use ponder_lora::{Init, LoraFactors, LoraFastConfig, LoraFastLayer};
use ponder_nn::max_abs_diff;

fn randn(shape: &[usize], seed: u64, std: f64, dtype: DType, dev: &Device) -> Result<Tensor> {
    let mut rng = ponder_nn::init::rng_for(seed, "causality-test");
    ponder_nn::init::normal(shape, std, &mut rng, dtype, dev)
}

fn causal_case(dev: &Device) -> Result<()> {
    let (bsz, seq_len, d, r) = (2, 12, 16, 4);
    for dtype in [DType::F32, DType::F64] {
        let config = LoraFastConfig::original(
            d,
            r,
            ponder_lora::LoraUpdate {
                lr: 0.1,
                block_size: 4,
                max_grad_norm: None,
            },
        );
        let factors = |seed: u64| -> Result<LoraFactors> {
            let a = randn(&[r, d], seed, 0.3, dtype, dev)?;
            let b = randn(&[d, r], seed + 1, 0.3, dtype, dev)?; // nonzero B
            LoraFactors::new(a, b, config.scale())
        };
        let layer = LoraFastLayer::from_factors(config.clone(), factors(1)?, factors(3)?)?;
        let h = randn(&[bsz, seq_len, d], 5, 1.0, dtype, dev)?;
        let y = layer.forward(&h)?;
        for t in [0, 4, seq_len - 2] {
            // Replace every input after t with other values.
            let tail = randn(&[bsz, seq_len - t - 1, d], 7 + t as u64, 1.0, dtype, dev)?;
            let moved = Tensor::cat(&[h.i((.., ..=t, ..))?, tail], 1)?; // (b, t, d)
            let y2 = layer.forward(&moved)?;
            let past = max_abs_diff(&y.i((.., ..=t, ..))?, &y2.i((.., ..=t, ..))?)?;
            let future = max_abs_diff(&y.i((.., t + 1.., ..))?, &y2.i((.., t + 1.., ..))?)?;
            assert!(
                past <= 1e-6,
                "{dtype:?}: position <= {t} changed by {past:e}"
            );
            assert!(
                future > 1e-2,
                "{dtype:?}: positions > {t} did not change ({future:e})"
            );
        }
    }
    Ok(())
}
ponder_nn::test_device!(causal_case, causal_cpu, causal_cuda, causal_metal);

/// The same check through the training forward, whose dropout masks are drawn per position: the
/// past is unchanged when both runs draw the same masks.
#[test]
fn causal_with_dropout() -> Result<()> {
    let dev = Device::Cpu;
    let config = LoraFastConfig::original(
        8,
        2,
        ponder_lora::LoraUpdate {
            lr: 0.1,
            block_size: 4,
            max_grad_norm: None,
        },
    );
    let layer = LoraFastLayer::new(config.clone(), Init::ORIGINAL, 0, DType::F64, &dev)?;
    let mut tensors = layer.trainable();
    for (i, (name, t)) in tensors.iter_mut().enumerate() {
        if name.ends_with("lora_B.weight") {
            *t = randn(t.dims(), 20 + i as u64, 0.5, DType::F64, &dev)?;
        }
    }
    let layer = LoraFastLayer::from_trainable(config, &tensors)?;
    let h = randn(&[1, 10, 8], 1, 1.0, DType::F64, &dev)?;
    let tail = randn(&[1, 5, 8], 2, 1.0, DType::F64, &dev)?;
    let moved = Tensor::cat(&[h.i((.., ..5, ..))?, tail], 1)?; // (1, 10, 8)
    let y = layer.forward_train(&h, &mut layer.dropout(9)?)?;
    let y2 = layer.forward_train(&moved, &mut layer.dropout(9)?)?;
    assert!(max_abs_diff(&y.i((.., ..5, ..))?, &y2.i((.., ..5, ..))?)? <= 1e-12);
    assert!(max_abs_diff(&y.i((.., 5.., ..))?, &y2.i((.., 5.., ..))?)? > 1e-2);
    Ok(())
}
