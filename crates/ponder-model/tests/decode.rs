//! Decoding: the kv cache gives the same greedy text as running the window whole, slides
//! included; the fast-layer stream gives, token by token, the logits of stream mode's chunk
//! reads and updates (TTT-Linear and LoRA), and the gate's decisions in order.

use candle::{DType, Device, Result, Tensor};
use ponder_gate::{Decision, Fixed};
use ponder_gpt2::{random, Gpt2Config, LoadOptions};
use ponder_model::decode::{
    generate, BackboneStream, DecodeStream, FastStream, Sampler, Sampling, SignalDecider,
    StopReason,
};
use ponder_model::{
    FastLayer, FastLayerKind, FastNorm, FastState, LoraFastConfig, LoraUpdate, PonderLm,
};
use ponder_nn::assert_close;
use ponder_ttt::{TttConfig, TttParams};

fn gpt2(n_embd: usize) -> Gpt2Config {
    Gpt2Config {
        vocab_size: 60,
        n_positions: 32,
        n_embd,
        n_head: 2,
        initializer_range: 0.3,
        ..Gpt2Config::tiny()
    }
}

fn ttt_lm() -> Result<PonderLm> {
    let cfg = TttConfig {
        head_dim: 16,
        mini_batch_size: 4,
        ..TttConfig::for_gpt2(32, 2)
    };
    let mut params = TttParams::init(
        &cfg,
        ponder_model::FastModelKind::Linear,
        2,
        DType::F32,
        &Device::Cpu,
    )?;
    let mut rng = ponder_nn::init::rng_for(3, "decode-test");
    params.wo = ponder_nn::init::normal(params.wo.dims(), 0.3, &mut rng, DType::F32, &Device::Cpu)?;
    let backbone = random(gpt2(32), 1, &LoadOptions::cpu_f32())?;
    PonderLm::new(
        &backbone,
        FastNorm::init(32, DType::F32, &Device::Cpu)?,
        FastLayer::Ttt {
            config: cfg,
            params,
        },
    )
}

fn lora_lm() -> Result<PonderLm> {
    let backbone = random(gpt2(16), 1, &LoadOptions::cpu_f32())?;
    let config = LoraFastConfig::original(
        16,
        4,
        LoraUpdate {
            lr: 0.5,
            block_size: 4,
            max_grad_norm: None,
        },
    );
    let fast = FastLayer::init(
        FastLayerKind::Lora,
        None,
        Some(&config),
        2,
        DType::F32,
        &Device::Cpu,
    )?;
    PonderLm::new(
        &backbone,
        FastNorm::init(16, DType::F32, &Device::Cpu)?,
        fast,
    )
}

fn tokens(n: usize) -> Vec<u32> {
    (0..n).map(|i| ((i * 17 + 3) % 60) as u32).collect()
}

/// The logits after each token of `ids` in stream mode with UPDATE_1 on every complete chunk:
/// each chunk read whole under the weights entering it, except a complete chunk's last token,
/// read under the weights its update produced (they serve the token that follows).
fn reference(lm: &PonderLm, ids: &[u32], chunk_len: usize) -> Result<Vec<Tensor>> {
    let mut state: FastState = lm.initial_state(1)?;
    let mut out = Vec::new();
    for chunk in ids.chunks(chunk_len) {
        let x = Tensor::new(chunk, &Device::Cpu)?.unsqueeze(0)?;
        let hidden = lm.backbone(&x)?;
        let logits = lm
            .logits(&lm.read(&hidden, &x, &state)?.features)?
            .squeeze(0)?; // (t, n)
        let complete = chunk.len() == chunk_len;
        let last = if complete {
            chunk.len() - 1
        } else {
            chunk.len()
        };
        for i in 0..last {
            out.push(logits.get(i)?);
        }
        if complete {
            state = lm.update(&hidden, &x, &state, 1)?.state;
            let after = lm
                .logits(&lm.read(&hidden, &x, &state)?.features)?
                .squeeze(0)?;
            out.push(after.get(chunk.len() - 1)?);
        }
    }
    Ok(out)
}

