//! Thread settings for Candle's CPU backend, for an application to apply at start-up before any
//! tensor work (the `ponder` binary does).
//!
//! Candle runs matrix products on a rayon pool and element-wise ops on a second pool of its own,
//! whose workers spin (about 25,000 pause instructions) after every op before they park. Two
//! costs follow, both measured on the project's 2-core machine (`docs/performance.md`):
//!
//! - every matrix product asks for the thread count, which without `RAYON_NUM_THREADS` parses
//!   `/proc/cpuinfo` again (about 5% of a tiny-shape comparison pass, all in the kernel);
//! - the spinning element-wise worker takes a core from the matmul pool each time the two
//!   alternate, as they do several times per layer.
//!
//! Unless the user set them, [`configure`] therefore fixes `RAYON_NUM_THREADS` to the count
//! Candle would compute (once) and runs element-wise ops on the calling thread
//! (`CANDLE_NUM_THREADS=1`); setting either variable keeps the user's value. The `ponder`
//! binary also runs each command with [`run_in_pool`], on a worker of the rayon pool that the
//! matrix products and ponder's kernels use, so that parallel sections start on the calling
//! thread instead of waking an idle pool.

/// The variables to set and their values, given the current environment (`get`) and Candle's
/// thread count (`threads`, called only when needed).
pub fn defaults(
    get: impl Fn(&str) -> Option<String>,
    threads: impl FnOnce() -> usize,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if get("RAYON_NUM_THREADS").is_none() {
        out.push(("RAYON_NUM_THREADS", threads().max(1).to_string()));
    }
    if get("CANDLE_NUM_THREADS").is_none() {
        out.push(("CANDLE_NUM_THREADS", "1".to_string()));
    }
    out
}

/// Applies [`defaults`] to this process. Call early in `main`, before any thread pool exists
/// (Candle creates its pools on first use).
pub fn configure() {
    let set = defaults(|k| std::env::var(k).ok(), candle::utils::get_num_threads);
    for (key, value) in set {
        std::env::set_var(key, value);
    }
}

/// Stack of the pool's threads: the command runs on one of them, so it gets a main thread's
/// 8 MiB rather than rayon's default.
const STACK_BYTES: usize = 8 << 20;

/// Runs `f` on a worker of a new rayon pool of Candle's thread count (call [`configure`]
/// first), which becomes the pool of every parallel section inside `f`: Candle's matrix
/// products and ponder's kernels. Where the pool cannot be built, `f` runs on this thread.
pub fn run_in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    match rayon::ThreadPoolBuilder::new()
        .num_threads(candle::utils::get_num_threads())
        .stack_size(STACK_BYTES)
        .thread_name(|i| format!("ponder-cpu-{i}"))
        .build()
    {
        Ok(pool) => pool.install(f),
        Err(_) => f(),
    }
}

/// `criterion::criterion_main!` under the `ponder` binary's thread settings ([`configure`], then
/// the groups on a worker of [`run_in_pool`]), so that a bench's figures match the binary's
/// runs. For bench targets that have `criterion` as a dependency.
#[macro_export]
macro_rules! criterion_main {
    ($($group:path),+ $(,)?) => {
        fn main() {
            $crate::threads::configure();
            $crate::threads::run_in_pool(|| {
                $($group();)+
                ::criterion::Criterion::default()
                    .configure_from_args()
                    .final_summary();
            });
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_variables_get_defaults_and_set_ones_are_kept() {
        let none = defaults(|_| None, || 6);
        assert_eq!(
            none,
            vec![
                ("RAYON_NUM_THREADS", "6".to_string()),
                ("CANDLE_NUM_THREADS", "1".to_string())
            ]
        );
        let user = |k: &str| (k == "RAYON_NUM_THREADS").then(|| "3".to_string());
        let kept = defaults(user, || panic!("the count is not needed"));
        assert_eq!(kept, vec![("CANDLE_NUM_THREADS", "1".to_string())]);
        let both = |_: &str| Some("4".to_string());
        assert!(defaults(both, || 1).is_empty());
    }

    #[test]
    fn the_pool_runs_the_work_and_its_parallel_sections() {
        use rayon::prelude::*;
        let sum = run_in_pool(|| {
            assert!(
                rayon::current_thread_index().is_some(),
                "not on a pool worker"
            );
            (0..1000u64).into_par_iter().sum::<u64>()
        });
        assert_eq!(sum, 499_500);
    }
}
