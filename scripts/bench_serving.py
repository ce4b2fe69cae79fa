#!/usr/bin/env python3
"""Benchmark an OpenAI-compatible server (dspark serve, vLLM, llama.cpp) in the manner of
`vllm bench serve`: streamed requests arriving as a Poisson process (--request-rate) or all at
once under a concurrency cap (--max-concurrency), with synthetic or built-in prompts.

Reports request throughput, output tokens/s, TTFT, TPOT (per request: decode time / (output
tokens - 1), so chunks carrying several speculated tokens count each token), ITL (gaps between
streamed content chunks, as vLLM measures it) and end-to-end latency: mean, median and p99, in milliseconds.

Examples:
  scripts/bench_serving.py --base-url http://127.0.0.1:8000 --num-prompts 64 --max-concurrency 16
  scripts/bench_serving.py --request-rate 4 --dataset synthetic --input-len 256 --max-tokens 128
  scripts/bench_serving.py --endpoint /v1/completions --json results.json
"""
import argparse
import asyncio
import json
import random
import statistics
import sys
import time

BUILTIN_PROMPTS = [
    "Explain how a hash table works and when it performs poorly.",
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "What are the main differences between TCP and UDP?",
    "Summarise the causes of the French Revolution in a few sentences.",
    "Write a Python function that checks whether a string is a palindrome.",
    "Describe the water cycle to a ten-year-old.",
    "List five tips for writing clear technical documentation.",
    "What is the difference between a process and a thread?",
    "Translate 'The weather is lovely today' into French, Spanish and German.",
    "Give a recipe for a simple tomato soup.",
    "Why is the sky blue?",
    "Explain gradient descent and the role of the learning rate.",
    "Write a haiku about autumn leaves.",
    "How does public-key cryptography let two strangers share a secret?",
    "Compare merge sort and quicksort.",
    "What should I pack for a three-day hiking trip?",
]

WORDS = ("time person year way day thing man world life hand part child eye woman place work "
         "week case point government company number group problem fact").split()


def make_prompts(args, rng):
    if args.dataset == "builtin":
        return [BUILTIN_PROMPTS[i % len(BUILTIN_PROMPTS)] for i in range(args.num_prompts)]
    if args.dataset == "synthetic":
        # About one token per word for common English words.
        return [" ".join(rng.choice(WORDS) for _ in range(args.input_len))
                for _ in range(args.num_prompts)]
    prompts = []
    with open(args.dataset) as f:  # JSON lines with a "prompt" field, or plain lines
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                prompts.append(json.loads(line)["prompt"])
            except (ValueError, KeyError, TypeError):
                prompts.append(line)
    if not prompts:
        sys.exit(f"no prompts in {args.dataset}")
    return [prompts[i % len(prompts)] for i in range(args.num_prompts)]


class Result:
    def __init__(self):
        self.ok = False
        self.error = ""
        self.ttft = 0.0
        self.latency = 0.0
        self.itl = []
        self.output_tokens = 0
        self.prompt_tokens = 0
        self.text = ""  # the generated text, to compare two servers' outputs


async def one_request(client, args, model, prompt, headers):
    res = Result()
    body = {"model": model, "max_tokens": args.max_tokens, "temperature": args.temperature,
            "stream": True, "stream_options": {"include_usage": True}}
    if args.ignore_eos:
        body["ignore_eos"] = True
    if args.endpoint.endswith("chat/completions"):
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    start = time.perf_counter()
    last = None
    pieces = 0
    try:
        async with client.stream("POST", args.base_url + args.endpoint, json=body,
                                 headers=headers) as r:
            if r.status_code != 200:
                res.error = f"HTTP {r.status_code}: {(await r.aread())[:200]!r}"
                return res
            async for line in r.aiter_lines():
                if not line.startswith("data: "):
                    continue
                payload = line[6:]
                if payload == "[DONE]":
                    break
                chunk = json.loads(payload)
                if "error" in chunk:
                    res.error = chunk["error"].get("message", "stream error")
                    return res
                if chunk.get("usage"):
                    res.output_tokens = chunk["usage"]["completion_tokens"]
                    res.prompt_tokens = chunk["usage"]["prompt_tokens"]
                for choice in chunk.get("choices", []):
                    text = (choice.get("delta") or {}).get("content") if "delta" in choice \
                        else choice.get("text")
                    if not text:
                        continue
                    now = time.perf_counter()
                    if last is None:
                        res.ttft = now - start
                    else:
                        res.itl.append(now - last)
                    last = now
                    pieces += 1
                    res.text += text
        res.latency = time.perf_counter() - start
        if res.output_tokens == 0:
            res.output_tokens = pieces  # a server without usage chunks: one token per chunk
        res.ok = last is not None
        if not res.ok:
            res.error = "no tokens"
    except Exception as e:  # noqa: BLE001 - every failure is counted and reported
        res.error = f"{type(e).__name__}: {e}"
    return res


def summary(values):
    if not values:
        return {"mean": 0.0, "median": 0.0, "p99": 0.0}
    v = sorted(values)
    p99 = v[min(len(v) - 1, int(round(0.99 * (len(v) - 1))))]
    return {"mean": statistics.fmean(v) * 1e3, "median": statistics.median(v) * 1e3,
            "p99": p99 * 1e3}


