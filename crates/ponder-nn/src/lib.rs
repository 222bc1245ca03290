//! Shared Candle helpers for ponder.
//!
//! The crates above this one build models from the pieces here:
//!
//! - differentiable fused operations ([`layer_norm`], [`softmax_last_dim`], [`causal_softmax`],
//!   [`gelu_tanh`], [`cross_entropy`], [`add_bias`]) with parallel CPU kernels and a backward
//!   pass, so that trainable paths never lose gradients (Candle's own fused `layer_norm` and
//!   `softmax_last_dim` have no backward);
//! - the tied LM head fused with its cross-entropy for inference ([`linear_cross_entropy`]),
//!   which never materializes the logits, and the same pass keeping each row's entropy,
//!   `−log max p` and top-5 probabilities for the learned gate ([`linear_loss::linear_probe`]);
//! - the mixed-precision policy of training ([`Precision`]: f32, or bf16 with f32 master weights);
//! - atomic `.safetensors` files ([`save_safetensors`]);
//! - seeded initialization and dropout ([`init`], [`Dropout`]);
//! - start-up thread settings for Candle's CPU backend ([`threads::configure`]);
//! - the building blocks of fused CPU kernels, for the crates above too ([`cpu`]: the
//!   AVX-512/AVX2 dispatch, contiguous slices, 8-lane reductions);
//! - test helpers ([`assert_close`], [`test_device!`]).
//!
//! Every op has a reference composition of primitive Candle ops in [`reference`]; the fused CPU
//! kernels are tested against it, and non-CPU devices use it directly.

pub mod activation;
pub mod bias;
pub mod cpu;
pub mod dropout;
pub mod init;
pub mod layer_norm;
pub mod linear_loss;
pub mod loss;
pub mod masks;
pub mod optim;
pub mod precision;
pub mod reference;
pub mod safetensors_file;
pub mod softmax;
pub mod testing;
pub mod threads;

pub use activation::gelu_tanh;
pub use bias::add_bias;
pub use dropout::Dropout;
pub use layer_norm::layer_norm;
pub use linear_loss::linear_cross_entropy;
pub use loss::{cross_entropy, to_f64};
pub use precision::Precision;
pub use safetensors_file::save_safetensors;
pub use softmax::{causal_softmax, softmax_last_dim};
pub use testing::{assert_close, max_abs_diff};
