"""tools/perf_gate/ab_stats.py: the A/B part's statistics (standard library only).

Each round of the A/B part runs the base (A) and the change (B) back to back, so a case gives
paired values (a_i, b_i), one pair per round. The effect of the change on a case is estimated on
the log of each pair's cost ratio, d_i = log(cost(b_i) / cost(a_i)), where cost is the value
itself for a latency ("better": "lower") and its inverse for a throughput; d > 0 means B is slower.

  estimate   Hodges-Lehmann: the median of the n(n+1)/2 Walsh averages (d_i + d_j) / 2, i <= j
  interval   the distribution-free confidence interval that goes with it: the k-th smallest and
             k-th largest Walsh average, k from the exact null distribution of Wilcoxon's signed
             rank statistic (it holds when the d_i are independent and symmetric about the
             effect; the rounds alternate A B / B A so that an order effect is symmetric too)
  decision   against a slowdown threshold t (10%): FAIL when the whole interval lies above
             log(1 + t), PASS when it lies wholly below, otherwise the interval straddles and the
             case needs more rounds.

Effects are reported as percentages: exp(d) - 1, so +12% means B costs 12% more than A per event
(12% less throughput, or a 12% higher latency).
"""

import math
import statistics


def signed_rank_cdf(n):
    """P(T <= t) for t = 0 .. n(n+1)/2, T the signed rank statistic of n differences under the
    null (every sign equally likely): counts of the subsets of {1..n} by their sum, over 2^n."""
    top = n * (n + 1) // 2
    counts = [1] + [0] * top
    for rank in range(1, n + 1):
        for t in range(top, rank - 1, -1):
            counts[t] += counts[t - rank]
    total = 2**n
    cdf, acc = [], 0
    for c in counts:
        acc += c
        cdf.append(acc / total)
    return cdf


def hodges_lehmann(diffs, confidence):
    """(estimate, low, high) of the centre of diffs; low/high are -inf/+inf when n is too small
    for the confidence asked (at 95%, n < 6)."""
    n = len(diffs)
    if n == 0:
        raise ValueError("no differences")
    walsh = sorted((diffs[i] + diffs[j]) / 2 for i in range(n) for j in range(i, n))
    estimate = statistics.median(walsh)
    alpha = 1.0 - confidence
    cdf = signed_rank_cdf(n)
    # k: the number of Walsh averages cut from each end, the largest with P(T <= k - 1) <= alpha/2.
    k = 0
    while k < len(cdf) and cdf[k] <= alpha / 2:
        k += 1
    if k == 0:
        return estimate, -math.inf, math.inf
    return estimate, walsh[k - 1], walsh[len(walsh) - k]


def cost_log_ratios(pairs, better):
    """d_i = log(cost(b) / cost(a)) for each (a, b); positive: B slower."""
    out = []
    for a, b in pairs:
        if a <= 0 or b <= 0:
            raise ValueError(f"a value that is not positive: {a}, {b}")
        out.append(math.log(b / a) if better == "lower" else math.log(a / b))
    return out


def percent(log_ratio):
    return (math.exp(log_ratio) - 1.0) * 100.0 if math.isfinite(log_ratio) else log_ratio * 100


def judge(pairs, better, threshold_percent, confidence):
    """The effect of B on one case from its (a, b) pairs: a dict with the estimate and interval
    (percent, positive = slower) and the decision: "slower" (the interval lies wholly beyond the
    threshold), "within" (wholly within), "straddles"."""
    d = cost_log_ratios(pairs, better)
    est, low, high = hodges_lehmann(d, confidence)
    limit = math.log(1.0 + threshold_percent / 100.0)
    decision = "slower" if low > limit else "within" if high < limit else "straddles"
    a = statistics.median(p[0] for p in pairs)
    b = statistics.median(p[1] for p in pairs)
    return {"rounds": len(pairs), "a_median": a, "b_median": b, "b_over_a": b / a,
            "effect_percent": round(percent(est), 2),
            "ci_percent": [round(percent(low), 2), round(percent(high), 2)],
            "confidence": confidence, "decision": decision}
