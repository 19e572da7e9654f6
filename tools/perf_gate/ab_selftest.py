"""tools/perf_gate/ab_selftest.py: proof that the A/B part can fail, and does not fail on noise.

  selftest-ab  (ctest, label perf; run by tools/run-tests in the dev preset, RUN_SERIAL)
    1. the decision logic on fake benchmarks whose values we choose (seeded noise, so the same
       every time): a case 30% slower fails after its confirming rounds (a rate and a latency), a
       case 30% slower in its first 8 rounds only does not, an unchanged case passes, a noisy 10%
       slowdown straddles, re-runs max_reruns times and passes with a warning, a case the base
       lacks is "no base", a case the change lacks is an error (exit 2);
    2. the working tree built three times with the release preset's settings: plain, with the
       wake slowdown, with the pool-loop slowdown (slowdown.cmake, at their "ci_spins": +25% to
       +60% on the case each lands in, see ab_cases.json "selftest"); then `perf_gate.py ab`, as
       the gate runs it: plain against plain passes (A/A), plain against each slowed build
       fails, naming the case. Reduced: only the cases the slowdowns land in, so that it fits
       CI's time budget. The slowdowns are sized with margin because this check runs in every
       CI run and must not flake: at +15% the rule's detection is itself a measured rate (the
       proof below), not a certainty.
  prove        (tools/perf-gate --prove; for a quiet machine, an hour or more) the full proof:
       N A/A runs of the A/B part over every case (the base HEAD built in build/perf_base against
       build/release, so a clean tree), M runs against each slowed build; prints the
       false-positive rate (A/A runs that failed) and the detection rate (slowed runs that
       failed), with the measured size of each slowdown, and writes them as JSON.
"""

import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

import ab
import ab_build

HERE = os.path.dirname(os.path.abspath(__file__))
GATE = os.path.join(HERE, "perf_gate.py")

FAKE_BENCH = """#!{python}
# A stand-in for a Google Benchmark binary of build '{side}': each case's value comes from
# {plan} (its "after" value from call "until" on) times seeded noise, a fresh draw per call and
# repetition, times swing on even calls and divided by it on odd ones.
import json, math, random, re, sys
plan, state = json.load(open({plan!r}))[{side!r}], {state!r}
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
pattern = re.compile(args["benchmark_filter"])
if args.get("benchmark_list_tests") == "true":
    print("\\n".join(name for name in plan if pattern.search(name)))
    sys.exit(0)
try:
    calls = int(open(state).read())
except OSError:
    calls = 0
open(state, "w").write(str(calls + 1))
runs = []
for rep in range(int(args["benchmark_repetitions"])):
    for name, spec in plan.items():
        if not pattern.search(name):
            continue
        rng = random.Random("{side}/%d/%d/%s" % (calls, rep, name))
        swing = spec.get("swing", 1.0) ** (1 if calls % 2 == 0 else -1)
        until = spec.get("until")
        base = spec["value"] if until is None or calls < until else spec["after"]
        value = base * swing * math.exp(rng.gauss(0.0, spec["noise"]))
        runs.append({{"run_name": name, "run_type": "iteration", "repetition_index": rep,
                     spec["metric"]: value}})
json.dump({{"benchmarks": runs}}, open(args["benchmark_out"], "w"))
"""

# key: (metric, better, A's value, B's value, noise (sd of the log), B's swing, B's calls at
# B's value before it turns to A's). "noisy" is 10% slower with B alternating 40% up and down from
# one call to the next, so its interval is wide and centred on the threshold: it straddles
# whatever the draws. "transient" is 30% slower in the first 8 rounds only, then unchanged.
FAKE_CASES = {
    "same": ("items_per_second", "higher", 1e6, 1e6, 0.02, 1.0, None),
    "slower": ("items_per_second", "higher", 1e6, 0.7e6, 0.02, 1.0, None),
    "latency": ("p50_us", "lower", 10.0, 13.0, 0.02, 1.0, None),
    "noisy": ("items_per_second", "higher", 1e6, 1e6 / 1.10, 0.02, 1.4, None),
    "transient": ("items_per_second", "higher", 1e6, 0.7e6, 0.02, 1.0, 8),
}


def fake_name(key):
    return f"BM_Fake<pushstage>/{key}/real_time"


def run_ab(args, log):
    cmd = [sys.executable, GATE, "ab", *args]
    p = subprocess.run(cmd, capture_output=True, text=True)
    out = p.stdout + p.stderr
    log.append(f"$ {shlex.join(cmd)}\n{out}(exit {p.returncode})")
    return p.returncode, out


