#!/usr/bin/env python3
"""Time to first token with and without a prefix-cache hit on a long shared prompt.

Starts `dspark serve` on the given model, then for each repeat sends a long document never seen
before followed by one question (cold: the whole prompt is computed), and the same document with
another question (hit: the document's full KV blocks come from the prefix cache). Streams each
request and times the first token; prints the medians and their ratio. Pass server flags after
`--`, e.g. `-- --no-prefix-caching` to see the hit disappear.

  python3 scripts/bench_prefix_ttft.py --dspark build/dspark \
      -m models/SmolLM2-135M-Instruct.Q4_1.gguf --words 1500 --repeats 5
"""
import argparse
import json
import random
import signal
import statistics
import subprocess
import sys
import time

import httpx

WORDS = ("time person year way day thing man world life hand part child eye woman place work "
         "week case point government company number group problem fact").split()


def wait_ready(url, proc, timeout=300.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"dspark serve exited with status {proc.returncode}")
        try:
            if httpx.get(url + "/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    sys.exit("dspark serve did not become ready")


def first_token(client, url, prompt):
    """(seconds to the first streamed text, prompt tokens)."""
    body = {"prompt": prompt, "max_tokens": 4, "temperature": 0, "ignore_eos": True,
            "stream": True, "stream_options": {"include_usage": True}}
    start = time.perf_counter()
    ttft, n_prompt = None, 0
    with client.stream("POST", url + "/v1/completions", json=body) as r:
        if r.status_code != 200:
            sys.exit(f"HTTP {r.status_code}: {r.read()[:300]!r}")
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if ttft is None and any(c.get("text") for c in chunk.get("choices", [])):
                ttft = time.perf_counter() - start
            if chunk.get("usage"):
                n_prompt = chunk["usage"]["prompt_tokens"]
    if ttft is None:
        sys.exit("no token streamed")
    return ttft, n_prompt


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dspark", default="build/dspark")
    p.add_argument("-m", "--model", required=True)
    p.add_argument("--port", type=int, default=8347)
    p.add_argument("--words", type=int, default=1500, help="document length in words")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("server_args", nargs="*", help="extra `dspark serve` flags (after --)")
    args = p.parse_args()
    url = f"http://127.0.0.1:{args.port}"
    cmd = [args.dspark, "serve", "-m", args.model, "--port", str(args.port)] + args.server_args
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(url, proc)
        rng = random.Random(args.seed)
        cold, hit = [], []
        n_prompt = 0
        with httpx.Client(timeout=600.0) as client:
            first_token(client, url, "Warm up.")
            for r in range(args.repeats):
                doc = f"Document {r}-{rng.random():.12f}:\n" + " ".join(
                    rng.choice(WORDS) for _ in range(args.words))
                t, n_prompt = first_token(client, url, doc + "\nQuestion: what is it about?")
                cold.append(t)
                hit.append(first_token(client, url, doc + "\nQuestion: who wrote it?")[0])
        c, h = statistics.median(cold), statistics.median(hit)
        print(f"prompt ~{n_prompt} tokens, {args.repeats} repeats, server flags: "
              f"{' '.join(args.server_args) or '(default)'}")
        print(f"TTFT cold (no hit): median {c * 1000:.1f} ms  "
              f"[{', '.join(f'{x * 1000:.0f}' for x in cold)}]")
        print(f"TTFT with prefix:   median {h * 1000:.1f} ms  "
              f"[{', '.join(f'{x * 1000:.0f}' for x in hit)}]")
        print(f"cold / hit: {c / h:.1f}x")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
