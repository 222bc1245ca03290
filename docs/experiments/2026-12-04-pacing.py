"""Budget corrections of the quantile gate compared on one split's records, with no model cost.

Reads a comparison's records.jsonl (one line per chunk-batch, in decision order) and replays,
for each signal, the quantile gate with a budget debt at several gains and the paced gate
(the fraction updated is the budget still owed over the chunk-batches still to come), each
over the whole stream and over its two halves with a history seeded from the other half
(the "prior" rows). It then tries the paced gate on a few derived signals: the mean of the
last k losses, an EMA of them, and the previous loss plus w times a reconstruction signal.
The rules are those of crates/ponder-gate/src/{quantile,paced}.rs; `neg_prev_loss` reads the
loss of the action taken on the previous chunk-batch, as the gates do.

    python3 docs/experiments/2026-12-04-pacing.py \
        runs/tiny/fast-ttt_linear-k1/validation/python/records.jsonl
"""
import bisect
import json
import math
import sys

RHO = 0.5


def replay(rows, signal, target, calibration=1, prior=()):
    """Decisions of a quantile gate whose updated fraction q comes from target(t, U, n)."""
    history, updates, taken, decisions = sorted(prior), 0, [], []
    n = len(rows)
    for t, row in enumerate(rows):
        s = signal(rows, t, taken)
        q = target(t, updates, n)
        debt = RHO * t - updates
        if q >= 1:
            d = True
        elif q <= 0:
            d = False
        elif s is None:
            d = debt > 0
        elif len(history) < calibration:
            d = True
        else:
            d = s > history[min(math.floor((1 - q) * len(history)), len(history) - 1)]
        decisions.append(d)
        updates += d
        taken.append(row["update_loss"] if d else row["skip_loss"])
        if s is not None:
            bisect.insort(history, s)
    return decisions


def debt_target(gain, deadband):
    def q(t, updates, n):
        debt = RHO * t - updates
        return RHO + gain * math.copysign(max(0.0, abs(debt) - deadband), debt)
    return q


def paced_target(t, updates, n):
    return (RHO * n - updates) / max(n - t, 1)


def figures(parts):
    """Rate, agreement with each part's oracle top-ρ, loss, and Recovery over the parts."""
    n = agree = upd = 0
    loss = skip = oracle = 0.0
    for rows, decisions in parts:
        adv = [r["skip_loss"] - r["update_loss"] for r in rows]
        top = set(sorted(range(len(rows)), key=lambda i: -adv[i])[: round(RHO * len(rows))])
        n += len(rows)
        upd += sum(decisions)
        agree += sum((i in top) == d for i, d in enumerate(decisions))
        loss += sum(r["update_loss"] if d else r["skip_loss"] for r, d in zip(rows, decisions))
        skip += sum(r["skip_loss"] for r in rows)
        oracle += sum(r["update_loss"] if i in top else r["skip_loss"] for i, r in enumerate(rows))
    recovery = (skip - loss) / (skip - oracle)
    return f"rate {upd / n:.3f}  agreement {agree / n:.3f}  loss {loss / n:.5f}  Recovery {recovery:.3f}"


def field(name, sign=1.0):
    return lambda rows, t, taken: sign * rows[t][name]


def neg_mean_prev(k):
    def s(rows, t, taken):
        return None if t == 0 else -sum(taken[max(0, t - k):t]) / len(taken[max(0, t - k):t])
    return s


def neg_ema_prev(alpha):
    def s(rows, t, taken):
        if t == 0:
            return None
        e = taken[0]
        for x in taken[1:t]:
            e = alpha * x + (1 - alpha) * e
        return -e
    return s


def main(path):
    rows = [json.loads(line) for line in open(path)]
    half = len(rows) // 2
    a, b = rows[:half], rows[half:]
    signals = {
        "recon": field("recon"),
        "recon_init": field("recon_init"),
        "neg_prev_loss": neg_mean_prev(1),
    }
    # A prior for one half: the other half's signal values (the previous loss approximated by
    # the SKIP loss, which is what a history of that half would hold at Random's rate).
    prior_of = {
        "recon": lambda rs: [r["recon"] for r in rs],
        "recon_init": lambda rs: [r["recon_init"] for r in rs],
        "neg_prev_loss": lambda rs: [-r["skip_loss"] for r in rs],
    }
    corrections = [(f"debt gain {g} deadband {d}", debt_target(g, d))
                   for g, d in [(0.02, 4.0), (0.05, 0.0), (0.1, 0.0), (0.3, 0.0), (1.0, 0.0)]]
    corrections.append(("paced", paced_target))
    print(f"{len(rows)} chunk-batches of {path}, ρ = {RHO}")
    for name, signal in signals.items():
        for label, target in corrections:
            whole = figures([(rows, replay(rows, signal, target))])
            prior = figures([
                (a, replay(a, signal, target, prior=prior_of[name](b))),
                (b, replay(b, signal, target, prior=prior_of[name](a))),
            ])
            print(f"{name:14s} {label:26s} whole: {whole}\n{'':41s} prior: {prior}")
    print("paced gate on derived signals, whole stream:")
    derived = {f"-mean of last {k} losses": neg_mean_prev(k) for k in [1, 2, 4, 8]}
    derived.update({f"-EMA {al} of losses": neg_ema_prev(al) for al in [0.7, 0.3]})
    for w in [0.5, 1, 2, 4]:
        for f in ["recon", "recon_init"]:
            derived[f"-prev loss + {w}·{f}"] = (
                lambda rows, t, taken, w=w, f=f:
                None if t == 0 else -taken[t - 1] + w * rows[t][f])
    for label, signal in derived.items():
        print(f"  {label:28s} {figures([(rows, replay(rows, signal, paced_target))])}")


if __name__ == "__main__":
    main(sys.argv[1])