def failed_cases(output):
    return sorted(set(re.findall(r"^FAIL a/b (\S+):", output, re.MULTILINE)))


def selftest_logic(work, log, check):
    """The decision logic on fake benchmarks: fails what is slower, passes what is not, re-runs
    what straddles and then passes it with a warning, reports what the base lacks."""
    plan = {"a": {}, "b": {}}
    cases = []
    for key, (metric, better, a, b, noise, swing, until) in FAKE_CASES.items():
        plan["a"][fake_name(key)] = {"metric": metric, "value": a, "noise": noise}
        plan["b"][fake_name(key)] = {"metric": metric, "value": b, "noise": noise, "swing": swing,
                                     "until": until, "after": a}
        cases.append({"name": fake_name(key), "metric": metric, "better": better})
    plan["b"][fake_name("new")] = {"metric": "items_per_second", "value": 1e6, "noise": 0.02}
    cases.append({"name": fake_name("new"), "metric": "items_per_second"})
    spec = {"threshold_percent": 10, "confidence": 0.95, "rounds": 8, "rerun_rounds": 8,
            "max_reruns": 2, "probes": [{"name": "fake", "tool": "gbench",
                                         "binary": "bench/fake_bench", "repetitions": 3,
                                         "min_time": 0.01, "cases": cases}]}
    plan_path = os.path.join(work, "plan.json")
    spec_path = os.path.join(work, "fake_cases.json")
    with open(plan_path, "w", encoding="utf-8") as f:
        json.dump(plan, f)
    with open(spec_path, "w", encoding="utf-8") as f:
        json.dump(spec, f)
    for side in ("a", "b"):
        os.makedirs(os.path.join(work, side, "bench"), exist_ok=True)
        binary = os.path.join(work, side, "bench", "fake_bench")
        with open(binary, "w", encoding="utf-8") as f:
            f.write(FAKE_BENCH.format(python=sys.executable, side=side, plan=plan_path,
                                      state=os.path.join(work, side, "calls")))
        os.chmod(binary, 0o755)
    out_path = os.path.join(work, "fake_result.json")
    common = ["--base-build", os.path.join(work, "a"), "--head-build", os.path.join(work, "b"),
              "--cases", spec_path, "--out", out_path]
    rc, out = run_ab(common, log)
    named = failed_cases(out)
    check(rc == 1 and named == [ab.short(fake_name("latency")), ab.short(fake_name("slower"))],
          f"a/b logic: a rate 30% lower and a latency 30% higher fail, nothing else does "
          f"(exit {rc}, named: {', '.join(named) or 'none'})")
    result = json.load(open(out_path, encoding="utf-8"))["ab"]["cases"] if rc in (0, 1) else {}
    slower = result.get(fake_name("slower"), {})
    check(slower.get("rounds") == 16 and slower.get("confirmed"),
          f"a/b logic: a case beyond the limit after 8 rounds fails only after 8 more confirm it "
          f"({slower.get('rounds')} rounds)")
    transient = result.get(fake_name("transient"), {})
    check(not transient.get("failed") and transient.get("confirmed"),
          f"a/b logic: a case 30% slower in its first 8 rounds only is confirmed and then passes "
          f"({transient.get('verdict')}, {transient.get('rounds')} rounds, "
          f"{transient.get('effect_percent')}% {transient.get('ci_percent')})")
    same = result.get(fake_name("same"), {})
    check(same.get("verdict") == "ok" and same.get("rounds") == 8,
          f"a/b logic: an unchanged case passes after the first 8 rounds ({same.get('verdict')}, "
          f"{same.get('rounds')} rounds)")
    noisy = result.get(fake_name("noisy"), {})
    check(str(noisy.get("verdict", "")).startswith("ok?") and noisy.get("rounds") == 8 + 2 * 8,
          f"a/b logic: a noisy case that straddles runs 2 re-runs of 8 rounds, then passes with "
          f"a warning ({noisy.get('verdict')}, {noisy.get('rounds')} rounds, "
          f"{noisy.get('effect_percent')}% {noisy.get('ci_percent')})")
    new = result.get(fake_name("new"), {})
    check(new.get("verdict") == "no base" and not new.get("failed"),
          f"a/b logic: a case the base lacks is 'no base' and passes ({new.get('verdict')})")
    rc, out = run_ab(common + ["--only", "same|new|noisy|transient"], log)
    check(rc == 0, f"a/b logic: without the slower cases the run passes (exit {rc})")
    rc, out = run_ab(["--base-build", os.path.join(work, "b"), "--head-build",
                      os.path.join(work, "a"), "--cases", spec_path, "--only", "new"], log)
    check(rc == 2 and "renamed?" in out,
          f"a/b logic: a case the change lacks is an error, exit 2 (exit {rc})")


