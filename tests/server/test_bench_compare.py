#!/usr/bin/env python3
"""scripts/bench_serving_compare.py end to end on a tiny model: plain against ngram speculation at
1 and 2 streams, one round. Exit code 0, the JSON has both sides and the ratios at each
concurrency, the side that runs first alternates, greedy texts agree, and a run whose
requests fail exits 1 and names them.
"""
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_util as su  # noqa: E402


def compare(args, model, out_dir, *extra):
    server = shlex.join([os.path.join(args.build_dir, "dspark"), "serve", "-m", model,
                         "--threads", "1", "--log-level", "warn"])
    cmd = [sys.executable, os.path.join(args.source_dir, "scripts", "bench_serving_compare.py"),
           "--server", server, "--spec-args", "--spec-method ngram", "--label", "tiny",
           "--concurrency", "1,2", "--rounds", "1", "--min-prompts", "4",
           "--json", os.path.join(out_dir, "out.json"), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def check_json(path, errors):
    with open(path) as f:
        data = json.load(f)
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
    firsts = []
    for streams in ("1", "2"):
        (entry,) = data["rounds"][streams]
        firsts.append(entry["first"])
        for side in ("plain", "spec"):
            if entry[side]["completed"] != 4 or entry[side]["failed"] != 0:
                errors.append(f"{streams} streams {side}: {entry[side]['completed']} completed")
    if sorted(firsts) != ["plain", "spec"]:
        errors.append(f"the first side does not alternate: {firsts}")


def main():
    args = su.parse_args()
    su.require_packages()
    model = su.tiny_model(args)
    errors = []
    with tempfile.TemporaryDirectory() as tmp:
        proc = compare(args, model, tmp, "--max-tokens", "8")
        if proc.returncode != 0:
            errors.append(f"exit code {proc.returncode}: {proc.stdout[-2000:]}"
                          f"{proc.stderr[-2000:]}")
        else:
            if "| streams | plain tok/s" not in proc.stdout:
                errors.append(f"no table in the output: {proc.stdout[-1000:]}")
            check_json(os.path.join(tmp, "out.json"), errors)
        # Requests the server refuses (beyond the context): exit 1, each failure named.
        proc = compare(args, model, tmp, "--max-tokens", "100000000")
        named = "FAILED: round 1/1, 1 streams plain request 0" in proc.stdout
        if proc.returncode != 1 or not named:
            errors.append(f"failing requests: exit code {proc.returncode}: {proc.stdout[-1000:]}")
    return su.report(errors)


if __name__ == "__main__":
    sys.exit(main())
