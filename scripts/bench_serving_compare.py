#!/usr/bin/env python3
"""Paired serving benchmark: the plain and the speculative `dspark serve`, driven with the same
seeded prompts (and, with --request-rate, the same seeded Poisson arrivals) by
scripts/bench_serving.py's client, at several concurrencies.

  python3 scripts/bench_serving_compare.py \
      --server "build/dspark serve -m models/SmolLM2-135M-Instruct.Q4_1.gguf" \
      --spec-args "--spec-method ngram" --label ngram --concurrency 1,4,16,64 --rounds 3 \
      --dataset code --max-tokens 128 --json ngram.json --plot ngram.png

For every round and concurrency each side gets a fresh server (--server, plus --spec-args for
the speculative side), a warm-up request and then max(--min-prompts, --num-prompts-per-stream x
streams) streamed requests with at most `streams` in flight. Which side runs first alternates
from one (round, concurrency) to the next. Reported per concurrency: the medians over rounds of
output tok/s, mean TTFT and mean TPOT of each side, and the median and range (min..max) of the
per-round spec/plain ratios, checked against the goals (throughput ratio >= 1.0 at 4 or more
streams, TTFT ratio <= 1.05). At temperature 0 it also counts the requests whose texts agree
(greedy speculation is lossless). Exits 1 when any request failed (2 with --fail-on-miss when a
goal is missed).

--simultaneous runs both servers at once instead, each pinned (taskset) to its own half of the
CPUs this process may use, with --threads to match unless --server sets it, and drives the two
workloads concurrently. Why: on a shared or virtual machine back-to-back runs drift by 10-30%,
swamping the effects judged here; paired in time, both sides see the same machine over the same
window and the drift cancels in the ratios. The halves swap sides from one (round, concurrency)
to the next, so a faster core favours neither. The cost: each side has half the cores and they
share memory bandwidth, so absolute tok/s are below a lone server's; the ratios are the point.

Datasets: `code` and `chat` are scripts/bench_spec.py's chat-formatted prompts, sent as they
are to /v1/completions (every request the same prompt, as bench_spec.py runs them); `builtin`,
`synthetic` or a file go through bench_serving.py's make_prompts to /v1/chat/completions.
"""
import argparse
import asyncio
import json
import math
import os
import pathlib
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

import bench_serving as bs
import prom_text
from bench_spec import PROMPTS as SPEC_PROMPTS

SIDES = ("plain", "spec")
METRICS = {  # name: (value from bench_serving.metrics(), goal check on the spec/plain ratio)
    "tput": (lambda d: d["output_throughput"], lambda r, n: r >= 1.0 if n >= 4 else None),
    "ttft": (lambda d: d["ttft_ms"]["mean"], lambda r, n: r <= 1.05),
    "tpot": (lambda d: d["tpot_ms"]["mean"], lambda r, n: None),
}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def drain(stream, lines):
    for line in stream:
        lines.append(line)


class Server:
    """A server process on --port (0: the port it prints in its 'listening on' line), pinned to
    cpus when given."""

    def __init__(self, cmd, port, timeout, cpus=None):
        pin = ["taskset", "-c", ",".join(map(str, cpus))] if cpus else []
        self.cmd = pin + cmd + ["--port", str(port)]
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, errors="replace", start_new_session=True)
        self.out, self.err = [], []
        for stream, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=drain, args=(stream, lines), daemon=True).start()
        self.base = f"http://127.0.0.1:{port}" if port else None
        self._wait_ready(timeout)

    def tail(self):
        return "".join((self.out + self.err)[-30:])

    def _wait_ready(self, timeout):
        import httpx
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: "
                                   f"{shlex.join(self.cmd)}\n{self.tail()}")
            if self.base is None:
                m = re.search(r"https?://[^\s/]+:(\d+)", "".join(self.out))
                self.base = f"http://127.0.0.1:{m.group(1)}" if m else None
            if self.base is not None:
                try:
                    r = httpx.get(self.base + "/health", timeout=5)
                    if r.status_code == 404:  # a server without /health
                        r = httpx.get(self.base + "/v1/models", timeout=5)
                    if r.status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout} s: {shlex.join(self.cmd)}\n"
                           f"{self.tail()}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def workload(args, streams, base_url):
    """bench_serving.run's parameters and the prompts (None: its make_prompts) for one run."""
    n = max(args.min_prompts, args.num_prompts_per_stream * streams)
    ns = argparse.Namespace(
        base_url=base_url, endpoint=args.endpoint, model=None, api_key=None,
        dataset=args.dataset, input_len=args.input_len, num_prompts=n,
        max_tokens=args.max_tokens, temperature=args.temperature, ignore_eos=args.ignore_eos,
        request_rate=args.request_rate, max_concurrency=streams, seed=args.seed,
        timeout=args.timeout, warmup=True)
    prompts = [SPEC_PROMPTS[args.dataset]] * n if args.dataset in SPEC_PROMPTS else None
    return ns, prompts


