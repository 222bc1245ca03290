"""The paced gate on `neg_prev_loss` with and without a prior history, replayed on records.

Reads the validation and test records of a comparison (records.jsonl, one line per
chunk-batch, in decision order) and replays the paced gate of crates/ponder-gate/src/paced.rs
(calibration 16, `neg_prev_loss` read under the action taken, as the gates do):

- on validation: over the whole stream without a prior, over its two halves without a prior,
  and cross-fitted (each half with the other half's values as its prior), as the selection
  replays a candidate with a prior;
- on test: without a prior, and with the whole validation split's values as its prior, as
  `ours_lh` runs when the selection chose a candidate with a prior.

Recovery is the share of the oracle's gain (top half by advantage) a policy recovers.

    python3 docs/experiments/2026-12-04-validation-prior.py \
        runs/tiny/fast-ttt_linear-k1/validation/python/records.jsonl \
        runs/tiny/fast-ttt_linear-k1/eval/python/records.jsonl
"""
import bisect
import json
import math
import sys

RHO = 0.5
CALIBRATION = 16


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def paced(rows, prior=()):
    """The paced gate's decisions over `rows`, its history starting from `prior`."""
    history, updates, decisions, previous = sorted(prior), 0, [], None
    n = len(rows)
    for t, row in enumerate(rows):
        s = None if previous is None else -previous
        q = (RHO * n - updates) / (n - t)
        if q >= 1:
            d = True
        elif q <= 0:
            d = False
        elif s is None:
            d = RHO * t - updates > 0
        elif len(history) < CALIBRATION:
            d = True
        else:
            d = s > history[min(math.floor((1 - q) * len(history)), len(history) - 1)]
        if s is not None:
            bisect.insort(history, s)
        updates += d
        decisions.append(d)
        previous = row["update_loss"] if d else row["skip_loss"]
    return decisions


def hindsight(rows):
    """`neg_prev_loss` of every chunk-batch but the first, with hindsight (SKIP losses)."""
    return [-rows[i - 1]["skip_loss"] for i in range(1, len(rows))]


def figures(rows, decisions):
    """Mean loss, Recovery and update rate."""
    n = len(rows)
    skip = sum(r["skip_loss"] for r in rows) / n
    loss = sum(r["update_loss"] if d else r["skip_loss"] for r, d in zip(rows, decisions)) / n
    gains = sorted((r["skip_loss"] - r["update_loss"] for r in rows), reverse=True)
    oracle = skip - sum(gains[: round(RHO * n)]) / n
    return loss, (skip - loss) / (skip - oracle), sum(decisions) / n


def main():
    validation, test = load(sys.argv[1]), load(sys.argv[2])
    half = len(validation) // 2
    first, second = validation[:half], validation[half:]
    rows = [
        ("validation", "whole stream, no prior", validation, paced(validation)),
        ("validation", "two halves, no prior", validation, paced(first) + paced(second)),
        (
            "validation",
            "two halves, cross-fitted prior",
            validation,
            paced(first, hindsight(second)) + paced(second, hindsight(first)),
        ),
        ("test", "no prior", test, paced(test)),
        ("test", "prior: the validation split", test, paced(test, hindsight(validation))),
    ]
    print("| split | history | loss | Recovery | rate |")
    print("|---|---|---|---|---|")
    for split, name, records, decisions in rows:
        loss, recovery, rate = figures(records, decisions)
        print(f"| {split} | {name} | {loss:.5f} | {100 * recovery:.1f}% | {100 * rate:.1f}% |")


if __name__ == "__main__":
    main()
