//! `ponder info`: a model's configuration, parameter count, dtype and device; `--save` writes
//! it out in transformers' file names.

use anyhow::{Context, Result};

use crate::args::{Global, InfoArgs};
use crate::resolve;

/// Prints what `--model` resolves to.
pub fn run(global: &Global, args: &InfoArgs) -> Result<()> {
    let loaded = resolve::model(global, &args.model, args.seed)?;
    let c = loaded.model.config();
    println!("source        {}", loaded.source);
    println!(
        "architecture  GPT-2 ({} layers, width {}, {} heads of {})",
        c.n_layer,
        c.n_embd,
        c.n_head,
        c.head_dim()
    );
    println!("vocab_size    {}", c.vocab_size);
    println!("n_positions   {}", c.n_positions);
    println!("mlp width     {}", c.inner_dim());
    println!("activation    {}", c.activation_function);
    println!("ln epsilon    {:e}", c.layer_norm_epsilon);
    println!(
        "parameters    {} ({:.1}M)",
        c.n_params(),
        c.n_params() as f64 / 1e6
    );
    println!("dtype         {:?}", loaded.model.dtype());
    println!("device        {:?}", loaded.model.device());
    if let Some(dir) = &args.save {
        ponder_gpt2::save(&loaded.model, dir)
            .with_context(|| format!("saving the model into {}", dir.display()))?;
        println!("saved         {}", dir.display());
    }
    Ok(())
}
