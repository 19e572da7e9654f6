#!/usr/bin/env python3
"""tools/perf_gate/perf_gate.py: pushstage's performance regression gate (standard library only).

Subcommands (tools/perf-gate is the entry point that builds and calls them):
  icount       instruction counts of the single-threaded drivers (icount_driver.cpp) under
               callgrind, per operation, against a committed baseline; fails past a per-case
               threshold.
  ab           the change against its base, both built here, benchmarks interleaved (ab.py):
               per case an effect with a confidence interval; fails a case whose interval lies
               wholly beyond a 10% slowdown.
  ratios       pushstage's throughput divided by each yardstick's, medians of one interleaved run
               with repetitions, against committed floors; a case below its floor runs again and
               fails only if it is below twice.
  gate         all of the above, one table, one JSON result file.
  observe      runs the ratio benchmarks several times and prints every ratio (to choose floors).
  selftest     proves the icount check can fail (a doctored baseline, a deliberately slowed build)
               and passes on the real build; ctest runs it (label perf).
  selftest-ab  proves the A/B part fails deliberately slowed builds (wake path, pool loop) and
               passes an A/A run, in a reduced form; ctest runs it (label perf).
  prove        the full proof of the A/B part for a quiet machine: N A/A runs, M runs per
               slowdown; prints the false-positive and detection rates (ab_selftest.py).
Exit status: 0 pass, 1 a check failed, 2 the gate could not run (usage, build, tool error).
"""

import argparse
import datetime
import glob
import json
import math
import os
import platform
import re
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import ab
import ab_build
import ab_selftest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(os.path.dirname(HERE))
DEFAULT_BASELINE = os.path.join(HERE, "icount_baseline.json")
DEFAULT_FLOORS = os.path.join(HERE, "ratio_floors.json")
DEFAULT_AB_CASES = os.path.join(HERE, "ab_cases.json")
DEFAULT_THRESHOLD_PERCENT = 3.0
SUBJECT = "pushstage"


class GateError(Exception):
    """The gate could not run (as opposed to: it ran and a check failed)."""


# ---------------------------------------------------------------------------------------------
# Facts about the run: commit, machine, compiler, tools.


def sh(cmd, cwd=None):
    return subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True).stdout


def git_commit():
    try:
        head = sh(["git", "rev-parse", "HEAD"], cwd=SOURCE_DIR).strip()
        dirty = sh(["git", "status", "--porcelain", "--untracked-files=no"], cwd=SOURCE_DIR)
        return head + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "host": socket.gethostname(),
        "cpu": cpu,
        "cpus": len(os.sched_getaffinity(0)),
        "kernel": platform.release(),
    }


def driver_info(driver):
    """What the driver reports about its build: compiler, build type and flags, slowdown."""
    info = {}
    for line in sh([driver, "--info"]).splitlines():
        key, _, value = line.partition(" ")
        info[key] = value.strip()
    return info


def valgrind_version():
    try:
        return sh(["valgrind", "--version"]).strip()
    except (OSError, subprocess.CalledProcessError) as e:
        raise GateError(f"valgrind is not available ({e}); install the Debian package valgrind")


def rel(path):
    """A path as written in result files: relative to the source tree when inside it."""
    path = os.path.abspath(path)
    return os.path.relpath(path, SOURCE_DIR) if path.startswith(SOURCE_DIR + os.sep) else path


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def load_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        raise GateError(f"cannot read {path}: {e}")
    except json.JSONDecodeError as e:
        raise GateError(f"{path} is not valid JSON: {e}")


def write_json(path, data):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")


def loud(lines):
    bar = "!" * 100
    print(bar)
    for line in lines:
        print("!! " + line)
    print(bar)


# ---------------------------------------------------------------------------------------------
# Part 1: instruction counts.


def measure_icount(driver, cases=()):
    """Runs the driver under callgrind; returns ({case: {ops, ir, ir_per_op}}, command line)."""
    with tempfile.TemporaryDirectory(prefix="perf-gate-callgrind-") as tmp:
        out = os.path.join(tmp, "callgrind.out")
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
               f"--callgrind-out-file={out}", driver, *cases]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            raise GateError(f"{shlex.join(cmd)} exited {p.returncode}:\n{p.stdout}{p.stderr}")
        ops = {}
        order = []
        for line in p.stdout.splitlines():
            m = re.fullmatch(r"case (\S+) ops (\d+)", line.strip())
            if m:
                ops[m.group(1)] = int(m.group(2))
                order.append(m.group(1))
        counts = {}
        for path in glob.glob(out + ".*"):
            name = total = None
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if line.startswith("desc: Trigger: Client Request: "):
                        name = line.split(":", 2)[2].strip()[len("Client Request: "):].strip()
                    elif line.startswith("totals:"):
                        total = int(line.split()[1])
            if name is not None and total is not None:
                counts[name] = total
    if not order or set(order) != set(counts):
        raise GateError(f"callgrind dumps ({sorted(counts)}) do not match the cases the driver "
                        f"ran ({order}); command: {shlex.join(cmd)}")
    measured = {}
    for name in order:
        measured[name] = {"ops": ops[name], "ir": counts[name],
                          "ir_per_op": round(counts[name] / ops[name], 3)}
    command = shlex.join(["valgrind", "--tool=callgrind", "--instr-atstart=no",
                          "--callgrind-out-file=<tmp>", rel(driver), *cases])
    return measured, command