def side_cmd(args, side):
    return shlex.split(args.server) + (shlex.split(args.spec_args) if side == "spec" else [])


def start(args, side, label, cpus):
    """A fresh server for one side; with cpus, pinned to them and with --threads to match."""
    cmd = side_cmd(args, side)
    port = args.port + (side == "spec") if args.port and cpus else args.port
    t0 = time.time()
    server = Server(cmd + (args.thread_args[side] if cpus else []), port, args.ready_timeout, cpus)
    log(f"{label} {side}: ready in {time.time() - t0:.1f} s"
        + (f" on CPUs {','.join(map(str, cpus))}" if cpus else ""))
    return server


SPEC_COUNTERS = {  # key in the round entry: /metrics counter
    "rounds": "dspark:spec_decode_num_drafts_total",
    "verified": "dspark:spec_decode_num_verified_tokens_total",
    "accepted": "dspark:spec_decode_num_accepted_tokens_total",
    "generated": "dspark:generation_tokens_total",
}


def scrape_spec(base):
    """The speculative server's counters after a run (warm-up included): drafting rounds,
    verified and accepted drafted tokens, generated tokens, and the rounds accepting a token at
    each depth; None where the server has no /metrics."""
    import httpx
    try:
        text = httpx.get(base + "/metrics", timeout=10).text
    except httpx.HTTPError:
        return None
    values, per_pos = {}, {}
    for name, labels, value in prom_text.samples(text):
        if name == "dspark:spec_decode_num_accepted_tokens_per_pos":
            if labels.get("position", "").isdigit():
                per_pos[int(labels["position"])] = value
        else:
            values[name] = value
    if any(c not in values for c in SPEC_COUNTERS.values()):
        return None
    out = {key: values[c] for key, c in SPEC_COUNTERS.items()}
    out["accepted_at"] = [per_pos[i] for i in sorted(per_pos)]
    return out


def outcome(ns, run, side, label):
    """bench_serving.run's (model, results, duration) as (metrics, texts, errors)."""
    model, results, duration = run
    data = bs.metrics(ns, model, results, duration)
    log(f"{label} {side}: {len(results)} requests in {duration:.1f} s, "
        f"{data['output_throughput']:.1f} tok/s, TTFT {data['ttft_ms']['mean']:.0f} ms")
    errors = [f"{label} {side} request {i}: {r.error}" for i, r in enumerate(results) if not r.ok]
    return data, [r.text if r.ok else None for r in results], errors


async def gather(*coros):
    return await asyncio.gather(*coros)


def measure(args, streams, label, cpus):
    """The sides in cpus ({side: CPU list, or None for no pinning}) at one concurrency, each on
    a fresh server, their workloads driven at the same time: {side: (metrics, texts, errors)}."""
    servers = {}
    try:
        for side in cpus:
            servers[side] = start(args, side, label, cpus[side])
        work = {side: workload(args, streams, servers[side].base) for side in cpus}
        runs = asyncio.run(gather(*(bs.run(*work[side]) for side in cpus)))
        counters = scrape_spec(servers["spec"].base) if "spec" in servers else None
    finally:
        for server in servers.values():
            server.stop()
    got = {side: outcome(work[side][0], run, side, label) for side, run in zip(cpus, runs)}
    if "spec" in got:
        got["spec"][0]["speculation"] = counters
    return got