fn check_fast_stream(lm: &PonderLm) -> Result<()> {
    let ids = tokens(30);
    let chunk_len = 12;
    let expected = reference(lm, &ids, chunk_len)?;
    // One token at a time, and the first chunk and a half in one feed (a prompt).
    for prompt in [1, 18] {
        let mut stream = FastStream::new(
            lm,
            chunk_len,
            Box::new(SignalDecider(Box::new(Fixed::update(1).unwrap()))),
        )?;
        let mut got = Vec::new();
        let first = stream.feed(&ids[..prompt])?;
        for i in prompt..ids.len() {
            got.push(stream.feed(&ids[i..i + 1])?);
        }
        assert_close(&first, &expected[prompt - 1], 1e-4, 1e-4)?;
        for (g, e) in got.iter().zip(&expected[prompt..]) {
            assert_close(g, e, 1e-4, 1e-4)?;
        }
        let report = stream.report();
        assert_eq!(report.tokens, 30);
        assert_eq!(report.decisions, vec![Decision::Update(1); 2]);
    }
    Ok(())
}

#[test]
fn the_fast_stream_reads_and_updates_as_stream_mode_does_ttt() -> Result<()> {
    check_fast_stream(&ttt_lm()?)
}

#[test]
fn the_fast_stream_reads_and_updates_as_stream_mode_does_lora() -> Result<()> {
    check_fast_stream(&lora_lm()?)
}

#[test]
fn cached_greedy_decoding_equals_decoding_without_the_cache() -> Result<()> {
    let model = random(gpt2(32), 2, &LoadOptions::cpu_f32())?;
    let prompt = tokens(10);
    let run = |cached: bool| -> Result<(Vec<u32>, usize)> {
        let mut stream = BackboneStream::new(&model, cached);
        let mut sampler = Sampler::new(Sampling::Greedy)?;
        let g = generate(&mut stream, &prompt, &mut sampler, 60, None, |_| false)?;
        assert_eq!(g.stop, StopReason::Length);
        Ok((g.ids, stream.report().slides))
    };
    let (with, slides) = run(true)?;
    let (without, slides_without) = run(false)?;
    assert_eq!(with.len(), 60);
    assert_eq!(with, without);
    // 70 tokens in a context of 32: the window slid.
    assert!(
        slides >= 2 && slides == slides_without,
        "{slides} {slides_without}"
    );
    Ok(())
}

#[test]
fn generation_stops_at_eos_and_at_the_rule() -> Result<()> {
    let model = random(gpt2(32), 2, &LoadOptions::cpu_f32())?;
    let prompt = tokens(5);
    let mut sampler = Sampler::new(Sampling::Greedy)?;
    let free = generate(
        &mut BackboneStream::new(&model, true),
        &prompt,
        &mut sampler,
        8,
        None,
        |_| false,
    )?;
    // EOS at the third token: two kept.
    let eos = free.ids[2];
    let first = free.ids.iter().position(|&t| t == eos).unwrap();
    let g = generate(
        &mut BackboneStream::new(&model, true),
        &prompt,
        &mut sampler,
        8,
        Some(eos),
        |_| false,
    )?;
    assert_eq!((g.stop, g.ids.len()), (StopReason::Eos, first));
    let g = generate(
        &mut BackboneStream::new(&model, true),
        &prompt,
        &mut sampler,
        8,
        None,
        |ids| ids.len() == 3,
    )?;
    assert_eq!((g.stop, g.ids.len()), (StopReason::Rule, 3));
    let err = generate(
        &mut BackboneStream::new(&model, true),
        &[],
        &mut sampler,
        8,
        None,
        |_| false,
    );
    assert!(err.unwrap_err().to_string().contains("no tokens"));
    Ok(())
}