def compare_icount(measured, baseline, default_threshold):
    """Rows of (case, value, limit, verdict, failed) and the failure messages."""
    rows, failures = [], []
    base_cases = baseline.get("cases", {})
    threshold_all = float(baseline.get("threshold_percent", default_threshold))
    names = list(measured) + [n for n in base_cases if n not in measured]
    for name in names:
        m, b = measured.get(name), base_cases.get(name)
        threshold = float(b.get("threshold_percent", threshold_all)) if b else threshold_all
        if m is None:
            msg = f"FAIL icount {name}: in the baseline but not measured (renamed or removed?)"
            rows.append(("icount", name, "-", f"{b['ir_per_op']:.1f}", "FAIL missing", True))
            failures.append(msg)
            continue
        value = f"{m['ir_per_op']:.1f} Ir/op"
        if b is None:
            rows.append(("icount", name, value, "-", "new (no baseline)", False))
            continue
        delta = (m["ir_per_op"] / b["ir_per_op"] - 1.0) * 100.0
        limit = f"{b['ir_per_op']:.1f} +{threshold:g}%"
        if delta > threshold:
            verdict, failed = f"FAIL {delta:+.1f}%", True
            failures.append(f"FAIL icount {name}: {m['ir_per_op']:.1f} instructions per op, "
                            f"baseline {b['ir_per_op']:.1f}: {delta:+.1f}% "
                            f"(limit +{threshold:g}%)")
        elif delta < -threshold:
            verdict, failed = f"ok {delta:+.1f}% (faster: update the baseline)", False
        else:
            verdict, failed = f"ok {delta:+.1f}%", False
        rows.append(("icount", name, value, limit, verdict, failed))
    return rows, failures


def icount_part(driver, baseline_path, threshold, update):
    """Measures, compares or updates. Returns (rows, failures, facts for the result file)."""
    info = driver_info(driver)
    if info.get("slowdown") == "on" and update:
        raise GateError("refusing to write a baseline from a build with the deliberate slowdown "
                        "PUSHSTAGE_PERF_GATE_SLOW_PUSH (tools/perf_gate/slowdown.cmake)")
    vg = valgrind_version()
    measured, command = measure_icount(driver)
    facts = {"compiler": info.get("compiler"), "build": info.get("build"),
             "slowdown": info.get("slowdown"), "valgrind": vg, "command": command,
             "cases": measured}
    if update:
        old = load_json(baseline_path) if os.path.exists(baseline_path) else {"cases": {}}
        baseline = {
            "what": "callgrind instruction counts (Ir) per operation of the measured loop of each "
                    "case of tools/perf_gate/icount_driver.cpp; ops is the fixed iteration count",
            "how_to_update": "tools/perf-gate --update-baseline, then commit this file alone "
                             "with a message that says why the counts changed",
            "updated": utc_now(),
            "commit": git_commit(),
            "machine": machine(),
            "compiler": info.get("compiler"),
            "build": info.get("build"),
            "valgrind": vg,
            "command": command,
            "threshold_percent": float(old.get("threshold_percent", threshold)),
            "cases": measured,
        }
        for name, case in old.get("cases", {}).items():  # keep per-case thresholds
            if name in measured and "threshold_percent" in case:
                measured[name]["threshold_percent"] = case["threshold_percent"]
        rows, _ = compare_icount(measured, old, threshold)
        write_json(baseline_path, baseline)
        print(f"perf-gate: wrote {rel(baseline_path)} ({len(measured)} cases); compared with "
              f"the previous baseline:")
        return rows, [], facts
    baseline = load_json(baseline_path)
    facts["compiler_differs"] = (baseline.get("compiler") != info.get("compiler")
                                 or baseline.get("build") != info.get("build"))
    if facts["compiler_differs"]:
        loud([f"COMPILER DIFFERS FROM THE BASELINE'S: instruction counts depend on the compiler "
              f"and its flags.",
              f"  measured with: {info.get('compiler')} [{info.get('build')}]",
              f"  baseline from: {baseline.get('compiler')} [{baseline.get('build')}] "
              f"({rel(baseline_path)})",
              "Comparing anyway. If the differences come from the compiler, update the baseline "
              "in its own commit."])
    if baseline.get("valgrind") != vg:
        print(f"perf-gate: note: valgrind differs from the baseline's ({vg} vs "
              f"{baseline.get('valgrind')})")
    rows, failures = compare_icount(measured, baseline, threshold)
    facts["baseline"] = {"path": rel(baseline_path), "commit": baseline.get("commit"),
                         "compiler": baseline.get("compiler"), "build": baseline.get("build")}
    return rows, failures, facts


