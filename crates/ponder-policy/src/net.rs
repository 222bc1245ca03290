//! The actor-critic: features → hidden layers → action logits and a value, with the
//! orthogonal initialization of CleanRL's reference PPO (gain √2 for hidden layers, 0.01 for
//! the policy head, 1 for the value head, zero biases), and the original PonderTTT's dropout
//! after each hidden activation in the training-mode forward that PPO's update runs.

use candle::{DType, Device, Tensor, Var};
use ponder_nn::Dropout;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The hidden layers' nonlinearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `tanh`, as CleanRL's reference PPO.
    Tanh,
    /// `max(0, x)`, as the original PonderTTT's policy.
    Relu,
}

/// The network's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
    /// Width of the feature vector.
    pub features: usize,
    /// Widths of the hidden layers (two of 128 in the original).
    pub hidden: Vec<usize>,
    /// Number of actions (logits).
    pub actions: usize,
    /// The hidden layers' nonlinearity.
    pub activation: Activation,
    /// Dropout probability in `[0, 1)` after each hidden activation, in the training-mode
    /// forward ([`ActorCritic::forward_train`]) only; 0.1 in the original, 0 for none.
    pub dropout: f64,
}

impl NetConfig {
    /// The original PonderTTT's policy: `features` → 128 → ReLU → dropout 0.1 → 128 → ReLU →
    /// dropout 0.1 → 4 logits and a value (`features` was 32 there).
    pub fn original(features: usize) -> Self {
        Self {
            features,
            hidden: vec![128, 128],
            actions: 4,
            activation: Activation::Relu,
            dropout: 0.1,
        }
    }

    /// The original's shape with CleanRL's choices: `features` → 128 → tanh → 128 → tanh → 4
    /// logits and a value, no dropout. CleanRL's own networks are 64-64 `tanh`; the widths here
    /// are the original's, so that the two presets differ only in activation and dropout.
    pub fn cleanrl(features: usize) -> Self {
        Self {
            features,
            hidden: vec![128, 128],
            actions: 4,
            activation: Activation::Tanh,
            dropout: 0.0,
        }
    }

    /// Errors for a zero width, no hidden layer, or a dropout probability outside `[0, 1)`.
    pub fn validate(&self) -> Result<()> {
        if self.features == 0 || self.actions < 2 || self.hidden.is_empty() {
            return Err(Error::Config(format!(
                "net: need features > 0, actions >= 2 and a hidden layer, got {} features, {} actions, hidden {:?}",
                self.features, self.actions, self.hidden
            )));
        }
        if self.hidden.contains(&0) {
            return Err(Error::Config(format!(
                "net: a hidden layer of width 0 in {:?}",
                self.hidden
            )));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::Config(format!(
                "net.dropout must be in [0, 1), got {}",
                self.dropout
            )));
        }
        Ok(())
    }
}

/// A `(rows, cols)` matrix with orthonormal columns (rows >= cols) or rows (rows < cols), scaled
/// by `gain`: Gram-Schmidt (twice, for stability) on a standard normal draw, with the sign of
/// each vector fixed so that its projection on the draw is positive, as a QR with a positive
/// diagonal of R gives.
pub fn orthogonal(rows: usize, cols: usize, gain: f64, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let (long, short) = (rows.max(cols), rows.min(cols));
    // `short` vectors of length `long`.
    let mut vs: Vec<Vec<f64>> = (0..short)
        .map(|_| (0..long).map(|_| standard_normal(rng)).collect())
        .collect();
    for i in 0..short {
        for _ in 0..2 {
            for j in 0..i {
                let dot: f64 = vs[i].iter().zip(&vs[j]).map(|(a, b)| a * b).sum();
                let (head, tail) = vs.split_at_mut(i);
                for (x, y) in tail[0].iter_mut().zip(&head[j]) {
                    *x -= dot * y;
                }
            }
        }
        let norm = vs[i].iter().map(|x| x * x).sum::<f64>().sqrt();
        for x in vs[i].iter_mut() {
            *x /= norm;
        }
    }
    let mut out = vec![0.0; rows * cols];
    for (i, v) in vs.iter().enumerate() {
        for (j, &x) in v.iter().enumerate() {
            // Columns of a tall matrix, rows of a wide one.
            let at = if rows >= cols {
                j * cols + i
            } else {
                i * cols + j
            };
            out[at] = gain * x;
        }
    }
    out
}