def cpu_halves():
    """Two disjoint, equal CPU lists from this process's affinity; hyperthread siblings (same
    package and core id) sort next to each other, so an even half keeps whole cores together."""
    def core(c):
        topo = pathlib.Path(f"/sys/devices/system/cpu/cpu{c}/topology")
        try:
            return [*(int((topo / f).read_text()) for f in ("physical_package_id", "core_id")), c]
        except (OSError, ValueError):
            return [c, c]
    cpus = sorted(os.sched_getaffinity(0), key=core)
    half = len(cpus) // 2
    return [sorted(cpus[:half]), sorted(cpus[half:2 * half])]


def thread_args(cmd, n, warn):
    """--threads n for a server pinned to n CPUs, or nothing when cmd sets its own."""
    for i, tok in enumerate(cmd):
        if tok in ("--threads", "-t") or tok.startswith("--threads="):
            val = tok.split("=", 1)[1] if "=" in tok else " ".join(cmd[i + 1:i + 2])
            if warn and (not val.isdigit() or int(val) > n):
                log(f"warning: the server command asks for {val or '?'} threads; each side "
                    f"has {n} CPU(s)")
            return []
    return ["--threads", str(n)]


def summarize(streams, rounds):
    """Medians per side and the median and range of the per-round spec/plain ratios."""
    row = {"streams": streams}
    for name, (get, goal) in METRICS.items():
        plain = [get(r["plain"]) for r in rounds]
        spec = [get(r["spec"]) for r in rounds]
        ratios = [s / p if p else math.nan for p, s in zip(plain, spec)]
        ratio = statistics.median(ratios)
        row[name] = {"plain": statistics.median(plain), "spec": statistics.median(spec),
                     "ratio": ratio, "ratio_min": min(ratios), "ratio_max": max(ratios),
                     "ratios": ratios, "goal_met": goal(ratio, streams)}
    counters = [r["spec"].get("speculation") for r in rounds]
    if counters and all(c and c["generated"] > 0 for c in counters):
        row["verified_per_token"] = statistics.median(c["verified"] / c["generated"]
                                                      for c in counters)
        row["accepted_per_token"] = statistics.median(c["accepted"] / c["generated"]
                                                      for c in counters)
    row["text_match"] = sum(r["text_match"] for r in rounds)
    row["text_total"] = sum(r["text_total"] for r in rounds)
    return row


def mark(ok):
    return "-" if ok is None else ("PASS" if ok else "MISS")


def print_table(args, rows):
    print(f"\n{args.label or args.spec_args}: {args.rounds} round(s), dataset {args.dataset}, "
          f"max_tokens {args.max_tokens}, temperature {args.temperature}, {args.mode}"
          + (f" on CPUs {args.halves[0]} and {args.halves[1]}" if args.simultaneous else ""))
    print("| streams | plain tok/s | spec tok/s | ratio (min..max) | goal >=1.0 | plain TTFT ms | "
          "spec TTFT ms | ratio (min..max) | goal <=1.05 | plain TPOT ms | spec TPOT ms | ratio |"
          + (" same text |" if args.temperature == 0 else ""))
    print("|---" * (12 + (args.temperature == 0)) + "|")
    for r in rows:
        t, f, p = r["tput"], r["ttft"], r["tpot"]
        line = (f"| {r['streams']} | {t['plain']:.1f} | {t['spec']:.1f} | {t['ratio']:.3f} "
                f"({t['ratio_min']:.3f}..{t['ratio_max']:.3f}) | {mark(t['goal_met'])} | "
                f"{f['plain']:.1f} | {f['spec']:.1f} | {f['ratio']:.3f} ({f['ratio_min']:.3f}.."
                f"{f['ratio_max']:.3f}) | {mark(f['goal_met'])} | {p['plain']:.2f} | "
                f"{p['spec']:.2f} | {p['ratio']:.3f} |")
        if args.temperature == 0:
            line += f" {r['text_match']}/{r['text_total']} |"
        print(line)
    for r in rows:
        if "verified_per_token" in r:
            print(f"{r['streams']} streams: the controller verified {r['verified_per_token']:.2f} "
                  f"drafted tokens per generated token, {r['accepted_per_token']:.2f} accepted")