# ---------------------------------------------------------------------------------------------
# Part 2: ratios measured in one run.
#
# Benchmark names are BM_<Case><<impl>>/<rest>; a case is BM_<Case>/<rest> (the name without the
# implementation). One run of a binary interleaves every implementation of every case at random
# (--benchmark_enable_random_interleaving) with repetitions, so machine noise falls on all of them
# alike; the ratio of medians is pushstage's speed-up over a yardstick (above 1: pushstage better).

NAME_RE = re.compile(r"^(BM_[A-Za-z0-9_]+)<([^>]+)>(/.*)?$")


def split_name(run_name):
    m = NAME_RE.match(run_name)
    if not m:
        return None, None
    return m.group(1) + (m.group(3) or ""), m.group(2)


def case_filter(cases, impls):
    parts = []
    for case in cases:
        head, slash, rest = case.partition("/")
        alts = "|".join(ab.ere_escape(i) for i in impls)
        parts.append(f"{ab.ere_escape(head)}<({alts})>{ab.ere_escape(slash + rest)}")
    return "^(" + "|".join(parts) + ")$"


def run_benchmarks(binary, cases, impls, repetitions, min_time):
    """Runs the cases' implementations interleaved; returns {case: {impl: [run entries]}}."""
    if not os.path.exists(binary):
        raise GateError(f"{binary} is not built")
    with tempfile.TemporaryDirectory(prefix="perf-gate-bench-") as tmp:
        out = os.path.join(tmp, "bench.json")
        cmd = [binary, f"--benchmark_filter={case_filter(cases, impls)}",
               f"--benchmark_repetitions={repetitions}",
               "--benchmark_enable_random_interleaving=true",
               f"--benchmark_min_time={min_time}",
               f"--benchmark_out={out}", "--benchmark_out_format=json"]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0 or not os.path.exists(out):
            raise GateError(f"{shlex.join(cmd)} exited {p.returncode}:\n{p.stderr[-3000:]}")
        data = load_json(out)
    runs = {}
    for entry in data.get("benchmarks", []):
        if entry.get("run_type") != "iteration":
            continue
        if entry.get("error_occurred"):
            raise GateError(f"{entry.get('run_name')}: {entry.get('error_message')}")
        case, impl = split_name(entry.get("run_name", entry.get("name", "")))
        if case is None:
            continue
        runs.setdefault(case, {}).setdefault(impl, []).append(entry)
    for case in cases:
        for impl in impls:
            if not runs.get(case, {}).get(impl):
                raise GateError(f"{rel(binary)} ran no '{impl}' for {case}: is the name right?")
    return runs, shlex.join([rel(binary)] + cmd[1:-2])


def median_of(entries, metric):
    values = [float(e[metric]) for e in entries if metric in e]
    if not values:
        raise GateError(f"{entries[0].get('run_name')} reports no '{metric}'")
    return statistics.median(values)


def ratios_of(case_spec, runs):
    """{peer: ratio} for one case; ratio > 1 means pushstage is better."""
    metric = case_spec.get("metric", "items_per_second")
    lower_better = case_spec.get("better", "higher") == "lower"
    subject = median_of(runs[SUBJECT], metric)
    out = {}
    for peer in case_spec["floors"]:
        peer_value = median_of(runs[peer], metric)
        out[peer] = (peer_value / subject) if lower_better else (subject / peer_value)
    return out


def measure_ratios(floors, bench_dir, only=None):
    """One interleaved run per binary. Returns ({case: {peer: ratio}}, {case: runs}, commands)."""
    reps = int(floors["run"]["repetitions"])
    min_time = floors["run"]["min_time"]
    by_binary = {}
    for spec in floors["cases"]:
        if only is None or spec["case"] in only:
            by_binary.setdefault(spec["binary"], []).append(spec)
    ratios, all_runs, commands = {}, {}, []
    for binary, specs in by_binary.items():
        impls = [SUBJECT] + sorted({peer for s in specs for peer in s["floors"]})
        runs, command = run_benchmarks(os.path.join(bench_dir, binary),
                                       [s["case"] for s in specs], impls, reps, min_time)
        commands.append(command)
        for spec in specs:
            ratios[spec["case"]] = ratios_of(spec, runs[spec["case"]])
            all_runs[spec["case"]] = runs[spec["case"]]
    return ratios, all_runs, commands


