#!/usr/bin/env python3
"""The target's own answers to the training prompts, generated through `dspark serve`.

  python3 scripts/dspark_answers.py -m models/SmolLM2-135M-Instruct.Q4_1.gguf \
      --prompts data/dspark/prompts.train.jsonl --out data/dspark/answers.train.jsonl \
      --max-answer-tokens 1000000

Starts `dspark serve` on a free local port (or uses --server URL), sends the prompts as chat
requests from --concurrency threads and appends one {"id", "kind", "messages", "answer",
"temperature", "finish_reason", "completion_tokens"} line per answer. As DeepSpec does, answers
mix greedy decoding (--greedy-frac of the prompts) with sampling at --temperature; an answer
that ended by itself gets --eos-text appended (the end-of-turn token, which the drafter must
learn to propose too). Resumable: prompts whose id is already in the output are skipped, so a
killed run continues where it stopped. Stops after --max-answer-tokens answer tokens in the file (counting earlier runs).
"""
import argparse
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, proc, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            sys.exit(f"dspark serve exited with code {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url + "/health", timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.5)
    sys.exit(f"dspark serve at {url} was not ready within {timeout} s")


def post_chat(url, body, timeout):
    req = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.load(resp)


def load_done(path):
    """Ids already answered and their answer tokens."""
    done, tokens = set(), 0
    if os.path.exists(path):
        with open(path) as f:
            for n, line in enumerate(f, 1):
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    # A line cut off by a killed run: everything after it is rewritten.
                    print(f"{path}:{n}: incomplete line dropped", file=sys.stderr)
                    break
                done.add(rec["id"])
                tokens += rec["completion_tokens"]
    return done, tokens


class Writer:
    """Appends answers under a lock and prints progress."""

    def __init__(self, path, tokens_before, budget):
        self.f = open(path, "a")
        self.lock = threading.Lock()
        self.tokens = tokens_before
        self.new_tokens = 0
        self.answers = 0
        self.budget = budget
        self.start = time.time()
        self.last_print = 0.0

    def full(self):
        return self.tokens >= self.budget

    def add(self, rec):
        with self.lock:
            self.f.write(json.dumps(rec) + "\n")
            self.f.flush()
            self.tokens += rec["completion_tokens"]
            self.new_tokens += rec["completion_tokens"]
            self.answers += 1
            now = time.time()
            if now - self.last_print > 10:
                self.last_print = now
                rate = self.new_tokens / max(now - self.start, 1e-9)
                left = max(self.budget - self.tokens, 0) / max(rate, 1e-9)
                print(f"answers: {self.answers} new, {self.tokens} tokens in the file, "
                      f"{rate:.0f} tok/s, about {left / 60:.0f} min left", file=sys.stderr,
                      flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", help="model for the dspark serve this script starts")
    ap.add_argument("--server", help="use a running server at this base URL instead")
    ap.add_argument("--dspark", default="build/dspark")
    ap.add_argument("--prompts", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=768, help="per answer")
    ap.add_argument("--max-answer-tokens", type=int, default=1_000_000, help="in the file")
    ap.add_argument("--greedy-frac", type=float, default=0.5)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--top-p", type=float, default=0.95)
    ap.add_argument("--threads", type=int, default=0, help="server threads (0: all)")
    ap.add_argument("--eos-text", default="<|im_end|>",
                    help="appended to answers that ended by themselves (ChatML's end of turn)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=600, help="seconds per request")
    args = ap.parse_args()
    if not args.model and not args.server:
        sys.exit("give -m MODEL (a server is started) or --server URL")

    prompts = []
    with open(args.prompts) as f:
        for n, line in enumerate(f, 1):
            try:
                rec = json.loads(line)
                prompts.append((rec["id"], rec["kind"], rec["messages"]))
            except (json.JSONDecodeError, KeyError) as e:
                sys.exit(f"{args.prompts}:{n}: not a prompt line ({e})")
    done, tokens = load_done(args.out)
    todo = [p for p in prompts if p[0] not in done]
    print(f"answers: {len(done)} prompts answered before ({tokens} tokens), {len(todo)} to go",
          file=sys.stderr)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    writer = Writer(args.out, tokens, args.max_answer_tokens)

    proc = None
    url = args.server.rstrip("/") if args.server else None
    if url is None:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [args.dspark, "serve", "-m", args.model, "--port", str(port),
               "--max-num-seqs", str(max(args.concurrency, 1)), "--threads", str(args.threads)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(url, proc, 300)
        run(args, url, todo, writer)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=60)
    print(f"answers: {writer.answers} new answers, {writer.new_tokens} new tokens in "
          f"{time.time() - writer.start:.0f} s; {writer.tokens} tokens in {args.out}",
          file=sys.stderr)


def run(args, url, todo, writer):
    rng = random.Random(args.seed)
    # The decoding of each prompt is fixed by the seed, not by thread timing; the order is
    # shuffled so that a budget that stops early still mixes the prompt kinds.
    plan = [(p, rng.random() < args.greedy_frac, rng.randrange(1 << 31)) for p in todo]
    rng.shuffle(plan)
    lock = threading.Lock()
    errors = []

    def worker():
        while not writer.full() and not errors:
            with lock:
                if not plan:
                    return
                (pid, kind, messages), greedy, seed = plan.pop(0)
            temperature = 0.0 if greedy else args.temperature
            body = {"messages": messages, "max_tokens": args.max_tokens,
                    "temperature": temperature, "seed": seed}
            if not greedy:
                body["top_p"] = args.top_p
            try:
                resp = post_chat(url, body, args.timeout)
            except (urllib.error.URLError, OSError) as e:
                errors.append(f"prompt {pid}: {e}")
                return
            choice = resp["choices"][0]
            answer = choice["message"]["content"]
            # An answer that ended by itself ends with the end-of-turn token, which the drafter
            # must learn to propose too (the server leaves it out of the content).
            if choice["finish_reason"] == "stop":
                answer += args.eos_text
            writer.add({"id": pid, "kind": kind, "messages": messages, "answer": answer,
                        "temperature": temperature,
                        "finish_reason": choice["finish_reason"],
                        "completion_tokens": resp["usage"]["completion_tokens"]})

    threads = [threading.Thread(target=worker) for _ in range(max(args.concurrency, 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit("answers: stopped after an error (rerun to resume): " + errors[0])


if __name__ == "__main__":
    main()
