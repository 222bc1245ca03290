//! Test helpers: closeness checks that report where tensors differ, and a device-generic test
//! macro in the style of candle's `test_device!`.

use candle::{DType, Result, Tensor};

/// The largest absolute difference between two tensors of the same shape, computed in f64.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
    if a.dims() != b.dims() {
        candle::bail!(
            "max_abs_diff: shapes differ, {:?} vs {:?}",
            a.dims(),
            b.dims()
        );
    }
    let a = a.to_dtype(DType::F64)?.flatten_all()?;
    let b = b.to_dtype(DType::F64)?.flatten_all()?;
    (a - b)?.abs()?.max(0)?.to_scalar::<f64>()
}

/// Checks `|actual − expected| <= atol + rtol · |expected|` elementwise.
///
/// The error names the largest absolute difference and the first mismatching flat indices,
/// like llm.c's `check_tensor`.
pub fn assert_close(actual: &Tensor, expected: &Tensor, atol: f64, rtol: f64) -> Result<()> {
    if actual.dims() != expected.dims() {
        candle::bail!(
            "assert_close: shapes differ, {:?} vs {:?}",
            actual.dims(),
            expected.dims()
        );
    }
    let a = actual
        .to_dtype(DType::F64)?
        .flatten_all()?
        .to_vec1::<f64>()?;
    let e = expected
        .to_dtype(DType::F64)?
        .flatten_all()?
        .to_vec1::<f64>()?;
    let mut max_diff = 0.0f64;
    let mut bad = Vec::new();
    for (i, (&x, &y)) in a.iter().zip(&e).enumerate() {
        // A NaN on either side counts as an infinite difference.
        let diff = if x.is_nan() || y.is_nan() {
            f64::INFINITY
        } else {
            (x - y).abs()
        };
        max_diff = max_diff.max(diff);
        if diff > atol + rtol * y.abs() && bad.len() < 5 {
            bad.push(format!("[{i}] {x} vs {y}"));
        }
    }
    if !bad.is_empty() {
        candle::bail!(
            "assert_close: max |diff| {max_diff:e} exceeds atol {atol:e} + rtol {rtol:e} (shape {:?}); first mismatches: {}",
            actual.dims(),
            bad.join(", ")
        );
    }
    Ok(())
}

/// Instantiates a device-generic test body `fn(&Device) -> candle::Result<()>` for the CPU, and
/// for CUDA or Metal when the crate is built with that feature.
///
/// ```text
/// fn matmul_case(dev: &Device) -> candle::Result<()> { /* ... */ Ok(()) }
/// ponder_nn::test_device!(matmul_case, matmul_cpu, matmul_cuda, matmul_metal);
/// ```
#[macro_export]
macro_rules! test_device {
    ($fn_name: ident, $test_cpu: ident, $test_cuda: ident, $test_metal: ident) => {
        #[test]
        fn $test_cpu() -> candle::Result<()> {
            $fn_name(&candle::Device::Cpu)
        }

        #[cfg(feature = "cuda")]
        #[test]
        fn $test_cuda() -> candle::Result<()> {
            $fn_name(&candle::Device::new_cuda(0)?)
        }

        #[cfg(feature = "metal")]
        #[test]
        fn $test_metal() -> candle::Result<()> {
            $fn_name(&candle::Device::new_metal(0)?)
        }
    };
}
