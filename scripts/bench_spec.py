#!/usr/bin/env python3
"""Speculative decoding benchmark: total tokens/s of `dspark generate --parallel N` with and
without speculation, on a code prompt and a chat prompt, at several concurrencies.

  python3 scripts/bench_spec.py --dspark build/dspark \
      --target models/qwen2.5-coder-1.5b.gguf --draft models/qwen2.5-coder-0.5b.gguf \
      --concurrency 1,4,16,64 --repeats 3

  python3 scripts/bench_spec.py --methods ngram,draft-model,dspark \
      --dspark-checkpoint Qwen2.5-Coder-1.5B-DSpark/

Configurations: each method of --methods (ngram, draft-model, dspark: a DeepSpec checkpoint
folder trained for the target, --dspark-checkpoint) under the load-aware controller, and each
drafter at fixed depths (--fixed-depths) for comparison. A method whose draft model or
checkpoint is missing is skipped with a message. Every run is `dspark generate --compare-plain`: a plain
engine runs the same requests in the same process, the two engines taking turns step by step,
so each ratio compares the two on the same machine state (back-to-back processes drift by 10-20%
on a shared VM; the paired engines agree within about 1% when they do the same work). A
configuration's speed-up is the median over repeats of those ratios, over each engine's own step
time. Greedy decoding: dspark checks that both engines produce the same tokens. --plot writes
a PNG of the speed-ups and the controller's mean depth against concurrency and of the
acceptance by draft position.
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

COMPARE = re.compile(r"compare: plain ([\d.]+) tok/s in ([\d.]+) s of steps, speculative ([\d.]+) "
                     r"tok/s in ([\d.]+) s .*speed-up ([\d.]+)")
SPEC = re.compile(r"spec \(([^)]*)\): .*mean accepted length ([\d.]+), mean depth ([\d.]+)"
                  r".*acceptance by depth:([\d. ]*)")


def run(args, prompt_file, parallel, extra):
    cmd = [args.dspark, "generate", "-q", "-m", args.target, "-f", prompt_file, "--temp", "0",
           "-n", str(args.n_predict), "--parallel", str(parallel), "--threads",
           str(args.threads), "--compare-plain"] + extra
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr}")
    compare = COMPARE.search(proc.stderr)
    if not compare:
        sys.exit(f"no compare line in the output of {' '.join(cmd)}\n{proc.stderr}")
    spec = SPEC.search(proc.stderr)
    return {
        "plain_tok_s": float(compare.group(1)),
        "tok_s": float(compare.group(3)),
        "speedup": float(compare.group(5)),
        "tau": float(spec.group(2)) if spec else 1.0,
        "depth": float(spec.group(3)) if spec else 0.0,
        "acceptance": [float(a) for a in spec.group(4).split()] if spec else [],
    }


def median_by_depth(runs):
    """Per depth, the median over the runs that verified that deep."""
    depth = max((len(a) for a in runs), default=0)
    return [statistics.median(a[d] for a in runs if len(a) > d) for d in range(depth)]


def plot(results, path, title):
    """Three panels: the speed-up and the controller's mean depth against concurrency (one line
    per configuration and prompt), and the acceptance by depth at the lowest concurrency."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        sys.exit("--plot needs matplotlib (pip install -r scripts/requirements.txt)")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    lines = sorted({(r["config"], r["prompt"]) for r in results})
    levels = sorted({r["parallel"] for r in results})
    for config, prompt in lines:
        rs = sorted((r for r in results if r["config"] == config and r["prompt"] == prompt),
                    key=lambda r: r["parallel"])
        style = "o-" if prompt == "code" else "s--"
        xs = [r["parallel"] for r in rs]
        axes[0].plot(xs, [r["speedup"] for r in rs], style, label=f"{config}, {prompt}")
        axes[1].plot(xs, [r["depth"] for r in rs], style, label=f"{config}, {prompt}")
        first = rs[0]
        if first["acceptance"] and "@" not in config:
            depths = range(1, len(first["acceptance"]) + 1)
            axes[2].plot(depths, first["acceptance"], style,
                         label=f"{config}, {prompt}, {first['parallel']} request(s)")
    axes[0].axhline(1.0, color="grey", linestyle=":", linewidth=1)
    for ax, ylabel in ((axes[0], "speed-up over plain (median)"),
                       (axes[1], "mean verified depth (median)")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(levels, [str(x) for x in levels])
        ax.set_xlabel("concurrent requests")
        ax.set_ylabel(ylabel)
    axes[2].xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes[2].set_xlabel("draft position (depth)")
    axes[2].set_ylabel("accepted / verified at that depth")
    axes[0].set_title("speed-up")
    axes[1].set_title("the controller's depth against load")
    axes[2].set_title("acceptance by position")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dspark", default="build/dspark")
    ap.add_argument("--target", default="models/qwen2.5-coder-1.5b.gguf")
    ap.add_argument("--draft", default="models/qwen2.5-coder-0.5b.gguf")
    ap.add_argument("--dspark-checkpoint", default="models/qwen2.5-coder-1.5b-dspark",
                    help="DSpark checkpoint folder (config.json + safetensors) for the target, "
                         "used by the dspark method")
    ap.add_argument("--concurrency", default="1,4,16,64")
    ap.add_argument("--prompts", default="code,chat")
    ap.add_argument("--methods", default="ngram,draft-model",
                    help="comma-separated: ngram, draft-model, dspark")
    ap.add_argument("--fixed-depths", default="2,4",
                    help="fixed verification depths to compare with the controller")
    ap.add_argument("--n-predict", type=int, default=256,
                    help="tokens per request at most; the default lets both prompts' answers finish")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", help="also write the raw results here")
    ap.add_argument("--plot", help="write a PNG of the speed-ups, depths and acceptance here")
    args = ap.parse_args()

    configs = []
    for method in [m for m in args.methods.split(",") if m]:
        base = ["--spec-method", method]
        if method == "draft-model":
            if not os.path.exists(args.draft):
                print(f"skipping draft-model: {args.draft} not found", file=sys.stderr)
                continue
            base += ["--draft-model", args.draft]
        elif method == "dspark":
            if not os.path.isdir(args.dspark_checkpoint):
                print(f"skipping dspark: checkpoint folder {args.dspark_checkpoint} not found",
                      file=sys.stderr)
                continue
            base += ["--draft-model", args.dspark_checkpoint]
        elif method != "ngram":
            sys.exit(f"unknown method '{method}': expected ngram, draft-model or dspark")
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
                for _ in range(args.repeats):
                    for name, extra in configs:
                        samples[name].append(run(args, prompt_file, parallel, extra))
                for name, _ in configs:
                    rs = samples[name]
                    ratios = [r["speedup"] for r in rs]
                    row = {"prompt": prompt_name, "parallel": parallel, "config": name,
                           "plain_tok_s": statistics.median(r["plain_tok_s"] for r in rs),
                           "tok_s": statistics.median(r["tok_s"] for r in rs),
                           "speedup": statistics.median(ratios), "speedups": ratios,
                           "tau": statistics.median(r["tau"] for r in rs),
                           "depth": statistics.median(r["depth"] for r in rs),
                           "acceptance": median_by_depth([r["acceptance"] for r in rs])}
                    results.append(row)
                    print(f"{prompt_name:5} P={parallel:<3} {name:16} plain {row['plain_tok_s']:7.1f} "
                          f"spec {row['tok_s']:7.1f} tok/s  x{row['speedup']:.3f} "
                          f"({min(ratios):.3f}-{max(ratios):.3f})  tau {row['tau']:.2f}  "
                          f"depth {row['depth']:.2f}", flush=True)

    print("\n| prompt | concurrent | config | plain tok/s | spec tok/s | speed-up (range) | "
          "mean accepted length | mean depth |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['prompt']} | {r['parallel']} | {r['config']} | {r['plain_tok_s']:.1f} | "
              f"{r['tok_s']:.1f} | {r['speedup']:.3f} ({min(r['speedups']):.3f}-"
              f"{max(r['speedups']):.3f}) | {r['tau']:.2f} | {r['depth']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    if args.plot:
        plot(results, args.plot, f"{os.path.basename(args.target)}, --n-predict {args.n_predict}")


if __name__ == "__main__":
    main()
