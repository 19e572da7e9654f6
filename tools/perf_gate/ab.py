"""tools/perf_gate/ab.py: the A/B part of the perf gate: the change (B) against its base (A), both
built next to each other, their benchmarks run interleaved in one run (standard library only).

The cases are listed in ab_cases.json, grouped by probe: one invocation of one benchmark binary
(a Google Benchmark binary with a filter, or pushstage-bench) that yields a value per case. A round
runs every probe once in each build, A then B or B then A (alternating from round to round), so
the two builds of a case run seconds apart and see the same machine weather; each round gives a
pair (a, b) per case. ab_stats.judge() turns the pairs into an effect with a confidence interval
and a decision. A case whose interval lies wholly beyond the threshold runs rerun_rounds more
rounds to confirm it and fails only if the interval over all its pairs still lies beyond (one
stretch of bad weather over a few rounds is not a regression: an A/A run here once saw +20%
[+11, +31] on 2P2C throughput after 8 rounds). A case whose interval straddles the threshold runs
rerun_rounds more rounds (only its probe, only its cases), at most max_reruns times, and then
passes with a warning: noise alone never fails the gate.

A case the base does not have (a new benchmark, a probe binary the base does not build, or output
the base's binary does not give) is reported as "no base" and never fails. A case the change does
not have is an error (exit 2): benchmark names are regression keys.
"""

import json
import os
import re
import shlex
import statistics
import subprocess
import tempfile
import time

import ab_stats

ERE_SPECIAL = set(".[]()*+?{}|^$\\")


class RunError(Exception):
    """A probe could not be run or its output not read."""


def ere_escape(text):
    """Escapes for Google Benchmark's filter (POSIX extended regex); \\- is not portable there."""
    return "".join(f"[{c}]" if c in ERE_SPECIAL else c for c in text)


def dig(data, path):
    for key in path:
        data = data[key]
    return data


def gbench_filter(cases):
    return "--benchmark_filter=^(" + "|".join(ere_escape(c) for c in cases) + ")$"


def list_gbench(binary, cases):
    """The cases the binary has (--benchmark_list_tests); RunError when it cannot be run."""
    cmd = [binary, gbench_filter(cases), "--benchmark_list_tests=true"]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        raise RunError(f"{shlex.join(cmd)}: {e}")
    if p.returncode != 0:
        raise RunError(f"{shlex.join(cmd)} exited {p.returncode}: {p.stderr.strip()[-2000:]}")
    return set(p.stdout.split()) & set(cases)