def ratio_part(floors_path, bench_dir):
    floors = load_json(floors_path)
    specs = {s["case"]: s for s in floors["cases"]}
    first, runs, commands = measure_ratios(floors, bench_dir)
    below = sorted({case for case, rs in first.items()
                    for peer, r in rs.items() if r < specs[case]["floors"][peer]})
    second = {}
    if below:
        print(f"perf-gate: below a floor on the first run, running again: {', '.join(below)}")
        second, _, more = measure_ratios(floors, bench_dir, only=set(below))
        commands += more
    rows, failures, results = [], [], []
    for case, spec in specs.items():
        for peer, floor in spec["floors"].items():
            r1 = first[case][peer]
            r2 = second.get(case, {}).get(peer)
            label = f"{ab.short(case)} vs {peer}"
            if r1 >= floor:
                verdict, value, failed = "ok", f"{r1:.2f}", False
            elif r2 is not None and r2 >= floor:
                verdict, value, failed = "ok on 2nd run", f"{r1:.2f}, {r2:.2f}", False
            else:
                verdict, value, failed = "FAIL twice", f"{r1:.2f}, {r2:.2f}", True
                failures.append(f"FAIL ratio {label}: {r1:.2f} then {r2:.2f}, floor {floor:g} "
                                f"(pushstage's {spec.get('metric', 'items_per_second')} over "
                                f"{peer}'s; {spec.get('better', 'higher')} is better)")
            rows.append(("ratio", label, value, f">= {floor:g}", verdict, failed))
            results.append({"case": case, "peer": peer, "floor": floor, "ratio": r1,
                            "ratio_rerun": r2, "failed": failed})
    medians = {}
    for case, by_impl in runs.items():
        counters = ["items_per_second"] + specs[case].get("report", [])
        medians[case] = {impl: {c: median_of(entries, c) for c in counters}
                         for impl, entries in by_impl.items()}
    facts = {"floors": rel(floors_path), "run": floors["run"], "commands": commands,
             "ratios": results, "medians": medians}
    return rows, failures, facts


def print_medians(facts):
    """Reported, not gated: each implementation's medians, tail latencies among them."""
    impls = []
    for by_impl in facts["medians"].values():
        impls += [i for i in by_impl if i not in impls]
    impls.sort(key=lambda i: (i != SUBJECT, i))
    table = [("case", "counter", *impls)]
    for case, by_impl in facts["medians"].items():
        counters = list(next(iter(by_impl.values())))
        for counter in counters:
            cells = []
            for impl in impls:
                v = by_impl.get(impl, {}).get(counter)
                cells.append("-" if v is None else
                             (f"{v / 1e6:.2f} M/s" if v >= 1e6 else f"{v / 1e3:.1f} k/s")
                             if counter == "items_per_second" else
                             f"{v:.1f}")
            table.append((ab.short(case), counter.replace("items_per_second", "throughput"),
                          *cells))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    print("Reported, not gated (medians over the repetitions of the first run; tails in us):")
    for i, r in enumerate(table):
        print("  " + "  ".join(c.ljust(widths[j]) for j, c in enumerate(r)).rstrip())
        if i == 0:
            print("  " + "  ".join("-" * w for w in widths))


def cmd_ratios(args):
    rows, failures, facts = ratio_part(args.floors, args.bench_dir)
    print_medians(facts)
    print()
    print_table(rows)
    for msg in failures:
        print(msg)
    if args.out:
        write_json(args.out, {"commit": git_commit(), "machine": machine(), "time": utc_now(),
                              "ratios": facts, "failures": failures})
    return 1 if failures else 0


# ---------------------------------------------------------------------------------------------
# Part 2: the change against its base (ab.py), both built here, benchmarks interleaved.


def ab_gate_part(cases_path, head_build, base=None, base_build=None, only=None, rounds=None,
                 threshold=None):
    """Builds the base unless base_build is given, runs the A/B part. Returns (rows for the
    summary table, failures, facts, the A/B table's lines, warnings)."""
    spec = load_json(cases_path)
    log = []
    t0 = time.monotonic()
    try:
        if base_build is None:
            commit, source = ab_build.resolve_base(base)
            print(f"perf-gate: a/b: base {commit[:12]} ({source}), building it in "
                  f"{rel(ab_build.BASE_ROOT)}", flush=True)
            base_build, built = ab_build.build_base(commit, log)
            base_facts = {"commit": commit, "from": source, "build": rel(base_build),
                          "targets_built": built}
        else:
            base_facts = {"commit": None, "from": "--base-build", "build": rel(base_build)}
        base_facts["build_seconds"] = round(time.monotonic() - t0, 1)
        print(f"perf-gate: a/b: A = {rel(base_build)}, B = {rel(head_build)}, rounds of A B / B A "
              f"({base_facts['build_seconds']:.0f} s to build the base)", flush=True)
        results, facts = ab.ab_part(
            spec, {"a": os.path.abspath(base_build), "b": os.path.abspath(head_build)},
            only=only, rounds=rounds, threshold=threshold,
            log=lambda msg: print(f"perf-gate: a/b: {msg}", flush=True))
    except (ab_build.BuildError, ab.RunError) as e:
        raise GateError(str(e))
    facts["base"] = base_facts
    facts["cases_file"] = rel(cases_path)
    limit = facts["threshold_percent"]
    rows = []
    for case, j in results.items():
        if "ci_percent" in j:
            low, high = j["ci_percent"]
            value = f"{j['effect_percent']:+.1f}% [{low:+.1f}, {high:+.1f}]"
        else:
            value = "-"
        rows.append(("a/b", ab.short(case), value, f"< +{limit:g}%", j["verdict"], j["failed"]))
    lines = ab.table(results, limit, facts["confidence"])
    return rows, ab.failures_of(results, limit), facts, lines, ab.warnings_of(results)


