//! Helpers shared by the mixed-precision tests of backbone and fast-layer training.

#![allow(dead_code)] // each test binary uses its own subset

use candle::backprop::GradStore;
use candle::{DType, Tensor, Var};
use ponder_nn::Precision;

/// A `ponder_train` result as a `candle` one, for the device-generic test bodies.
pub fn t<T>(r: ponder_train::Result<T>) -> candle::Result<T> {
    r.map_err(candle::Error::wrap)
}

/// The gradient of every var in `vars`, in their order; a var without one is a failure that
/// names it and `precision`.
pub fn named_grads(
    g: &GradStore,
    vars: &[(String, Var)],
    precision: Precision,
) -> Vec<(String, Tensor)> {
    vars.iter()
        .map(|(k, v)| {
            let g = g.get(v.as_tensor());
            (
                k.clone(),
                g.unwrap_or_else(|| panic!("{precision:?}: no gradient for {k}"))
                    .clone(),
            )
        })
        .collect()
}

/// Every bf16 gradient is f32, non-zero, and points the same way as its f32 twin: bf16
/// rounding perturbs the direction by well under 1%.
pub fn assert_bf16_grads_follow_f32(
    full: &[(String, Tensor)],
    half: &[(String, Tensor)],
) -> candle::Result<()> {
    assert_eq!(full.len(), half.len());
    for ((name, g32), (_, g16)) in full.iter().zip(half) {
        assert_eq!(g16.dtype(), DType::F32, "{name}");
        let (a, b) = (g32.flatten_all()?, g16.flatten_all()?);
        let norm16 = b.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?;
        assert!(norm16 > 0.0, "{name}: zero gradient in bf16");
        let norm32 = a.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?;
        let cos = (&a * &b)?.sum_all()?.to_scalar::<f32>()? / (norm16 * norm32);
        assert!(
            cos > 0.99,
            "{name}: cosine {cos} between f32 and bf16 gradients"
        );
    }
    Ok(())
}
