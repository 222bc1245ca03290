"""Correlations of per-chunk-batch quantities with the gain of an update, on one split's records.

Reads a comparison's records.jsonl (one line per chunk-batch, in decision order) and prints, for
each quantity, Pearson's and Spearman's correlation with the advantage skip_loss - update_loss
of the chunk-batch it would decide. Quantities of the previous chunk-batch are known before the
current one is decided (its tokens are past text); the current chunk's own losses are not.

    python3 docs/experiments/2026-12-03-lagged-signals.py \
        runs/tiny/fast-ttt_linear-k1/validation/python/records.jsonl
"""
import json
import math
import sys


def ranks(x):
    order = sorted(range(len(x)), key=lambda i: x[i])
    r = [0.0] * len(x)
    for k, i in enumerate(order):
        r[i] = float(k)
    return r


def pearson(a, b):
    n = len(a)
    ma, mb = sum(a) / n, sum(b) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    va = sum((x - ma) ** 2 for x in a)
    vb = sum((y - mb) ** 2 for y in b)
    return cov / math.sqrt(va * vb)


def main(path):
    rows = [json.loads(line) for line in open(path)]
    adv = [r["skip_loss"] - r["update_loss"] for r in rows]
    now = {
        "recon": [r["recon"] for r in rows],
        "recon_init": [r["recon_init"] for r in rows],
        "skip_loss (the chunk's own: labels, not deployable)": [r["skip_loss"] for r in rows],
    }
    prev = {
        "previous skip_loss": [r["skip_loss"] for r in rows],
        "previous advantage (needs both actions)": adv,
        "previous recon": [r["recon"] for r in rows],
    }
    print(f"{len(rows)} chunk-batches of {path}")
    print(f"{'quantity':55s} {'pearson':>8s} {'spearman':>8s}")
    for name, x in now.items():
        print(f"{name:55s} {pearson(x, adv):+8.3f} {pearson(ranks(x), ranks(adv)):+8.3f}")
    for name, x in prev.items():
        a, b = x[:-1], adv[1:]
        print(f"{name:55s} {pearson(a, b):+8.3f} {pearson(ranks(a), ranks(b)):+8.3f}")


if __name__ == "__main__":
    main(sys.argv[1])