def print_ab(facts, lines, warnings):
    base = facts["base"]
    what = f"{base['commit'][:12]} ({base['from']})" if base.get("commit") else base["build"]
    print(f"A/B: the change (B) against its base (A) {what}: {facts['rounds']} rounds in "
          f"{facts['seconds']:.0f} s, {facts['reruns']} re-run(s). effect: the change's cost per "
          f"event relative to the base (+ = slower), Hodges-Lehmann estimate over the rounds' "
          f"pairs with its {facts['confidence'] * 100:g}% interval; a case fails when the whole "
          f"interval lies beyond +{facts['threshold_percent']:g}%")
    for line in lines:
        print("  " + line)
    for w in warnings:
        print(w)


def cmd_ab(args):
    rows, failures, facts, lines, warnings = ab_gate_part(
        args.cases, args.head_build, base=args.base, base_build=args.base_build, only=args.only,
        rounds=args.rounds, threshold=args.threshold)
    print()
    print_ab(facts, lines, warnings)
    print()
    for msg in failures:
        print(msg)
    if args.out:
        write_json(args.out, {"commit": git_commit(), "machine": machine(), "time": utc_now(),
                              "ab": facts, "failures": failures})
    print(f"perf-gate a/b: {'FAILED' if failures else 'passed'}")
    return 1 if failures else 0


def cmd_gate(args):
    """All parts; one table; one JSON result. The invariants part runs in tools/perf-gate, which
    passes its outcome here so that it appears in the table and the result file."""
    t0 = time.monotonic()
    rows, failures = [], []
    result = {"commit": git_commit(), "machine": machine(), "time": utc_now()}
    print("perf-gate: part 1, instruction counts (callgrind)", flush=True)
    r, f, facts = icount_part(args.driver, args.baseline, args.threshold, False)
    rows += r
    failures += f
    result["icount"] = facts
    result["compiler"] = facts["compiler"]
    result["build"] = facts["build"]
    print("perf-gate: part 2, the change against its base (A/B)", flush=True)
    r, f, ab_facts, ab_lines, ab_warnings = ab_gate_part(
        args.ab_cases, os.path.dirname(os.path.abspath(args.bench_dir)), base=args.base)
    rows += r
    failures += f
    result["ab"] = ab_facts
    print("perf-gate: part 3, ratios to the yardsticks in one interleaved run", flush=True)
    r, f, facts = ratio_part(args.floors, args.bench_dir)
    rows += r
    failures += f
    result["ratios"] = facts
    inv_failed = args.invariants == "failed"
    rows.append(("invariants", "pushstage-bench: exactly once, Graham bound", "-", "-",
                 {"passed": "ok", "failed": "FAIL", "skipped":
                  "skipped (pushstage-bench not built)"}[args.invariants], inv_failed))
    if inv_failed:
        failures.append("FAIL invariants: the pushstage-bench run failed (output above)")
    result["invariants"] = {"status": args.invariants, "command": args.invariants_command}
    result["failures"] = failures
    result["passed"] = not failures
    result["seconds"] = round(time.monotonic() - t0, 1)
    print()
    print_medians(facts)
    print()
    print_ab(ab_facts, ab_lines, ab_warnings)
    print()
    print(f"perf-gate results: commit {result['commit'][:12]}, {result['compiler']} "
          f"[{result['build']}], {result['machine']['cpus']} CPUs {result['machine']['cpu']}")
    print_table(rows)
    print()
    for msg in failures:
        print(msg)
    if result["icount"].get("compiler_differs"):
        base = result["icount"]["baseline"]
        loud([f"instruction counts were compared across compilers: measured with "
              f"{result['compiler']} [{result['build']}], baseline from {base['compiler']} "
              f"[{base['build']}]"])
    write_json(args.out, result)
    print(f"perf-gate: result written to {rel(args.out)}")
    return 1 if failures else 0


