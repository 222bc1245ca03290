//! AdamW with state that can be saved and restored exactly (for bit-identical resume), global
//! gradient-norm clipping, and the warmup + cosine learning-rate schedule.
//!
//! Candle's own `AdamW` keeps its moments private, so a resumed run could not continue from the
//! same optimizer state; this one exposes them as named tensors.

use std::collections::BTreeMap;

use candle::backprop::GradStore;
use candle::{DType, Result, Tensor, Var};

/// AdamW hyper-parameters (decoupled weight decay; `weight_decay = 0` is Adam).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    /// First-moment decay (0.9).
    pub beta1: f64,
    /// Second-moment decay (0.999 or 0.95).
    pub beta2: f64,
    /// Denominator epsilon (1e-8).
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

/// AdamW over named variables.
pub struct AdamW {
    config: AdamWConfig,
    params: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: u64,
}

impl AdamW {
    /// An optimizer for `params` with zero moments.
    pub fn new(params: Vec<(String, Var)>, config: AdamWConfig) -> Result<Self> {
        let zeros = |v: &Var| Tensor::zeros(v.shape(), DType::F32, v.device());
        let m = params
            .iter()
            .map(|(_, v)| zeros(v))
            .collect::<Result<_>>()?;
        let v = params
            .iter()
            .map(|(_, v)| zeros(v))
            .collect::<Result<_>>()?;
        Ok(Self {
            config,
            params,
            m,
            v,
            step: 0,
        })
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One update with learning rate `lr`; parameters without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.step += 1;
        let c = self.config;
        let bias1 = 1.0 - c.beta1.powi(self.step as i32);
        let bias2 = 1.0 - c.beta2.powi(self.step as i32);
        for (i, (_, var)) in self.params.iter().enumerate() {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            // Optimizer arithmetic must not record autograd history: a variable's gradient can
            // reference the step's activations, and moments built from it would keep every step
            // alive.
            let g = g.detach().to_dtype(DType::F32)?;
            self.m[i] = ((&self.m[i] * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
            self.v[i] = ((&self.v[i] * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let m_hat = (&self.m[i] / bias1)?;
            let v_hat = (&self.v[i] / bias2)?;
            let update = (m_hat / (v_hat.sqrt()? + c.eps)?)?;
            let w = var.as_tensor().detach().to_dtype(DType::F32)?;
            let next = ((w.clone() * (1.0 - lr * c.weight_decay))? - (update * lr)?)?;
            var.set(&next.to_dtype(var.dtype())?)?;
        }
        Ok(())
    }

    /// The moments by name (`m.<param>`, `v.<param>`) for a checkpoint.
    pub fn state(&self) -> BTreeMap<String, Tensor> {
        let mut out = BTreeMap::new();
        for (i, (name, _)) in self.params.iter().enumerate() {
            out.insert(format!("m.{name}"), self.m[i].clone());
            out.insert(format!("v.{name}"), self.v[i].clone());
        }
        out
    }

    /// Restores moments and the step count saved by [`AdamW::state`]; every moment must be
    /// present with the parameter's shape.
    pub fn load_state(&mut self, state: &BTreeMap<String, Tensor>, step: u64) -> Result<()> {
        for (i, (name, var)) in self.params.iter().enumerate() {
            for (which, slot) in [("m", &mut self.m[i]), ("v", &mut self.v[i])] {
                let key = format!("{which}.{name}");
                let t = state
                    .get(&key)
                    .ok_or_else(|| candle::Error::Msg(format!("optimizer state lacks `{key}`")))?;
                if t.dims() != var.dims() {
                    candle::bail!(
                        "optimizer state `{key}` has shape {:?}, expected {:?}",
                        t.dims(),
                        var.dims()
                    );
                }
                *slot = t.to_dtype(DType::F32)?;
            }
        }
        self.step = step;
        Ok(())
    }
}

/// Scales every gradient of `vars` so that their global L2 norm is at most `max_norm`; returns
/// the norm before clipping.
pub fn clip_grad_norm(grads: &mut GradStore, vars: &[(String, Var)], max_norm: f64) -> Result<f64> {
    let mut sq = 0.0f64;
    for (_, v) in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            sq += crate::to_f64(g)?.sqr()?.sum_all()?.to_scalar::<f64>()?;
        }
    }
    let norm = sq.sqrt();
    if norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for (_, v) in vars {
            if let Some(g) = grads.remove(v.as_tensor()) {
                grads.insert(v.as_tensor(), (g * scale)?);
            }
        }
    }
    Ok(norm)
}

/// Linear warmup to `max_lr` over `warmup` steps, then cosine decay to `min_lr` at `total`.
pub fn warmup_cosine(step: u64, warmup: u64, total: u64, max_lr: f64, min_lr: f64) -> f64 {
    if step < warmup {
        return max_lr * (step + 1) as f64 / warmup as f64;
    }
    if total <= warmup {
        return max_lr;
    }
    let progress = ((step - warmup) as f64 / (total - warmup) as f64).min(1.0);
    min_lr + 0.5 * (max_lr - min_lr) * (1.0 + (std::f64::consts::PI * progress).cos())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle::Device;

    #[test]
    fn adam_matches_a_hand_computed_step_and_restores() -> Result<()> {
        let var = Var::new(&[1.0f32, -2.0], &Device::Cpu)?;
        let cfg = AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        };
        let mut opt = AdamW::new(vec![("w".into(), var.clone())], cfg)?;
        let loss = (var.as_tensor().sqr()?.sum_all()? * 0.5)?; // gradient = w
        opt.step(&loss.backward()?, 0.1)?;
        // First Adam step moves each weight by lr · sign(g) (bias-corrected m/√v = ±1).
        let w = var.as_tensor().to_vec1::<f32>()?;
        assert!(
            (w[0] - 0.9).abs() < 1e-6 && (w[1] + 1.9).abs() < 1e-6,
            "{w:?}"
        );
        // The moments carry no autograd history (the gradient of `w` does): otherwise every
        // step's graph would stay alive through them.
        assert!(loss.backward()?.get(var.as_tensor()).unwrap().track_op());
        assert!(opt.state().values().all(|t| !t.track_op()));
        let mut other = AdamW::new(
            vec![("w".into(), Var::new(&[0f32, 0.], &Device::Cpu)?)],
            cfg,
        )?;
        other.load_state(&opt.state(), opt.steps())?;
        assert_eq!(other.steps(), 1);
        assert!(other.load_state(&BTreeMap::new(), 1).is_err());
        Ok(())
    }

    #[test]
    fn clipping_and_schedule() -> Result<()> {
        let var = Var::new(&[3.0f32, 4.0], &Device::Cpu)?;
        let mut grads = (var.as_tensor().sqr()?.sum_all()? * 0.5)?.backward()?;
        let vars = vec![("w".to_string(), var.clone())];
        let norm = clip_grad_norm(&mut grads, &vars, 1.0)?;
        assert!((norm - 5.0).abs() < 1e-6);
        let g = grads.get(var.as_tensor()).unwrap().to_vec1::<f32>()?;
        assert!((g[0] - 0.6).abs() < 1e-5 && (g[1] - 0.8).abs() < 1e-5);
        assert_eq!(warmup_cosine(0, 10, 100, 1.0, 0.1), 0.1);
        assert_eq!(warmup_cosine(9, 10, 100, 1.0, 0.1), 1.0);
        assert!((warmup_cosine(100, 10, 100, 1.0, 0.1) - 0.1).abs() < 1e-12);
        assert!((warmup_cosine(55, 10, 100, 1.0, 0.1) - 0.55).abs() < 1e-12);
        Ok(())
    }
}