def selftest_builds(root, slowdowns, log, key="spins"):
    """Builds plain, and one build per slowdown (s[key] spins), of the working tree; returns
    {name: dir}."""
    dirs = {"plain": os.path.join(root, "perf_selftest_plain")}
    targets = sorted({t for s in slowdowns.values() for t in s["targets"]})
    ab_build.build(ab_build.SOURCE_DIR, dirs["plain"], targets, log=log)
    for where, s in slowdowns.items():
        dirs[where] = os.path.join(root, f"perf_selftest_{where.lower()}")
        ab_build.build(ab_build.SOURCE_DIR, dirs[where], s["targets"],
                       ab_build.slowdown_args({where: s[key]}), log=log)
    return dirs


def cmd_selftest_ab(args):
    spec = json.load(open(args.cases, encoding="utf-8"))
    st = spec["selftest"]
    log, problems = [], []
    t0 = time.monotonic()

    def check(ok, what):
        print(("ok    " if ok else "FAIL  ") + what, flush=True)
        if not ok:
            problems.append(what)

    with tempfile.TemporaryDirectory(prefix="perf-gate-ab-selftest-") as tmp:
        selftest_logic(tmp, log, check)
        try:
            dirs = selftest_builds(os.path.abspath(args.builds_root), st["slowdowns"], log,
                                   key="ci_spins")
        except ab_build.BuildError as e:
            print("\n\n".join(log))
            print(f"perf-gate selftest-ab: could not build: {e}")
            return 2
        print(f"       (built in {time.monotonic() - t0:.0f} s)", flush=True)
        only = "|".join(ab.ere_escape(s["case"]) for s in st["slowdowns"].values())
        rc, out = run_ab(["--base-build", dirs["plain"], "--head-build", dirs["plain"],
                          "--cases", args.cases, "--only", only], log)
        check(rc == 0, f"a/b: A/A (plain against plain) passes (exit {rc}; "
                       f"failed: {', '.join(failed_cases(out)) or 'none'})")
        for where, s in st["slowdowns"].items():
            rc, out = run_ab(["--base-build", dirs["plain"], "--head-build", dirs[where],
                              "--cases", args.cases, "--only", ab.ere_escape(s["case"])], log)
            named = failed_cases(out)
            check(rc == 1 and named == [ab.short(s["case"])],
                  f"a/b: the {where} slowdown ({s['ci_spins']} spins, {s['where']}) fails, naming "
                  f"{ab.short(s['case'])} (exit {rc}; named: {', '.join(named) or 'none'})")
    print("\n\n".join(log))
    print(f"perf-gate selftest-ab: {'FAILED: ' + '; '.join(problems) if problems else 'passed'} "
          f"in {time.monotonic() - t0:.0f} s")
    return 1 if problems else 0


def summary_of(results):
    return {ab.short(c): {"verdict": j["verdict"], "effect_percent": j.get("effect_percent"),
                          "ci_percent": j.get("ci_percent"), "rounds": j.get("rounds")}
            for c, j in results.items()}