# How floors are chosen from observed ratios (ratio_floors.json, how_chosen): 70% of the smallest
# ratio seen, rounded down to two significant digits. A case fails only when it is below its floor
# twice in a row, and in 42 observed runs none was below 70% of the smallest.
FLOOR_FRACTION = {"higher": 0.7, "lower": 0.7}


def suggest_floor(values, better):
    x = min(values) * FLOOR_FRACTION[better]
    if x <= 0:
        return 0.0
    scale = 10 ** (math.floor(math.log10(x)) - 1)
    return round(math.floor(x / scale) * scale, 12)


def cmd_observe(args):
    """Runs the ratio benchmarks N times without floors' verdicts: the data to choose floors."""
    floors = load_json(args.floors)
    observed = {}
    for i in range(args.runs):
        t0 = time.monotonic()
        ratios, _, _ = measure_ratios(floors, args.bench_dir)
        print(f"run {i + 1}/{args.runs} ({time.monotonic() - t0:.0f} s):")
        for case, rs in ratios.items():
            for peer, r in rs.items():
                observed.setdefault(case, {}).setdefault(peer, []).append(round(r, 3))
                print(f"  {ab.short(case)} vs {peer}: {r:.3f}")
    better = {spec["case"]: spec.get("better", "higher") for spec in floors["cases"]}
    print("summary (min / median / max over runs; the floor the rule in suggest_floor() gives):")
    for case, peers in observed.items():
        for peer, values in peers.items():
            print(f"  {ab.short(case):32} vs {peer:20} {min(values):7.3f} "
                  f"{statistics.median(values):7.3f} {max(values):7.3f}  "
                  f"floor {suggest_floor(values, better[case]):.3g}  {values}")
    if args.out:
        write_json(args.out, {"commit": git_commit(), "machine": machine(), "time": utc_now(),
                              "run": floors["run"], "observed": observed})
    return 0


# ---------------------------------------------------------------------------------------------
# Output.


