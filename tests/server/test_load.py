#!/usr/bin/env python3
"""Load: 200 concurrent streaming clients against `dspark serve` on a tiny model, a third of
them disconnecting at random moments and invalid requests mixed in. The server must stay up,
every completed stream must be well formed and carry exactly the text of the same greedy
request run alone, and afterwards nothing may run or wait and every KV block must be free
(/metrics: num_requests_running 0, num_requests_waiting 0, kv_cache_usage_perc 0).
"""
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_util as su  # noqa: E402

N_CLIENTS = 200
PROMPTS = ["Hello, world!", "This is a test", "The tokenizer", "(brackets), [lists]",
           "Some punctuation:", "fibonacci", "sets}", "of the"]
INVALID = [b"{not json", b'{"messages": 5}', b'{"messages":[{"role":"user","content":"x"}],'
           b'"temperature":"hot"}', b'[]', b'{"messages":[{"role":"user","content":"x"}],'
           b'"max_tokens":100000000}', b'{"messages":[{"role":"user","content":[{"type":'
           b'"image_url"}]}]}']


def body_for(i):
    return {"model": "tiny", "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
            "max_tokens": 8 + (i % 5) * 6, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}


def key(body):
    return (body["messages"][0]["content"], body["max_tokens"])


def run_stream(client, base, body, disconnect_after=None):
    """(text, finish_reason, chunks) of a full stream; None when we hung up on purpose."""
    data = su.post_stream(client, base + "/v1/chat/completions", body, disconnect_after)
    if data is None:
        return None
    assert disconnect_after is None, "a long stream ended before the client left"
    chunks, done = su.parse_sse(data)
    assert done, "no [DONE]"
    assert chunks[0]["choices"][0]["delta"].get("role") == "assistant"
    ids = {c["id"] for c in chunks}
    assert len(ids) == 1, "one id per stream"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    finals = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finals) == 1, "one finish chunk"
    usage = chunks[-1]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] >= 1
    return text, finals[0]["choices"][0]["finish_reason"]


def main():
    args = su.parse_args()
    su.require_packages()
    import httpx
    model = su.tiny_model(args)
    rng = random.Random(1234)
    errors = []
    t0 = time.time()
    with su.Server(args, model, "--max-num-seqs", "16", "--max-queued-requests", "512") as s:
        # References: each distinct request alone.
        ref = {}
        with httpx.Client(timeout=60) as c:
            for i in range(len(PROMPTS) * 5):
                b = body_for(i)
                if key(b) not in ref:
                    ref[key(b)] = run_stream(c, s.base, b)
        plan = []
        for i in range(N_CLIENTS):
            r = rng.random()
            if r < 0.1:
                plan.append(("invalid", INVALID[i % len(INVALID)], None))
            elif r < 0.43:
                # Long enough that the client is surely gone before it ends.
                b = dict(body_for(i), max_tokens=1500, ignore_eos=True)
                plan.append(("disconnect", b, rng.randint(0, 6)))
            else:
                plan.append(("complete", body_for(i), None))
        counts = {"invalid": 0, "disconnect": 0, "complete": 0}
        counts_lock = threading.Lock()
        barrier = threading.Barrier(N_CLIENTS)

        def client(kind, body, after):
            try:
                with httpx.Client(timeout=120) as c:
                    barrier.wait(60)
                    if kind == "invalid":
                        r = c.post(s.base + "/v1/chat/completions", content=body,
                                   headers={"content-type": "application/json"})
                        assert r.status_code == 400, f"invalid request got {r.status_code}"
                        assert su.is_openai_error(r.json()), r.text
                    elif kind == "disconnect":
                        run_stream(c, s.base, body, disconnect_after=after)
                    else:
                        got = run_stream(c, s.base, body)
                        assert got == ref[key(body)], f"{got!r} != alone {ref[key(body)]!r}"
                with counts_lock:
                    counts[kind] += 1
            except Exception as e:  # noqa: BLE001 - every failure is reported
                errors.append(f"{kind}: {type(e).__name__}: {e}")

        threads = [threading.Thread(target=client, args=p) for p in plan]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        print(f"  {counts} in {time.time() - t0:.1f} s")
        text = su.check_end_state(s, errors, idle_timeout=30)
        if text:
            aborted = su.metric(text, "dspark:request_success_total", "abort") or 0.0
            print(f"  aborted engine requests: {aborted:.0f}")
            if aborted < counts["disconnect"]:
                errors.append(f"{counts['disconnect']} clients left mid-stream but only "
                              f"{aborted:.0f} engine requests were aborted")
    return su.report(errors)


if __name__ == "__main__":
    sys.exit(main())