/// A standard normal draw (Box-Muller).
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The actor-critic's weights.
pub struct ActorCritic {
    config: NetConfig,
    /// Hidden layers `(W (in, out), b (out))`.
    hidden: Vec<(Var, Var)>,
    /// Policy head.
    actor: (Var, Var),
    /// Value head.
    critic: (Var, Var),
}

/// What one forward gives.
pub struct Heads {
    /// Action logits `(rows, actions)`.
    pub logits: Tensor,
    /// Values `(rows)`.
    pub values: Tensor,
}

impl ActorCritic {
    /// A network initialized from `rng` (f32).
    pub fn new(config: NetConfig, rng: &mut ChaCha8Rng, device: &Device) -> Result<Self> {
        config.validate()?;
        let mut layer = |i: usize, o: usize, gain: f64| -> Result<(Var, Var)> {
            let w: Vec<f32> = orthogonal(i, o, gain, rng)
                .into_iter()
                .map(|x| x as f32)
                .collect();
            Ok((
                Var::from_tensor(&Tensor::from_vec(w, (i, o), device)?)?,
                Var::from_tensor(&Tensor::zeros(o, DType::F32, device)?)?,
            ))
        };
        let mut width = config.features;
        let mut hidden = Vec::new();
        for &h in &config.hidden {
            hidden.push(layer(width, h, std::f64::consts::SQRT_2)?);
            width = h;
        }
        let actor = layer(width, config.actions, 0.01)?;
        let critic = layer(width, 1, 1.0)?;
        Ok(Self {
            config,
            hidden,
            actor,
            critic,
        })
    }

    /// The shape.
    pub fn config(&self) -> &NetConfig {
        &self.config
    }

    /// Every trainable variable by name (`hidden.<i>.weight`, `actor.bias`, ...).
    pub fn vars(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        let mut push = |name: String, (w, b): &(Var, Var)| {
            out.push((format!("{name}.weight"), w.clone()));
            out.push((format!("{name}.bias"), b.clone()));
        };
        for (i, l) in self.hidden.iter().enumerate() {
            push(format!("hidden.{i}"), l);
        }
        push("actor".into(), &self.actor);
        push("critic".into(), &self.critic);
        out
    }

    /// Logits and values of a batch of feature vectors, deterministic (evaluation mode: no
    /// dropout). Sampling, greedy actions and values read this one.
    ///
    /// # Shapes
    /// - `x`: `(rows, features)`; returns logits `(rows, actions)` and values `(rows)`.
    pub fn forward(&self, x: &Tensor) -> Result<Heads> {
        self.run(x, None)
    }

    /// Logits and values in training mode: inverted dropout with the configured probability
    /// after each hidden activation, its masks drawn by [`ponder_nn::Dropout`] from a seed that
    /// is one draw of `rng`. With dropout 0 this is [`ActorCritic::forward`], bit for bit, and
    /// `rng` is not touched.
    ///
    /// # Shapes
    /// - `x`: `(rows, features)`; returns logits `(rows, actions)` and values `(rows)`.
    pub fn forward_train(&self, x: &Tensor, rng: &mut ChaCha8Rng) -> Result<Heads> {
        if self.config.dropout == 0.0 {
            return self.run(x, None);
        }
        let mut dropout = Dropout::new(self.config.dropout, rng.random())?;
        self.run(x, Some(&mut dropout))
    }