async def run(args, prompts=None):
    """Runs the workload of args against args.base_url; prompts, when given, replace
    make_prompts(). Returns (model, results, duration)."""
    import httpx
    rng = random.Random(args.seed)
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(timeout=httpx.Timeout(args.timeout), limits=limits) as client:
        model = args.model
        if not model:
            r = await client.get(args.base_url + "/v1/models", headers=headers)
            model = r.json()["data"][0]["id"]
        if prompts is None:
            prompts = make_prompts(args, rng)
        sem = asyncio.Semaphore(args.max_concurrency) if args.max_concurrency else None

        async def limited(prompt):
            if sem is None:
                return await one_request(client, args, model, prompt, headers)
            async with sem:
                return await one_request(client, args, model, prompt, headers)

        if args.warmup:
            await one_request(client, args, model, prompts[0], headers)
        tasks = []
        start = time.perf_counter()
        for prompt in prompts:
            tasks.append(asyncio.create_task(limited(prompt)))
            if args.request_rate != float("inf"):
                await asyncio.sleep(rng.expovariate(args.request_rate))
        results = await asyncio.gather(*tasks)
        duration = time.perf_counter() - start
    return model, results, duration


def metrics(args, model, results, duration):
    """The result dict that report() prints and writes to --json."""
    done = [r for r in results if r.ok]
    failed = [r for r in results if not r.ok]
    out_tokens = sum(r.output_tokens for r in done)
    in_tokens = sum(r.prompt_tokens for r in done)
    tpot = [(r.latency - r.ttft) / (r.output_tokens - 1) for r in done if r.output_tokens > 1]
    data = {
        "model": model, "endpoint": args.endpoint, "num_prompts": len(results),
        "completed": len(done), "failed": len(failed),
        "request_rate": None if args.request_rate == float("inf") else args.request_rate,
        "max_concurrency": args.max_concurrency, "duration_s": duration,
        "total_input_tokens": in_tokens, "total_output_tokens": out_tokens,
        "request_throughput": len(done) / duration if duration else 0.0,
        "output_throughput": out_tokens / duration if duration else 0.0,
        "total_token_throughput": (in_tokens + out_tokens) / duration if duration else 0.0,
        "ttft_ms": summary([r.ttft for r in done]),
        "tpot_ms": summary(tpot),
        "itl_ms": summary([g for r in done for g in r.itl]),
        "e2el_ms": summary([r.latency for r in done]),
        "errors": sorted({r.error for r in failed})[:10],
    }
    return data


def report(args, model, results, duration):
    data = metrics(args, model, results, duration)
    done = [r for r in results if r.ok]
    failed = [r for r in results if not r.ok]
    in_tokens, out_tokens = data["total_input_tokens"], data["total_output_tokens"]
    print(f"{'=' * 18} Serving Benchmark Result {'=' * 18}")
    rows = [("Model", model), ("Successful requests", len(done)), ("Failed requests", len(failed)),
            ("Benchmark duration (s)", f"{duration:.2f}"), ("Total input tokens", in_tokens),
            ("Total generated tokens", out_tokens),
            ("Request throughput (req/s)", f"{data['request_throughput']:.2f}"),
            ("Output token throughput (tok/s)", f"{data['output_throughput']:.2f}"),
            ("Total token throughput (tok/s)", f"{data['total_token_throughput']:.2f}")]
    for name, value in rows:
        print(f"{name:<40}{value:>20}")
    for key, title in [("ttft_ms", "Time to First Token"), ("tpot_ms", "Time per Output Token"),
                       ("itl_ms", "Inter-token Latency"), ("e2el_ms", "End-to-end Latency")]:
        print(f"{'-' * 20}{title:^22}{'-' * 20}")
        for stat in ("mean", "median", "p99"):
            print(f"{stat.capitalize() + ' (ms)':<40}{data[key][stat]:>20.2f}")
    for e in data["errors"]:
        print(f"error: {e}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(data, f, indent=2)
    return 0 if not failed else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base-url", default="http://127.0.0.1:8000")
    p.add_argument("--endpoint", default="/v1/chat/completions",
                   choices=["/v1/chat/completions", "/v1/completions"])
    p.add_argument("--model", help="model name (default: the server's first /v1/models entry)")
    p.add_argument("--api-key", help="sent as 'Authorization: Bearer KEY'")
    p.add_argument("--dataset", default="builtin",
                   help="builtin, synthetic, or a file of JSON lines with a 'prompt' field")
    p.add_argument("--input-len", type=int, default=128, help="synthetic prompt length (words)")
    p.add_argument("--num-prompts", type=int, default=64)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--ignore-eos", action="store_true", help="always generate max-tokens")
    p.add_argument("--request-rate", type=float, default=float("inf"),
                   help="Poisson arrivals per second (default inf: all at once)")
    p.add_argument("--max-concurrency", type=int, default=0, help="requests in flight at most")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=600.0, help="per request, seconds")
    p.add_argument("--no-warmup", dest="warmup", action="store_false")
    p.add_argument("--json", help="also write the results to this JSON file")
    args = p.parse_args()
    if args.request_rate <= 0:
        p.error("--request-rate must be positive")
    try:
        import httpx  # noqa: F401
    except ImportError:
        sys.exit("bench_serving.py needs httpx (pip install -r scripts/requirements.txt)")
    model, results, duration = asyncio.run(run(args))
    return report(args, model, results, duration)


if __name__ == "__main__":
    sys.exit(main())