def cmd_prove(args):
    spec = json.load(open(args.cases, encoding="utf-8"))
    st = spec["selftest"]
    for item in filter(None, (args.spins or "").split(",")):
        where, _, spins = item.partition("=")
        if where not in st["slowdowns"] or not spins.isdigit() or int(spins) < 1:
            raise ab.RunError(f"--spins {item}: want WHERE=N, WHERE one of "
                              f"{', '.join(st['slowdowns'])}, N >= 1")
        st["slowdowns"][where]["spins"] = int(spins)
    log = []
    t0 = time.monotonic()
    head = os.path.abspath(args.head_build)
    clean = not ab_build.git("status", "--porcelain", "--untracked-files=no")
    if clean:
        commit, _ = ab_build.resolve_base("HEAD")
        base, _ = ab_build.build_base(commit, log)
        aa_what = f"HEAD {commit[:12]} built in {ab_build.BASE_ROOT} against {head}"
    else:
        base = head
        aa_what = f"{head} against itself (the tree has uncommitted changes)"
        print("perf-gate prove: uncommitted changes: the A/A runs compare build/release with "
              "itself instead of with HEAD built as a base", flush=True)
    ab_build.build(ab_build.SOURCE_DIR, head, ab_build.AB_TARGETS, log=log)
    dirs = selftest_builds(os.path.abspath(args.builds_root), st["slowdowns"], log)
    proof = {"machine": os.uname().nodename, "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
             "aa": {"what": aa_what, "runs": []}, "slowed": {}}

    def quiet(_msg):
        pass

    for i in range(args.aa):
        results, facts = ab.ab_part(spec, {"a": base, "b": head}, log=quiet)
        failed = [ab.short(c) for c, j in results.items() if j["failed"]]
        warned = [ab.short(c) for c, j in results.items() if j["verdict"].startswith("ok?")]
        proof["aa"]["runs"].append({"failed": failed, "warned": warned, "rounds": facts["rounds"],
                                    "seconds": facts["seconds"], "cases": summary_of(results)})
        print(f"A/A {i + 1}/{args.aa}: {'FAILED ' + ', '.join(failed) if failed else 'passed'}"
              f"{' (warnings: ' + ', '.join(warned) + ')' if warned else ''}, "
              f"{facts['rounds']} rounds, {facts['seconds']:.0f} s", flush=True)
    for where, s in st["slowdowns"].items():
        only = None if args.all_cases else ab.ere_escape(s["case"])
        runs = []
        for i in range(args.slowed):
            results, facts = ab.ab_part(spec, {"a": head, "b": dirs[where]}, only=only, log=quiet)
            j = results[s["case"]]
            runs.append({"detected": j["failed"], "verdict": j["verdict"],
                         "effect_percent": j.get("effect_percent"),
                         "ci_percent": j.get("ci_percent"), "rounds": j.get("rounds"),
                         "other_failures": [ab.short(c) for c, k in results.items()
                                            if k["failed"] and c != s["case"]]})
            print(f"{where} {i + 1}/{args.slowed}: {ab.short(s['case'])} {j['verdict']}, effect "
                  f"{j.get('effect_percent')}% {j.get('ci_percent')}, {j.get('rounds')} rounds",
                  flush=True)
        proof["slowed"][where] = {"spins": s["spins"], "where": s["where"], "case": s["case"],
                                  "runs": runs}
    aa_runs = proof["aa"]["runs"]
    aa_fp = sum(1 for r in aa_runs if r["failed"])
    lines = [f"A/A ({aa_what}): {len(aa_runs) - aa_fp} of {len(aa_runs)} passed "
             f"(false-positive rate {aa_fp}/{len(aa_runs)}; "
             f"{sum(1 for r in aa_runs if r['warned'])} run(s) with warnings)"]
    for where, p in proof["slowed"].items():
        hits = sum(1 for r in p["runs"] if r["detected"])
        effects = [r["effect_percent"] for r in p["runs"] if r["effect_percent"] is not None]
        size = f", measured effect median {statistics.median(effects):+.1f}%" if effects else ""
        lines.append(f"{where} slowdown ({p['spins']} spins, {p['where']}) on "
                     f"{ab.short(p['case'])}: detected in {hits} of {len(p['runs'])} runs{size}")
    proof["summary"] = lines
    proof["seconds"] = round(time.monotonic() - t0)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(proof, f, indent=2)
    print("\nperf-gate proof:")
    for line in lines:
        print("  " + line)
    print(f"  ({proof['seconds']} s; written to {args.out})")
    return 0 if aa_fp == 0 and all(r["detected"] for p in proof["slowed"].values()
                                   for r in p["runs"]) else 1


def add_parsers(sub, default_cases):
    p = sub.add_parser("selftest-ab", help="prove the A/B part can fail (reduced; run by ctest)")
    p.add_argument("--builds-root", required=True,
                   help="where to build perf_selftest_*: keep it two levels below the source "
                        "(build/), as build/release is, so that ccache shares their objects")
    p.add_argument("--cases", default=default_cases)
    p.set_defaults(func=cmd_selftest_ab)

    p = sub.add_parser("prove", help="the full proof: A/A and slowed runs, rates")
    p.add_argument("--aa", type=int, default=20, help="A/A runs (default 20)")
    p.add_argument("--slowed", type=int, default=10, help="runs per slowdown (default 10)")
    p.add_argument("--spins", help="other spins for the slowdowns, e.g. WAKE=5200,LOOP=37")
    p.add_argument("--all-cases", action="store_true",
                   help="slowed runs over every case, not only the one the slowdown lands in")
    p.add_argument("--head-build", default=os.path.join(ab_build.SOURCE_DIR, "build", "release"))
    p.add_argument("--builds-root", default=os.path.join(ab_build.SOURCE_DIR, "build"))
    p.add_argument("--cases", default=default_cases)
    p.add_argument("--out", default=os.path.join(ab_build.SOURCE_DIR, "build", "release",
                                                 "perf_gate_proof.json"))
    p.set_defaults(func=cmd_prove)