    /// The forward, with dropout after each hidden activation where `dropout` is given.
    fn run(&self, x: &Tensor, mut dropout: Option<&mut Dropout>) -> Result<Heads> {
        let (_, f) = x.dims2()?;
        if f != self.config.features {
            return Err(Error::Config(format!(
                "net: features of width {f}, the network reads {}",
                self.config.features
            )));
        }
        let affine = |x: &Tensor, (w, b): &(Var, Var)| -> Result<Tensor> {
            Ok(x.matmul(w.as_tensor())?.broadcast_add(b.as_tensor())?) // (rows, out)
        };
        let mut h = x.clone();
        for l in &self.hidden {
            let z = affine(&h, l)?;
            h = match self.config.activation {
                Activation::Tanh => z.tanh()?,
                Activation::Relu => z.relu()?,
            };
            if let Some(d) = dropout.as_deref_mut() {
                h = d.apply(&h)?;
            }
        }
        Ok(Heads {
            logits: affine(&h, &self.actor)?,              // (rows, actions)
            values: affine(&h, &self.critic)?.squeeze(1)?, // (rows)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn orthogonal_matrices_have_orthonormal_columns_or_rows() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for (r, c) in [(32, 128), (128, 128), (128, 4), (128, 1)] {
            let m = orthogonal(r, c, 2.0, &mut rng);
            let (long, short, tall) = (r.max(c), r.min(c), r >= c);
            let at = |v: usize, k: usize| if tall { m[k * c + v] } else { m[v * c + k] };
            for a in 0..short {
                for b in 0..short {
                    let dot: f64 = (0..long).map(|k| at(a, k) * at(b, k)).sum();
                    let want = if a == b { 4.0 } else { 0.0 };
                    assert!((dot - want).abs() < 1e-9, "{r}x{c} ({a},{b}): {dot}");
                }
            }
        }
    }

    #[test]
    fn heads_have_their_shapes_and_a_wrong_width_is_an_error() -> Result<()> {
        let config = NetConfig {
            features: 5,
            hidden: vec![8, 8],
            actions: 4,
            activation: Activation::Tanh,
            dropout: 0.0,
        };
        let net = ActorCritic::new(config, &mut ChaCha8Rng::seed_from_u64(0), &Device::Cpu)?;
        let x = Tensor::ones((3, 5), DType::F32, &Device::Cpu)?;
        let heads = net.forward(&x)?;
        assert_eq!(heads.logits.dims(), [3, 4]);
        assert_eq!(heads.values.dims(), [3]);
        assert_eq!(net.vars().len(), 8);
        let bad = Tensor::ones((3, 6), DType::F32, &Device::Cpu)?;
        let err = net.forward(&bad).err().unwrap().to_string();
        assert!(
            err.contains("features of width 6, the network reads 5"),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn dropout_is_validated_by_its_key() {
        for p in [1.0, -0.1, f64::NAN, 1.5] {
            let config = NetConfig {
                dropout: p,
                ..NetConfig::original(32)
            };
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains("net.dropout must be in [0, 1)"), "{p}: {err}");
        }
        assert!(NetConfig::original(32).validate().is_ok());
        assert!(NetConfig::cleanrl(32).validate().is_ok());
    }

    #[test]
    fn the_training_forward_drops_out_only_where_configured() -> Result<()> {
        let dev = &Device::Cpu;
        let x = Tensor::from_vec(
            (0..6 * 32)
                .map(|i| (i as f32 * 0.37).sin())
                .collect::<Vec<f32>>(),
            (6, 32),
            dev,
        )?;
        let bits = |t: &Tensor| -> Result<Vec<u32>> {
            Ok(t.flatten_all()?
                .to_vec1::<f32>()?
                .iter()
                .map(|v| v.to_bits())
                .collect())
        };
        // Without dropout the two forwards agree bit for bit and the source is not drawn from.
        let plain = ActorCritic::new(
            NetConfig::cleanrl(32),
            &mut ChaCha8Rng::seed_from_u64(1),
            dev,
        )?;
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let train = plain.forward_train(&x, &mut rng)?;
        assert_eq!(bits(&train.logits)?, bits(&plain.forward(&x)?.logits)?);
        assert_eq!(rng, ChaCha8Rng::seed_from_u64(7));
        // With dropout the training forward differs from the evaluation one, and is the same
        // again from the same seed.
        let net = ActorCritic::new(
            NetConfig::original(32),
            &mut ChaCha8Rng::seed_from_u64(1),
            dev,
        )?;
        let eval = bits(&net.forward(&x)?.values)?;
        let a = bits(
            &net.forward_train(&x, &mut ChaCha8Rng::seed_from_u64(7))?
                .values,
        )?;
        let b = bits(
            &net.forward_train(&x, &mut ChaCha8Rng::seed_from_u64(7))?
                .values,
        )?;
        assert_ne!(a, eval);
        assert_eq!(a, b);
        assert_eq!(
            eval,
            bits(&net.forward(&x)?.values)?,
            "evaluation is deterministic"
        );
        Ok(())
    }
}
