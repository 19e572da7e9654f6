"""tools/perf_gate/ab_build.py: the builds the A/B part compares (standard library only).

  base     the commit to compare against: the one given (--base), else the one recorded in
           tools/perf_gate/ab_base (the last landed state), else HEAD~1. Its files are
           extracted with `git archive` into build/perf_base/src and built there with that
           commit's own release preset (build/perf_base/src/build/release), so the base builds as
           it was built when it landed.
  change   the working tree's release preset (build/release), built by tools/perf-gate.
  slowed   the working tree built with a deliberate slowdown (slowdown.cmake), for the self-test.

Every build goes through ccache when it is installed. The base sits at the same depth below its
own source as build/release below the working tree, and CCACHE_BASEDIR (the working tree, unless
set) makes ccache hash paths relative to the build directory, so the base reuses every object
of a file the change did not touch.
"""

import os
import shutil
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(os.path.dirname(HERE))
AB_BASE_FILE = os.path.join(HERE, "ab_base")
SLOWDOWN_CMAKE = os.path.join(HERE, "slowdown.cmake")
BASE_ROOT = os.path.join(SOURCE_DIR, "build", "perf_base")
# What the A/B part runs (ab_cases.json's probes), by CMake target.
AB_TARGETS = ("dispatcher_bench", "dispatcher_tokenless_bench", "consumer_pool_bench",
              "pushstage-bench")


class BuildError(Exception):
    """A build the gate needs could not be made."""


def git(*args, cwd=SOURCE_DIR):
    p = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 else None


def commit_of(ref):
    return git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")


def resolve_base(given=None):
    """(full commit, where it came from). BuildError when no base can be found."""
    if given:
        c = commit_of(given)
        if c is None:
            raise BuildError(f"--base {given}: not a commit in this repository")
        return c, f"--base {given}"
    notes = []
    if os.path.exists(AB_BASE_FILE):
        with open(AB_BASE_FILE, encoding="utf-8") as f:
            lines = [ln.split("#", 1)[0].strip() for ln in f]
        recorded = next((ln for ln in lines if ln), "")
        c = commit_of(recorded) if recorded else None
        if c is not None:
            return c, "tools/perf_gate/ab_base"
        notes.append(f"tools/perf_gate/ab_base names {recorded or 'nothing'}, not a commit here")
    c = commit_of("HEAD~1")
    if c is not None:
        return c, "HEAD~1" + (f" ({'; '.join(notes)})" if notes else "")
    raise BuildError("no base commit: " + "; ".join(notes + ["HEAD~1 does not exist"]) +
                     " (give one with --base)")


def env_with_ccache():
    env = dict(os.environ)
    env.setdefault("CCACHE_BASEDIR", SOURCE_DIR)
    return env


def launcher_args():
    return ["-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"] if shutil.which("ccache") else []


def run(cmd, cwd, log):
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env_with_ccache())
    log.append(f"$ (cd {cwd} && {' '.join(cmd)})\n{p.stdout[-4000:]}{p.stderr[-4000:]}")
    return p


def targets_of(build_dir, wanted, log):
    """The wanted targets that the build defines (a base may predate one)."""
    p = run(["cmake", "--build", build_dir, "--target", "help"], build_dir, log)
    have = set()
    for line in p.stdout.splitlines():
        if line.startswith("... "):
            have.add(line[4:].split()[0])
    return [t for t in wanted if t in have]


def build(source_dir, build_dir, targets, extra_args=(), log=None):
    """Configures source_dir's release preset into build_dir and builds the targets it has;
    returns the targets built. BuildError when configuring or building fails."""
    log = [] if log is None else log
    source_dir, build_dir = os.path.abspath(source_dir), os.path.abspath(build_dir)
    if not any(a.startswith("-DPUSHSTAGE_PERF_GATE_SLOW_") for a in extra_args):
        # A directory configured once with a slowdown keeps it in its cache: drop it.
        extra_args = ["-UCMAKE_PROJECT_INCLUDE", "-UPUSHSTAGE_PERF_GATE_SLOW_*", *extra_args]
    configure = ["cmake", "--preset", "release", "-B", build_dir, *launcher_args(), *extra_args]
    p = run(configure, source_dir, log)
    if p.returncode != 0:
        raise BuildError(f"configuring {build_dir} failed:\n{log[-1]}")
    have = targets_of(build_dir, targets, log)
    if have:
        p = run(["cmake", "--build", build_dir, "-j", "2", "--target", *have], source_dir, log)
        if p.returncode != 0:
            raise BuildError(f"building {build_dir} failed:\n{log[-1]}")
    return have


def build_base(commit, log=None):
    """Extracts `commit` into build/perf_base/src (kept while the commit is the same, so make
    rebuilds nothing) and builds the A/B targets with its release preset. Returns (build dir,
    targets built)."""
    src = os.path.join(BASE_ROOT, "src")
    stamp = os.path.join(BASE_ROOT, "commit")
    current = open(stamp, encoding="utf-8").read().strip() if os.path.exists(stamp) else None
    if current != commit:
        shutil.rmtree(BASE_ROOT, ignore_errors=True)
        os.makedirs(src)
        archive = subprocess.Popen(["git", "archive", commit], cwd=SOURCE_DIR,
                                   stdout=subprocess.PIPE)
        tar = subprocess.run(["tar", "-x", "-C", src], stdin=archive.stdout)
        archive.stdout.close()
        if archive.wait() != 0 or tar.returncode != 0:
            raise BuildError(f"git archive {commit} | tar -x -C {src} failed")
        with open(stamp, "w", encoding="utf-8") as f:
            f.write(commit + "\n")
    build_dir = os.path.join(src, "build", "release")
    return build_dir, build(src, build_dir, AB_TARGETS, log=log)


def slowdown_args(slowdowns):
    """CMake arguments that put {"WAKE": spins, ...} into a build (slowdown.cmake)."""
    if not slowdowns:
        return []
    return [f"-DCMAKE_PROJECT_INCLUDE={SLOWDOWN_CMAKE}"] + [
        f"-DPUSHSTAGE_PERF_GATE_SLOW_{where}={spins}" for where, spins in slowdowns.items()]
