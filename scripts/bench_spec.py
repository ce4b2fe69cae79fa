#!/usr/bin/env python3
"""Speculative decoding benchmark: total tokens/s of `dspark generate --parallel N` with and
without speculation, on a code prompt and a chat prompt, at several concurrencies, each ratio
measured within one run of this script (medians over repeats).

  python3 scripts/bench_spec.py --dspark build/dspark \
      --target models/qwen2.5-coder-1.5b.gguf --draft models/qwen2.5-coder-0.5b.gguf \
      --concurrency 1,4,16,64 --repeats 3

Configurations: plain (none), ngram and draft-model under the load-aware controller, and each
drafter at fixed depths (--fixed-depths) for comparison. A configuration's speed-up is the median
over repeats of its tok/s divided by the plain run of the same repeat. Greedy decoding, so every configuration
produces the same tokens (the script checks it) and only the speed differs.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

CODE_SNIPPET = '''def merge_intervals(intervals):
    """Merge overlapping [start, end] intervals and return them sorted."""
    if not intervals:
        return []
    intervals = sorted(intervals, key=lambda iv: iv[0])
    merged = [list(intervals[0])]
    for start, end in intervals[1:]:
        last = merged[-1]
        if start <= last[1]:
            last[1] = max(last[1], end)
        else:
            merged.append([start, end])
    return merged


def total_covered(intervals):
    """Length of the union of the intervals."""
    return sum(end - start for start, end in merge_intervals(intervals))
'''

PROMPTS = {
    "code": ("<|im_start|>system\nYou are a helpful coding assistant.<|im_end|>\n"
             "<|im_start|>user\nAdd type hints to every function of this Python module and "
             "return the whole module:\n\n```python\n" + CODE_SNIPPET +
             "```<|im_end|>\n<|im_start|>assistant\n"),
    "chat": ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
             "Explain in a few paragraphs why the sky is blue and why sunsets are red."
             "<|im_end|>\n<|im_start|>assistant\n"),
}

TOTAL = re.compile(r"total: (\d+) requests, (\d+) tokens in ([\d.]+) s = ([\d.]+) tok/s")
SPEC = re.compile(r"spec \(([^)]*)\): .*mean accepted length ([\d.]+), mean depth ([\d.]+)")


def run(args, prompt_file, parallel, extra):
    cmd = [args.dspark, "generate", "-q", "-m", args.target, "-f", prompt_file, "--temp", "0",
           "-n", str(args.n_predict), "--parallel", str(parallel), "--threads",
           str(args.threads)] + extra
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr}")
    total = TOTAL.search(proc.stderr)
    if not total:
        sys.exit(f"no total line in the output of {' '.join(cmd)}\n{proc.stderr}")
    spec = SPEC.search(proc.stderr)
    return {
        "tok_s": float(total.group(4)),
        "tokens": int(total.group(2)),
        "text": proc.stdout,
        "tau": float(spec.group(2)) if spec else 1.0,
        "depth": float(spec.group(3)) if spec else 0.0,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dspark", default="build/dspark")
    ap.add_argument("--target", default="models/qwen2.5-coder-1.5b.gguf")
    ap.add_argument("--draft", default="models/qwen2.5-coder-0.5b.gguf")
    ap.add_argument("--concurrency", default="1,4,16,64")
    ap.add_argument("--prompts", default="code,chat")
    ap.add_argument("--methods", default="ngram,draft-model")
    ap.add_argument("--fixed-depths", default="2,4",
                    help="fixed verification depths to compare with the controller")
    ap.add_argument("--n-predict", type=int, default=256,
                    help="tokens per request at most; the default lets both prompts' answers finish")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", help="also write the raw results here")
    args = ap.parse_args()

    configs = [("plain", ["--spec-method", "none"])]
    for method in [m for m in args.methods.split(",") if m]:
        base = ["--spec-method", method]
        if method == "draft-model":
            if not os.path.exists(args.draft):
                print(f"skipping draft-model: {args.draft} not found", file=sys.stderr)
                continue
            base += ["--draft-model", args.draft]
        configs.append((method, base))
        for depth in [d for d in args.fixed_depths.split(",") if d]:
            configs.append((f"{method}@{depth}", base + ["--spec-fixed-depth", depth]))

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for prompt_name in args.prompts.split(","):
            prompt_file = os.path.join(tmp, prompt_name + ".txt")
            with open(prompt_file, "w") as f:
                f.write(PROMPTS[prompt_name])
            for parallel in [int(c) for c in args.concurrency.split(",")]:
                samples = {name: [] for name, _ in configs}
                texts = {}
                # Configurations interleaved within each repeat, so drift hits them alike.
                for _ in range(args.repeats):
                    for name, extra in configs:
                        r = run(args, prompt_file, parallel, extra)
                        samples[name].append(r)
                        texts.setdefault(name, r["text"])
                for name in texts:
                    if texts[name] != texts["plain"]:
                        sys.exit(f"{name} produced other text than plain greedy decoding")
                for name, _ in configs:
                    rs = samples[name]
                    tok_s = statistics.median(r["tok_s"] for r in rs)
                    # Each repeat's ratio against the plain run next to it, then the median: the
                    # machine's speed drifts by more than the differences measured here, and a
                    # pair run back to back shares the drift.
                    ratios = [r["tok_s"] / p["tok_s"] for r, p in zip(rs, samples["plain"])]
                    row = {"prompt": prompt_name, "parallel": parallel, "config": name,
                           "tok_s": tok_s, "speedup": statistics.median(ratios),
                           "speedups": ratios,
                           "tau": statistics.median(r["tau"] for r in rs),
                           "depth": statistics.median(r["depth"] for r in rs)}
                    results.append(row)
                    print(f"{prompt_name:5} P={parallel:<3} {name:16} {tok_s:8.1f} tok/s "
                          f"x{row['speedup']:.2f}  tau {row['tau']:.2f}  depth {row['depth']:.2f}",
                          flush=True)

    print("\n| prompt | concurrent | config | tok/s | vs plain | mean accepted length | mean depth |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['prompt']} | {r['parallel']} | {r['config']} | {r['tok_s']:.1f} | "
              f"{r['speedup']:.2f} | {r['tau']:.2f} | {r['depth']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