def print_table(rows):
    headers = ("part", "case", "value", "baseline / floor", "verdict")
    table = [headers] + [r[:5] for r in rows]
    widths = [max(len(str(r[i])) for r in table) for i in range(5)]
    for i, r in enumerate(table):
        print("  ".join(str(c).ljust(widths[j]) for j, c in enumerate(r)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


# ---------------------------------------------------------------------------------------------
# Commands.


def cmd_icount(args):
    rows, failures, facts = icount_part(args.driver, args.baseline, args.threshold,
                                        args.update_baseline)
    print_table(rows)
    for msg in failures:
        print(msg)
    if args.out:
        write_json(args.out, {"commit": git_commit(), "machine": machine(), "time": utc_now(),
                              "icount": facts, "failures": failures})
    if failures:
        print(f"perf-gate icount: FAILED ({len(failures)} of {len(rows)} cases)")
        return 1
    print(f"perf-gate icount: passed ({len(rows)} cases)")
    return 0


# ---------------------------------------------------------------------------------------------
# Self-test (ctest, label perf): the icount check fails when it should and passes when it should.
# It never reads the committed baseline: counts depend on the build type and compiler of the tree
# under test, so it measures that tree first and writes its own baseline from it.


def run_gate_icount(driver, baseline, log):
    """Runs this script's icount command as CI does; returns (exit status, output)."""
    cmd = [sys.executable, os.path.abspath(__file__), "icount", "--driver", driver,
           "--baseline", baseline]
    p = subprocess.run(cmd, capture_output=True, text=True)
    out = p.stdout + p.stderr
    log.append(f"$ {shlex.join(cmd)}\n{out}(exit {p.returncode})")
    return p.returncode, out


def failed_cases(output):
    return sorted(set(re.findall(r"^FAIL icount (\S+):", output, re.MULTILINE)))


FAKE_BENCH = """#!{python}
# A stand-in for a Google Benchmark binary: answers with the next ratio of {plan} (one per call).
import json, sys
plan, state = {plan!r}, {state!r}
try:
    calls = int(open(state).read())
except OSError:
    calls = 0
open(state, "w").write(str(calls + 1))
ratio = json.load(open(plan))[calls]
out = [a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--benchmark_out=")][0]
runs = []
for rep in range(3):
    for impl, value in (("pushstage", ratio * 1e6), ("moodycamel-blocking", 1e6)):
        runs.append({{"run_name": "BM_Fake<" + impl + ">/1P1C/real_time", "run_type": "iteration",
                     "repetition_index": rep, "items_per_second": value}})
json.dump({{"benchmarks": runs}}, open(out, "w"))
"""


def selftest_ratios(work, log, check):
    """The ratio check's verdicts on a fake benchmark whose ratios we choose (no noise): a case
    below its floor once passes on its second run; below twice fails, naming the case."""
    fake_dir = os.path.join(work, "fake-bench")
    os.makedirs(fake_dir, exist_ok=True)
    plan = os.path.join(fake_dir, "plan.json")
    state = os.path.join(fake_dir, "calls")
    binary = os.path.join(fake_dir, "fake_bench")
    with open(binary, "w", encoding="utf-8") as f:
        f.write(FAKE_BENCH.format(python=sys.executable, plan=plan, state=state))
    os.chmod(binary, 0o755)
    floors = os.path.join(fake_dir, "floors.json")
    write_json(floors, {"run": {"repetitions": 3, "min_time": 0.01}, "cases": [
        {"binary": "fake_bench", "case": "BM_Fake/1P1C/real_time",
         "floors": {"moodycamel-blocking": 1.0}}]})
    for ratios, want_rc, want_text, what in (
            ([1.5], 0, "ok", "a ratio above its floor passes"),
            ([0.5, 1.5], 0, "ok on 2nd run", "a ratio below its floor once passes on the rerun"),
            ([0.5, 0.5], 1, "FAIL ratio BM_Fake/1P1C vs moodycamel-blocking: 0.50 then 0.50",
             "a ratio below its floor twice fails, naming the case")):
        write_json(plan, ratios)
        if os.path.exists(state):
            os.remove(state)
        cmd = [sys.executable, os.path.abspath(__file__), "ratios", "--bench-dir", fake_dir,
               "--floors", floors]
        p = subprocess.run(cmd, capture_output=True, text=True)
        out = p.stdout + p.stderr
        log.append(f"$ {shlex.join(cmd)}   # ratios {ratios}\n{out}(exit {p.returncode})")
        calls = int(open(state, encoding="utf-8").read())
        check(p.returncode == want_rc and want_text in out and calls == len(ratios),
              f"ratios: {what} (ratios {ratios}, exit {p.returncode}, {calls} runs)")


# Spins of the push slowdown that the icount self-test builds: 8 volatile increments, +14.6% of
# push_pop/handles' instructions in the dev build (4 gave +3.3%, too close to the 3% threshold).
ICOUNT_SLOW_PUSH_SPINS = 8


def cmd_selftest(args):
    work = os.path.abspath(args.work_dir)
    os.makedirs(work, exist_ok=True)
    log = []
    problems = []

    def check(ok, what):
        print(("ok    " if ok else "FAIL  ") + what)
        if not ok:
            problems.append(what)

    real = os.path.abspath(args.driver)
    check(driver_info(real).get("slowdown") == "off", "the build under test has no slowdown")
    cases = sh([real, "--list"]).split()

    # (c) the real build passes against a baseline written from itself by --update-baseline:
    # a second, separate measurement must repeat the first within the threshold.
    own = os.path.join(work, "own_baseline.json")
    if os.path.exists(own):
        os.remove(own)
    cmd = [sys.executable, os.path.abspath(__file__), "icount", "--driver", real, "--baseline",
           own, "--update-baseline"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    log.append(f"$ {shlex.join(cmd)}\n{p.stdout}{p.stderr}(exit {p.returncode})")
    check(p.returncode == 0 and os.path.exists(own), "--update-baseline writes a baseline")
    if problems:
        print("\n\n".join(log))
        return 1
    rc, out = run_gate_icount(real, own, log)
    check(rc == 0 and not failed_cases(out), "(c) the real build passes against its own baseline")

    # (a) a doctored baseline, every count a tenth lower than real, fails naming every case; one
    # doctored case fails naming exactly that case.
    base = load_json(own)
    doctored = json.loads(json.dumps(base))
    for case in doctored["cases"].values():
        case["ir"] = int(case["ir"] * 0.9)
        case["ir_per_op"] = case["ir_per_op"] * 0.9
    path = os.path.join(work, "doctored_all.json")
    write_json(path, doctored)
    rc, out = run_gate_icount(real, path, log)
    check(rc == 1 and failed_cases(out) == sorted(cases),
          "(a) a baseline a tenth lower than real fails, naming every case "
          f"(named: {', '.join(failed_cases(out)) or 'none'})")
    victim = "push_pop/handles"
    one = json.loads(json.dumps(base))
    one["cases"][victim]["ir"] = int(one["cases"][victim]["ir"] * 0.9)
    one["cases"][victim]["ir_per_op"] = one["cases"][victim]["ir_per_op"] * 0.9
    path = os.path.join(work, "doctored_one.json")
    write_json(path, one)
    rc, out = run_gate_icount(real, path, log)
    check(rc == 1 and failed_cases(out) == [victim] and "+11.1%" in out,
          f"(a) one doctored case fails, naming only {victim} and by how much (+11.1%)")

    # (b) the same tree built with a deliberate slowdown of every push (slowdown.cmake, a private
    # definition of the driver) fails against the real baseline.
    slow_dir = os.path.join(work, "slowdown-build")
    configure = ["cmake", "-S", SOURCE_DIR, "-B", slow_dir, "-G", args.generator,
                 f"-DCMAKE_BUILD_TYPE={args.build_type}",
                 f"-DCMAKE_CXX_COMPILER={args.cxx_compiler}",
                 f"-DCMAKE_CXX_FLAGS={args.cxx_flags}",
                 "-DPUSHSTAGE_BUILD_TESTS=OFF", "-DPUSHSTAGE_BUILD_BENCH=OFF",
                 "-DPUSHSTAGE_BUILD_TOOLS=ON",
                 *ab_build.slowdown_args({"PUSH": ICOUNT_SLOW_PUSH_SPINS})]
    build = ["cmake", "--build", slow_dir, "--target", "perf_gate_icount", "-j", "2"]
    for cmd in (configure, build):
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            print(f"$ {shlex.join(cmd)}\n{p.stdout}{p.stderr}")
            raise GateError("could not build the slowed driver")
    slow = os.path.join(slow_dir, "tools", "perf_gate", "perf_gate_icount")
    check(driver_info(slow).get("slowdown") == "on", "the slowed build has the slowdown")
    rc, out = run_gate_icount(slow, own, log)
    named = failed_cases(out)
    check(rc == 1 and victim in named,
          f"(b) the slowed build fails, naming {victim} (named: {', '.join(named) or 'none'})")

    selftest_ratios(work, log, check)

    print("\n\n".join(log))
    if problems:
        print(f"perf-gate selftest: FAILED: {'; '.join(problems)}")
        return 1
    print("perf-gate selftest: passed")
    return 0


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("icount", help="instruction counts against the baseline")
    p.add_argument("--driver", required=True, help="the perf_gate_icount binary")
    p.add_argument("--baseline", default=DEFAULT_BASELINE)
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD_PERCENT,
                   help="percent per case, when the baseline names none")
    p.add_argument("--update-baseline", action="store_true")
    p.add_argument("--out", help="write the result as JSON here")
    p.set_defaults(func=cmd_icount)

    p = sub.add_parser("ab", help="the change against its base, interleaved")
    p.add_argument("--head-build", required=True, help="the change's build (build/release)")
    p.add_argument("--base", help="the base commit (default: tools/perf_gate/ab_base, else "
                                  "HEAD~1); built in build/perf_base")
    p.add_argument("--base-build", help="an existing build to use as the base instead")
    p.add_argument("--cases", default=DEFAULT_AB_CASES)
    p.add_argument("--only", help="run only the cases whose name matches this regex")
    p.add_argument("--rounds", type=int, help="first rounds (default: the cases file's)")
    p.add_argument("--threshold", type=float, help="percent (default: the cases file's)")
    p.add_argument("--out", help="write the result as JSON here")
    p.set_defaults(func=cmd_ab)

    p = sub.add_parser("ratios", help="throughput ratios against the floors")
    p.add_argument("--bench-dir", required=True, help="the directory of the benchmark binaries")
    p.add_argument("--floors", default=DEFAULT_FLOORS)
    p.add_argument("--out", help="write the result as JSON here")
    p.set_defaults(func=cmd_ratios)

    p = sub.add_parser("gate", help="every part, one table, one JSON result (tools/perf-gate)")
    p.add_argument("--driver", required=True)
    p.add_argument("--bench-dir", required=True)
    p.add_argument("--baseline", default=DEFAULT_BASELINE)
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD_PERCENT)
    p.add_argument("--floors", default=DEFAULT_FLOORS)
    p.add_argument("--ab-cases", default=DEFAULT_AB_CASES)
    p.add_argument("--base", help="the A/B base commit (default: tools/perf_gate/ab_base, else "
                                  "HEAD~1)")
    p.add_argument("--invariants", choices=["passed", "failed", "skipped"], default="skipped")
    p.add_argument("--invariants-command", default="")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_gate)

    p = sub.add_parser("observe", help="run the ratio benchmarks N times and print every ratio")
    p.add_argument("--bench-dir", required=True)
    p.add_argument("--floors", default=DEFAULT_FLOORS)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--out", help="write the observations as JSON here")
    p.set_defaults(func=cmd_observe)

    p = sub.add_parser("selftest", help="prove the icount check can fail (run by ctest)")
    p.add_argument("--driver", required=True, help="perf_gate_icount of the tree under test")
    p.add_argument("--work-dir", required=True)
    p.add_argument("--build-type", required=True)
    p.add_argument("--cxx-compiler", required=True)
    p.add_argument("--cxx-flags", default="")
    p.add_argument("--generator", default="Unix Makefiles")
    p.set_defaults(func=cmd_selftest)

    ab_selftest.add_parsers(sub, DEFAULT_AB_CASES)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (GateError, ab_build.BuildError, ab.RunError) as e:
        print(f"perf-gate: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
