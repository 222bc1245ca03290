//! Decoding with the kv cache equals the full forward: a prefill, single tokens and a block of
//! several tokens after a prefill give the rows of one forward over the whole sequence; and the
//! cache's limits are clear errors.

use candle::{Device, Result, Tensor};
use ponder_gpt2::{random, Gpt2Config, KvCache, LoadOptions};
use ponder_nn::assert_close;

fn config() -> Gpt2Config {
    Gpt2Config {
        vocab_size: 100,
        n_positions: 32,
        initializer_range: 0.2,
        ..Gpt2Config::tiny()
    }
}

fn ids(b: usize, t: usize) -> Result<Tensor> {
    let v: Vec<u32> = (0..b * t).map(|i| (i as u32 * 13 + 5) % 100).collect();
    Tensor::from_vec(v, (b, t), &Device::Cpu)
}

#[test]
fn cached_decoding_equals_the_full_forward() -> Result<()> {
    let model = random(config(), 3, &LoadOptions::cpu_f32())?;
    let x = ids(2, 20)?;
    let full = model.forward(&x)?; // (2, 20, d)
    let mut cache = KvCache::new();
    let mut parts = vec![model.forward_cached(&x.narrow(1, 0, 7)?, &mut cache)?];
    for i in 7..12 {
        parts.push(model.forward_cached(&x.narrow(1, i, 1)?, &mut cache)?);
    }
    parts.push(model.forward_cached(&x.narrow(1, 12, 8)?, &mut cache)?);
    assert_eq!(cache.len(), 20);
    let cached = Tensor::cat(&parts, 1)?;
    assert_close(&cached, &full, 1e-5, 1e-5)?;

    cache.clear();
    assert!(cache.is_empty());
    let again = model.forward_cached(&x.narrow(1, 0, 5)?, &mut cache)?;
    assert_close(&again, &model.forward(&x.narrow(1, 0, 5)?)?, 1e-6, 1e-6)?;
    Ok(())
}

#[test]
fn the_cache_refuses_what_it_cannot_hold() -> Result<()> {
    let model = random(config(), 3, &LoadOptions::cpu_f32())?;
    let mut cache = KvCache::new();
    model.forward_cached(&ids(1, 30)?, &mut cache)?;
    let err = model
        .forward_cached(&ids(1, 3)?, &mut cache)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("33 tokens") && err.contains("n_positions is 32"),
        "{err}"
    );
    let err = model
        .forward_cached(&ids(2, 1)?, &mut cache)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("1 sequences") && err.contains("has 2"),
        "{err}"
    );
    Ok(())
}
