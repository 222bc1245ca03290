#!/usr/bin/env bash
# The GPU half of `cargo xtask gpu-check`: runs on a machine with an NVIDIA GPU and its driver,
# without a Rust toolchain or network, from the checkout that `cargo xtask gpu-check` packed
# (binaries.tar.xz under target/gpu-check/pack/). Writes OUT/gpu-check.json and a log per step.
#
#   bash target/gpu-check/pack/gpu-check.sh OUT
#
# Steps: the device tests (`test_device!` and the bf16 training steps) on the GPU; `ponder
# bench` at GPT-2 small and XL shapes; the embedded default's backbone trained for 300 steps on
# the CPU and on the GPU, their validation losses compared; a fast layer trained and a
# comparison pass on the GPU.
set -uo pipefail
pack=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$pack/../../.." && pwd)
out=$(mkdir -p "${1:?usage: gpu-check.sh OUT}" && cd "$1" && pwd)
cd "$root"
results="$out/steps.tsv"
: >"$results"

# cuBLAS, cuRAND and NVRTC of CUDA 13: the toolkit's, else those of PyTorch's NVIDIA wheels.
libs=$(python3 - 2>/dev/null <<'PY'
import glob, os, site
dirs = set()
for base in site.getsitepackages():
    for lib in glob.glob(os.path.join(base, "nvidia", "**", "lib", "lib*.so*"), recursive=True):
        dirs.add(os.path.dirname(lib))
print(":".join(sorted(dirs)))
PY
)
export LD_LIBRARY_PATH="/usr/local/cuda/lib64:${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# Tests find their fixtures at the path they were built in; point it at this checkout.
built=$(cat "$pack/built-in")
if [ "$built" != "$root" ] && [ ! -e "$built" ]; then
    mkdir -p "$(dirname "$built")" && ln -s "$root" "$built"
fi

step() {
    local name=$1
    shift
    local t0 t1 rc
    t0=$(date +%s%N)
    "$@" >"$out/$name.log" 2>&1
    rc=$?
    t1=$(date +%s%N)
    # Milliseconds in bash's own arithmetic (no `bc` on minimal images).
    printf '%s\t%s\t%s\n' "$name" "$rc" "$(((t1 - t0) / 1000000))" >>"$results"
    echo "$name: exit $rc"
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >"$out/gpu.txt" 2>&1
work="$out/binaries"
mkdir -p "$work"
tar -xJf "$pack/binaries.tar.xz" -C "$work"
ponder="$work/bin/ponder"
for t in "$work"/tests/*; do
    # Only the tests that run on the GPU (their names end in _cuda).
    step "test-$(basename "$t")" "$t" _cuda --test-threads=1
done
step bench "$ponder" --device cuda bench --random gpt2 --random gpt2-xl --tokens 512 --reps 5

micro=(--config configs/tiny.toml --set backbone.steps=300 --set backbone.eval_every=100
    --set backbone.checkpoint_every=100 --set fast.steps=100 --set fast.eval_every=50
    --set fast.checkpoint_every=50 --set eval.max_batches=50
    --set 'eval.methods=["skip", "update_1", "random", "oracle", "ours"]')
for device in cpu cuda; do
    dir="$out/run-$device"
    step "backbone-$device" "$ponder" --device "$device" train backbone "${micro[@]}" \
        --set "run.out_dir=\"$dir\""
done
dir="$out/run-cuda"
step fast-cuda "$ponder" --device cuda train fast "${micro[@]}" --set "run.out_dir=\"$dir\"" \
    --set "fast.backbone=\"$dir/model\""
step compare-cuda "$ponder" --device cuda compare "${micro[@]}" --set "run.out_dir=\"$dir\"" \
    --set "fast.backbone=\"$dir/model\""

python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
steps = []
for line in open(os.path.join(out, "steps.tsv")):
    name, rc, ms = line.rstrip("\n").split("\t")
    steps.append({"step": name, "exit": int(rc), "seconds": round(int(ms) / 1000, 1)})
def val_losses(device):
    path = os.path.join(out, f"run-{device}", "metrics.jsonl")
    if not os.path.exists(path):
        return []
    rows = [json.loads(l) for l in open(path)]
    return [[r["step"], r["val_loss"]] for r in rows if "val_loss" in r]
cpu, cuda = val_losses("cpu"), val_losses("cuda")
tolerance = 0.02
diffs = [abs(a[1] - b[1]) for a, b in zip(cpu, cuda) if a[0] == b[0]]
def tail(name, n=40):
    p = os.path.join(out, name)
    return open(p).read().splitlines()[-n:] if os.path.exists(p) else []
report = {
    "gpu": open(os.path.join(out, "gpu.txt")).read().strip(),
    "steps": steps,
    "val_loss_cpu": cpu,
    "val_loss_cuda": cuda,
    "val_loss_max_abs_diff": max(diffs) if diffs else None,
    "val_loss_tolerance": tolerance,
    "bench": tail("bench.log"),
    "compare": tail("compare-cuda.log", 25),
}
report["ok"] = all(s["exit"] == 0 for s in steps) and bool(diffs) and max(diffs) <= tolerance
json.dump(report, open(os.path.join(out, "gpu-check.json"), "w"), indent=1)
print(json.dumps({k: report[k] for k in ("gpu", "val_loss_max_abs_diff", "ok")}))
sys.exit(0 if report["ok"] else 1)
PY