def run_gbench(binary, probe, cases, out):
    cmd = [binary, gbench_filter(cases), f"--benchmark_repetitions={probe['repetitions']}",
           "--benchmark_enable_random_interleaving=true",
           f"--benchmark_min_time={probe['min_time']}",
           f"--benchmark_out={out}", "--benchmark_out_format=json"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0 or not os.path.exists(out):
        raise RunError(f"{shlex.join(cmd)} exited {p.returncode}: {p.stderr.strip()[-2000:]}")
    with open(out, encoding="utf-8") as f:
        data = json.load(f)
    by_case = {}
    for entry in data.get("benchmarks", []):
        if entry.get("run_type") != "iteration":
            continue
        name = entry.get("run_name", entry.get("name"))
        if entry.get("error_occurred"):
            raise RunError(f"{name}: {entry.get('error_message')}")
        by_case.setdefault(name, []).append(entry)
    values = {}
    for case, spec in cases.items():
        entries = by_case.get(case, [])
        got = [float(e[spec["metric"]]) for e in entries if spec["metric"] in e]
        if got:
            values[case] = statistics.median(got)
    return values, cmd[:-2]


def run_cli(binary, probe, cases, out):
    cmd = [binary, *probe["args"], "--json", out]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0 or not os.path.exists(out):
        raise RunError(f"{shlex.join(cmd)} exited {p.returncode}: "
                       f"{(p.stdout + p.stderr).strip()[-2000:]}")
    with open(out, encoding="utf-8") as f:
        data = json.load(f)
    values = {}
    for case, spec in cases.items():
        try:
            values[case] = float(dig(data, spec["path"]))
        except (KeyError, IndexError, TypeError, ValueError):
            pass
    return values, cmd[:-2]


def run_probe(build_dir, probe, cases):
    """Runs one probe of one build; returns ({case: value}, command). Cases absent from the
    output are absent from the result; RunError when the binary fails or does not exist."""
    binary = os.path.join(build_dir, probe["binary"])
    if not os.path.exists(binary):
        raise RunError(f"{binary} does not exist")
    with tempfile.TemporaryDirectory(prefix="perf-gate-ab-") as tmp:
        out = os.path.join(tmp, "out.json")
        if probe["tool"] == "gbench":
            return run_gbench(binary, probe, cases, out)
        if probe["tool"] == "pushstage-bench":
            return run_cli(binary, probe, cases, out)
        raise RunError(f"probe {probe['name']}: unknown tool {probe['tool']}")


class Measurement:
    """The pairs of every case, collected round by round."""

    def __init__(self, spec, builds, only=None):
        self.spec = spec
        self.builds = builds  # {"a": dir, "b": dir}
        self.cases = {}  # case -> its spec, with "probe"
        for probe in spec["probes"]:
            for case in probe["cases"]:
                if only is None or re.search(only, case["name"]):
                    self.cases[case["name"]] = dict(case, probe=probe["name"])
        if not self.cases:
            raise RunError(f"no case matches {only!r}")
        self.pairs = {c: [] for c in self.cases}
        self.no_base = {}  # case -> why
        self.skipped_pairs = {c: 0 for c in self.cases}
        self.rounds = 0
        self.commands = {}
        self.seconds = 0.0

    def check_cases(self):
        """Before the first round: a case the base's binary does not have is "no base" and runs
        in neither build, so that both run the same benchmarks in one process (another case in
        the same process can move a case's numbers: memory it leaves behind, what runs between
        repetitions). A case the change's binary lacks is an error."""
        for probe, cases in self.probes_for(list(self.cases)):
            if probe["tool"] != "gbench":
                continue
            binary = {side: os.path.join(self.builds[side], probe["binary"]) for side in "ab"}
            have_b = list_gbench(binary["b"], list(cases))
            for c in cases:
                if c not in have_b:
                    raise RunError(f"the change's {probe['binary']} has no {c} (renamed? "
                                   f"benchmark names are regression keys)")
            try:
                have_a = list_gbench(binary["a"], list(cases)) if os.path.exists(
                    binary["a"]) else set()
                why = "the base's {} has no {}"
            except RunError as e:
                have_a, why = set(), f"the base's {{}} does not run: {e} ({{}})"
            for c in cases:
                if c not in have_a:
                    self.no_base[c] = why.format(probe["binary"], c)

    def probes_for(self, active):
        for probe in self.spec["probes"]:
            cases = {c: self.cases[c] for c in active if self.cases[c]["probe"] == probe["name"]}
            if cases:
                yield probe, cases

    def run_rounds(self, n, active, log):
        t0 = time.monotonic()
        for _ in range(n):
            order = ("a", "b") if self.rounds % 2 == 0 else ("b", "a")
            for probe, cases in self.probes_for(active):
                got = {}
                for side in order:
                    want = {c: s for c, s in cases.items() if side == "b" or c not in self.no_base}
                    if not want:
                        continue
                    try:
                        got[side], command = run_probe(self.builds[side], probe, want)
                    except RunError as e:
                        if side == "b":
                            raise
                        for c in want:  # a base that ran before lost one round; else it has none
                            if not self.pairs[c]:
                                self.no_base[c] = f"the base's {probe['binary']} failed: {e}"
                        continue
                    self.commands.setdefault(side, {})[probe["name"]] = shlex.join(command)
                for c in cases:
                    b = got.get("b", {}).get(c)
                    if b is None:
                        raise RunError(f"the change's {probe['binary']} gave no value for {c} "
                                       f"(renamed? benchmark names are regression keys)")
                    if c in self.no_base:
                        continue
                    a = got.get("a", {}).get(c)
                    if a is None and self.pairs[c]:
                        self.skipped_pairs[c] += 1
                    elif a is None:
                        self.no_base[c] = f"the base's {probe['binary']} has no {c}"
                    elif a <= 0 or b <= 0:
                        self.skipped_pairs[c] += 1  # a zero latency or rate has no log ratio
                    else:
                        self.pairs[c].append((a, b))
            self.rounds += 1
            log(f"round {self.rounds} done ({len(active)} cases, "
                f"{self.seconds + time.monotonic() - t0:.0f} s so far)")
        self.seconds += time.monotonic() - t0


def ab_part(spec, builds, only=None, log=print, threshold=None, rounds=None):
    """Runs the A/B part; returns (results {case: dict}, facts for the result file)."""
    threshold = float(threshold if threshold is not None else spec["threshold_percent"])
    confidence = float(spec["confidence"])
    more, max_reruns = int(spec["rerun_rounds"]), int(spec["max_reruns"])
    m = Measurement(spec, builds, only)
    m.check_cases()
    active = [c for c in m.cases if c not in m.no_base]
    m.run_rounds(int(rounds if rounds is not None else spec["rounds"]), active, log)
    judged = {c: {"decision": "no base", "why": why, "rounds": 0} for c, why in m.no_base.items()}
    confirmed = set()  # cases that were beyond the limit once and ran their confirming rounds
    reruns = 0
    while True:
        for c in active:
            if c in m.no_base:
                judged[c] = {"decision": "no base", "why": m.no_base[c], "rounds": 0}
            elif len(m.pairs[c]) < 2:
                judged[c] = {"decision": "straddles", "rounds": len(m.pairs[c])}
            else:
                judged[c] = ab_stats.judge(m.pairs[c], m.cases[c].get("better", "higher"),
                                           threshold, confidence)
            judged[c]["confirmed"] = c in confirmed
        # A case beyond the limit for the first time runs `more` rounds before it may fail, like a
        # ratio below its floor: one stretch of bad weather over a few rounds is not a regression.
        confirm = [c for c in active if judged[c]["decision"] == "slower" and c not in confirmed]
        straddling = [c for c in active if judged[c]["decision"] == "straddles"]
        if straddling and reruns < max_reruns:
            reruns += 1
            log(f"straddling the +{threshold:g}% limit, {more} more rounds (re-run {reruns} of "
                f"{max_reruns}): {', '.join(short(c) for c in straddling)}")
        else:
            straddling = []
        if confirm:
            log(f"beyond the +{threshold:g}% limit, {more} more rounds to confirm: "
                f"{', '.join(short(c) for c in confirm)}")
        active = confirm + straddling
        if not active:
            break
        confirmed.update(confirm)
        m.run_rounds(more, active, log)
    results = {}
    for c, spec_c in m.cases.items():
        j = dict(judged[c])
        j["metric"] = spec_c["metric"] if "metric" in spec_c else ".".join(map(str, spec_c["path"]))
        j["better"] = spec_c.get("better", "higher")
        j["pairs"] = [[a, b] for a, b in m.pairs[c]]
        j["unusable_pairs"] = m.skipped_pairs[c]
        j["verdict"], j["failed"] = verdict_of(j, threshold, max_reruns)
        results[c] = j
    facts = {"threshold_percent": threshold, "confidence": confidence, "rounds": m.rounds,
             "reruns": reruns, "confirmed": sorted(confirmed), "seconds": round(m.seconds, 1),
             "commands": m.commands, "builds": builds, "cases": results}
    return results, facts


def verdict_of(j, threshold, max_reruns):
    d = j["decision"]
    if d == "no base":
        return "no base", False
    if d == "slower":
        return f"FAIL slower than +{threshold:g}% (confirmed)", True
    if d == "within":
        return ("ok (faster)" if j["ci_percent"][1] < 0 else "ok"), False
    return f"ok? straddles +{threshold:g}% after {max_reruns} re-runs (warning)", False


def short(case):
    """BM_Throughput<pushstage>/1P1C/real_time/threads:2 -> BM_Throughput<pushstage>/1P1C."""
    keep = [p for p in case.split("/") if not re.fullmatch(
        r"real_time|manual_time|threads:\d+|iterations:\d+|repeats:\d+", p)]
    return "/".join(keep)


def fmt_value(v, metric):
    if metric in ("items_per_second", "kept_per_second"):
        return f"{v / 1e6:.2f} M/s" if v >= 1e6 else f"{v / 1e3:.1f} k/s"
    if metric == "cpu_ns_per_event":
        return f"{v:.1f} ns"
    if metric.endswith("_us"):
        return f"{v:.2f} us"
    if metric.endswith("_ns"):
        return f"{v / 1e3:.1f} us"
    return f"{v:.4g}"


def table(results, threshold, confidence):
    """The A/B table, as lines."""
    head = ("case", "metric", "A (base)", "B (change)", "B/A",
            f"effect [{confidence * 100:g}% CI]", "rounds", "verdict")
    rows = [head]
    for c, j in results.items():
        metric = j["metric"].split(".")[-1]
        if j["decision"] == "no base":
            rows.append((short(c), metric, "-", "-", "-", "-", "-", "no base"))
            continue
        if "effect_percent" not in j:
            rows.append((short(c), metric, "-", "-", "-", "-", str(j["rounds"]), j["verdict"]))
            continue
        low, high = j["ci_percent"]
        rows.append((short(c), metric + (" (lower is better)" if j["better"] == "lower" else ""),
                     fmt_value(j["a_median"], metric), fmt_value(j["b_median"], metric),
                     f"{j['b_over_a']:.3f}",
                     f"{j['effect_percent']:+.1f}% [{low:+.1f}, {high:+.1f}]",
                     str(j["rounds"]), j["verdict"]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = []
    for i, r in enumerate(rows):
        lines.append("  ".join(str(x).ljust(widths[k]) for k, x in enumerate(r)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def failures_of(results, threshold):
    out = []
    for c, j in results.items():
        if j["failed"]:
            low, high = j["ci_percent"]
            out.append(f"FAIL a/b {short(c)}: {j['effect_percent']:+.1f}% slower than the base "
                       f"({j['confidence'] * 100:g}% CI [{low:+.1f}%, {high:+.1f}%] lies wholly "
                       f"beyond +{threshold:g}%; {j['rounds']} rounds; B/A of medians "
                       f"{j['b_over_a']:.3f} in {j['metric']})")
    return out


def warnings_of(results):
    return [f"warning a/b {short(c)}: effect {j['effect_percent']:+.1f}%, CI "
            f"[{j['ci_percent'][0]:+.1f}%, {j['ci_percent'][1]:+.1f}%] still straddles the limit "
            f"after {j['rounds']} rounds: passed, not proven"
            for c, j in results.items() if j["decision"] == "straddles" and "ci_percent" in j]
