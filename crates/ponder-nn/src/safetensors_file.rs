//! Saving named tensors as one `.safetensors` file, atomically: the tensors are copied to the
//! CPU, serialized in memory and written through [`ponder_base::write_atomic`], so a reader never
//! sees half a file and a file does not record the device it came from.

use std::collections::BTreeMap;
use std::path::Path;

use candle::{Device, Result, Tensor};

/// Writes `tensors` (by name) to `path`, atomically.
pub fn save_safetensors(path: &Path, tensors: &BTreeMap<String, Tensor>) -> Result<()> {
    let on_cpu = tensors
        .iter()
        .map(|(k, t)| Ok((k.as_str(), t.to_device(&Device::Cpu)?)))
        .collect::<Result<Vec<_>>>()?;
    let bytes = safetensors::serialize(on_cpu.iter().map(|(k, t)| (*k, t)), None)
        .map_err(|e| candle::Error::Msg(format!("{}: cannot serialize: {e}", path.display())))?;
    ponder_base::write_atomic(path, &bytes)
        .map_err(|e| candle::Error::Msg(format!("{}: cannot write: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_names_shapes_and_values() -> Result<()> {
        let dir = tempfile::tempdir().map_err(candle::Error::wrap)?;
        let path = dir.path().join("t.safetensors");
        let mut tensors = BTreeMap::new();
        tensors.insert(
            "a.weight".to_string(),
            Tensor::arange(0f32, 6.0, &Device::Cpu)?.reshape((2, 3))?,
        );
        tensors.insert("b".to_string(), Tensor::new(&[1.5f64, -2.0], &Device::Cpu)?);
        save_safetensors(&path, &tensors)?;
        let back = candle::safetensors::load(&path, &Device::Cpu)?;
        assert_eq!(back.len(), 2);
        for (k, t) in &tensors {
            let b = &back[k];
            assert_eq!((b.dims(), b.dtype()), (t.dims(), t.dtype()), "{k}");
            assert_eq!(
                b.flatten_all()?
                    .to_dtype(candle::DType::F64)?
                    .to_vec1::<f64>()?,
                t.flatten_all()?
                    .to_dtype(candle::DType::F64)?
                    .to_vec1::<f64>()?
            );
        }
        Ok(())
    }
}