def plot(rows, path, title):
    """Four panels against streams: the spec/plain ratios, throughput and mean TTFT of each
    side, and the drafted tokens the controller verified (and that were accepted) per
    generated token."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("--plot needs matplotlib (pip install -r scripts/requirements.txt)")
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    xs = [r["streams"] for r in rows]
    ax = axes[0][0]
    for key, name in (("tput", "throughput"), ("ttft", "mean TTFT"), ("tpot", "mean TPOT")):
        ys = [r[key]["ratio"] for r in rows]
        err = [[y - r[key]["ratio_min"] for y, r in zip(ys, rows)],
               [r[key]["ratio_max"] - y for y, r in zip(ys, rows)]]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=4, label=f"{name} spec/plain")
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="1.0 (throughput goal)")
    ax.axhline(1.05, color="red", linestyle=":", linewidth=1, label="1.05 (TTFT goal)")
    ax.set_ylabel("spec / plain (median, min..max over rounds)")
    ax.set_title("ratios")
    for ax, key, unit in ((axes[0][1], "tput", "output tok/s"), (axes[1][0], "ttft", "ms")):
        for side, style in (("plain", "s--"), ("spec", "o-")):
            ax.plot(xs, [r[key][side] for r in rows], style, label=side)
        ax.set_ylabel(f"{unit} (median over rounds)")
        ax.set_title({"tput": "throughput", "ttft": "mean time to first token"}[key])
    ax = axes[1][1]
    with_counts = [r for r in rows if "verified_per_token" in r]
    if with_counts:
        cx = [r["streams"] for r in with_counts]
        ax.plot(cx, [r["verified_per_token"] for r in with_counts], "o-",
                label="drafted tokens verified")
        ax.plot(cx, [r["accepted_per_token"] for r in with_counts], "s--",
                label="drafted tokens accepted")
    ax.set_ylabel("per generated token (median over rounds)")
    ax.set_title("the controller against load")
    for ax in axes.flat:
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.set_xlabel("concurrent streams")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", required=True, help="plain server command (no --port)")
    p.add_argument("--spec-args", required=True, help="added to --server for the spec side")
    p.add_argument("--label", default="", help="name of the configuration in the output")
    p.add_argument("--concurrency", default="1,4,16,64")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--dataset", default="builtin",
                   help="builtin (16 different chat questions), code, chat (one prompt repeated: "
                        "after the first request its prefill is a prefix-cache hit), synthetic, "
                        "or a JSON-lines file (bench_serving.py)")
    p.add_argument("--endpoint", help="default: /v1/completions for code and chat, else "
                                      "/v1/chat/completions")
    p.add_argument("--input-len", type=int, default=128, help="synthetic prompt length (words)")
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--ignore-eos", action="store_true")
    p.add_argument("--num-prompts-per-stream", type=int, default=2)
    p.add_argument("--min-prompts", type=int, default=8)
    p.add_argument("--request-rate", type=float, default=float("inf"),
                   help="Poisson arrivals per second (default inf: all at once)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--port", type=int, default=0,
                   help="0: any free port (--simultaneous: the spec side's is PORT+1)")
    p.add_argument("--ready-timeout", type=float, default=300.0, help="server start, seconds")
    p.add_argument("--timeout", type=float, default=600.0, help="per request, seconds")
    p.add_argument("--json", help="write every per-round number and the summary here")
    p.add_argument("--plot", help="write a PNG of the ratios against streams here")
    p.add_argument("--fail-on-miss", action="store_true", help="exit 2 when a goal is missed")
    p.add_argument("--simultaneous", action="store_true",
                   help="run both servers at once, each on half the CPUs (see above)")
    args = p.parse_args()
    if args.request_rate <= 0 or args.rounds < 1:
        p.error("--request-rate must be positive and --rounds at least 1")
    args.mode = "simultaneous" if args.simultaneous else "sequential"
    if args.simultaneous:
        cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else ()
        if len(cpus) < 2 or not shutil.which("taskset"):
            p.error("--simultaneous needs 2 or more CPUs to run on, and taskset")
        args.halves = cpu_halves()
        args.thread_args = {side: thread_args(side_cmd(args, side), len(args.halves[0]),
                                              warn=side == "spec") for side in SIDES}
    if not args.endpoint:
        args.endpoint = ("/v1/completions" if args.dataset in SPEC_PROMPTS
                         else "/v1/chat/completions")
    args.levels = [int(c) for c in args.concurrency.split(",") if c]
    return args


def main():
    args = parse_args()
    try:
        import httpx  # noqa: F401
    except ImportError:
        sys.exit("bench_serving_compare.py needs httpx (pip install -r scripts/requirements.txt)")
    try:
        per_level, errors = run_all(args)
    except RuntimeError as e:  # a server that did not start
        sys.exit(f"error: {e}")
    return report(args, per_level, errors)


def run_all(args):
    """Every round at every concurrency, both sides: ({streams: [round entry]}, errors)."""
    t0 = time.time()
    per_level = {n: [] for n in args.levels}
    errors = []
    for rnd in range(args.rounds):
        for i, streams in enumerate(args.levels):
            label = f"round {rnd + 1}/{args.rounds}, {streams} streams"
            log(f"{label}: starting ({time.time() - t0:.0f} s elapsed)")
            entry, errs = pair(args, streams, label, {"round": rnd}, (rnd + i) % 2 == 1)
            errors += errs
            per_level[streams].append(entry)
    return per_level, errors


def pair(args, streams, label, entry, swap):
    """Both sides at one concurrency, swapped (sequential: spec first; simultaneous: the CPU
    halves exchanged) when swap: (round entry, errors)."""
    if args.simultaneous:
        entry["cpus"] = dict(zip(SIDES, args.halves[::-1] if swap else args.halves))
        got = measure(args, streams, label, entry["cpus"])
    else:
        entry["first"], got = SIDES[swap], {}
        for side in SIDES[::-1] if swap else SIDES:
            got.update(measure(args, streams, label, {side: None}))
    texts, errors = {}, []
    for side, (entry[side], texts[side], errs) in got.items():
        errors += errs
    pairs = [p for p in zip(texts["plain"], texts["spec"]) if None not in p]
    entry["text_match"] = sum(a == b for a, b in pairs)
    entry["text_total"] = len(pairs)
    return entry, errors


def report(args, per_level, errors):
    rows = [summarize(n, per_level[n]) for n in args.levels]
    print_table(args, rows)
    missed = [r["streams"] for r in rows if any(r[k]["goal_met"] is False for k in METRICS)]
    print(f"goals missed at {missed} streams" if missed else "all goals met")
    mismatched = sum(r["text_total"] - r["text_match"] for r in rows)
    if args.temperature == 0 and mismatched:
        print(f"WARNING: {mismatched} greedy request(s) gave different texts on the two sides")
    for e in errors[:20]:
        print(f"FAILED: {e}")
    if args.json:
        config = {k: v for k, v in vars(args).items() if k not in ("levels", "thread_args")}
        config["request_rate"] = None if math.isinf(args.request_rate) else args.request_rate
        with open(args.json, "w") as f:
            json.dump({"config": config, "summary": rows, "rounds": per_level}, f, indent=1)
    if args.plot:
        plot(rows, args.plot, args.label or args.spec_args)
    if errors:
        print(f"{len(errors)} request(s) failed", file=sys.stderr)
        return 1
    return 2 if missed and args.fail_on_miss else 0


if __name__ == "__main__":
    sys.exit(main())
