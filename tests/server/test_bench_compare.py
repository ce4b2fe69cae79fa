#!/usr/bin/env python3
"""scripts/bench_serving_compare.py end to end on a tiny model: plain against ngram speculation at
1 and 2 streams, one round, run one server at a time and (--simultaneous, where there are 2 or
more CPUs) both at once on disjoint CPU halves. Exit code 0, the JSON has both sides and the
ratios at each concurrency and names the mode, the side that runs first (sequential) or the CPU
halves (simultaneous) alternate, greedy texts agree, and a run whose requests fail exits 1 and
names them. The speculative side's /metrics counters land in the JSON and --plot writes a PNG.
Also the CPU split and the --threads the script adds, in process; and scripts/bench_spec.py end
to end (ngram, controller and fixed depth, 1 and 2 requests): its rows, acceptance by depth and
plot.
"""
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_util as su  # noqa: E402

SIMULTANEOUS = len(os.sched_getaffinity(0)) >= 2 and shutil.which("taskset") is not None


def compare(args, model, out_dir, *extra):
    server = shlex.join([os.path.join(args.build_dir, "dspark"), "serve", "-m", model,
                         "--threads", "1", "--log-level", "warn"])
    cmd = [sys.executable, os.path.join(args.source_dir, "scripts", "bench_serving_compare.py"),
           "--server", server, "--spec-args", "--spec-method ngram", "--label", "tiny",
           "--concurrency", "1,2", "--rounds", "1", "--min-prompts", "4",
           "--json", os.path.join(out_dir, "out.json"), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def check_json(path, mode, errors):
    with open(path) as f:
        data = json.load(f)
    if data["config"]["mode"] != mode or data["config"]["simultaneous"] != (mode != "sequential"):
        errors.append(f"{mode}: the JSON config says {data['config']['mode']}")
    rows = data["summary"]
    if [r["streams"] for r in rows] != [1, 2]:
        errors.append(f"summary streams {[r['streams'] for r in rows]}")
    for r in rows:
        for key in ("tput", "ttft", "tpot"):
            m = r[key]
            if not (m["plain"] > 0 and m["spec"] > 0 and math.isfinite(m["ratio"])
                    and m["ratio_min"] <= m["ratio"] <= m["ratio_max"]):
                errors.append(f"{r['streams']} streams {key}: {m}")
        if r["text_total"] != 4 or r["text_match"] != r["text_total"]:
            errors.append(f"{r['streams']} streams: {r['text_match']}/{r['text_total']} "
                          "greedy texts agree")
    swapped = []
    for streams in ("1", "2"):
        (entry,) = data["rounds"][streams]
        swapped.append(entry["first"] if mode == "sequential" else entry["cpus"])
        for side in ("plain", "spec"):
            if entry[side]["completed"] != 4 or entry[side]["failed"] != 0:
                errors.append(f"{mode} {streams} streams {side}: {entry[side]['completed']} "
                              "completed")
    if mode == "sequential" and sorted(swapped) != ["plain", "spec"]:
        errors.append(f"the first side does not alternate: {swapped}")
    if mode != "sequential" and not (swapped[0]["plain"] == swapped[1]["spec"] != [] and
                                     swapped[0]["spec"] == swapped[1]["plain"] and
                                     not set(swapped[0]["plain"]) & set(swapped[0]["spec"])):
        errors.append(f"the CPU halves are not disjoint or do not swap: {swapped}")


def check_spec_counters(path, errors):
    """The speculative side's /metrics counters in every round and the controller's summary."""
    with open(path) as f:
        data = json.load(f)
    for streams, entries in data["rounds"].items():
        for entry in entries:
            c = entry["spec"].get("speculation")
            if not c or c["generated"] <= 0 or not 0 <= c["accepted"] <= c["verified"]:
                errors.append(f"{streams} streams: spec counters {c}")
    for r in data["summary"]:
        if not 0 <= r.get("accepted_per_token", -1) <= r.get("verified_per_token", -1):
            errors.append(f"{r['streams']} streams: no controller summary in {sorted(r)}")


def check_png(path, what, errors):
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        errors.append(f"{what}: no plot: {e}")
        return
    if head != b"\x89PNG\r\n\x1a\n":
        errors.append(f"{what}: {path} is not a PNG")


def bench_spec(args, model, out_dir, errors):
    """scripts/bench_spec.py end to end on the tiny model: ngram under the controller and at a
    fixed depth, 1 and 2 requests, one repeat; its JSON rows and its plot."""
    cmd = [sys.executable, os.path.join(args.source_dir, "scripts", "bench_spec.py"),
           "--dspark", os.path.join(args.build_dir, "dspark"), "--target", model,
           "--methods", "ngram", "--fixed-depths", "2", "--concurrency", "1,2", "--repeats", "1",
           "--n-predict", "16", "--threads", "1", "--json", os.path.join(out_dir, "spec.json"),
           "--plot", os.path.join(out_dir, "spec.png")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        errors.append(f"bench_spec.py: exit code {proc.returncode}: {proc.stderr[-2000:]}")
        return
    with open(os.path.join(out_dir, "spec.json")) as f:
        rows = json.load(f)
    got = sorted((r["prompt"], r["parallel"], r["config"]) for r in rows)
    want = sorted((p, n, c) for p in ("code", "chat") for n in (1, 2) for c in ("ngram", "ngram@2"))
    if got != want:
        errors.append(f"bench_spec.py rows: {got}")
    for r in rows:
        if not (r["speedup"] > 0 and all(0 <= a <= 1 for a in r["acceptance"])):
            errors.append(f"bench_spec.py row: {r}")
    if not any(r["acceptance"] for r in rows if r["config"] == "ngram@2"):
        errors.append("bench_spec.py: no acceptance by depth at a fixed depth of 2")
    check_png(os.path.join(out_dir, "spec.png"), "bench_spec.py --plot", errors)


def check_helpers(args, errors):
    sys.path.insert(0, os.path.join(args.source_dir, "scripts"))
    import bench_serving_compare as bc
    a, b = bc.cpu_halves()
    if not (a and len(a) == len(b) and not set(a) & set(b)
            and set(a + b) <= os.sched_getaffinity(0)):
        errors.append(f"cpu_halves: {a} {b}")
    for cmd, want in ((["serve"], ["--threads", "3"]), (["serve", "-t", "2"], []),
                      (["serve", "--threads=2"], []), (["serve", "--threads", "9"], [])):
        if bc.thread_args(cmd, 3, warn=False) != want:
            errors.append(f"thread_args({cmd}, 3): {bc.thread_args(cmd, 3, warn=False)}")


def main():
    args = su.parse_args()
    su.require_packages()
    model = su.tiny_model(args)
    errors = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("sequential", "simultaneous") if SIMULTANEOUS else ("sequential",):
            extra = ["--simultaneous"] if mode == "simultaneous" else []
            if mode == "sequential":
                extra = ["--plot", os.path.join(tmp, "compare.png")]
            proc = compare(args, model, tmp, "--max-tokens", "8", *extra)
            if proc.returncode != 0:
                errors.append(f"{mode}: exit code {proc.returncode}: {proc.stdout[-2000:]}"
                              f"{proc.stderr[-2000:]}")
                continue
            if "| streams | plain tok/s" not in proc.stdout or mode not in proc.stdout:
                errors.append(f"{mode}: no table or mode in the output: {proc.stdout[-1000:]}")
            check_json(os.path.join(tmp, "out.json"), mode, errors)
            check_spec_counters(os.path.join(tmp, "out.json"), errors)
            if mode == "sequential":
                check_png(os.path.join(tmp, "compare.png"), "--plot", errors)
        bench_spec(args, model, tmp, errors)
        if SIMULTANEOUS:
            check_helpers(args, errors)
        else:
            print("skipped --simultaneous: it needs 2 or more CPUs and taskset")
        # Requests the server refuses (beyond the context): exit 1, each failure named.
        proc = compare(args, model, tmp, "--max-tokens", "100000000")
        named = "FAILED: round 1/1, 1 streams plain request 0" in proc.stdout
        if proc.returncode != 1 or not named:
            errors.append(f"failing requests: exit code {proc.returncode}: {proc.stdout[-1000:]}")
    return su.report(errors)


if __name__ == "__main__":
    sys.exit(main())
