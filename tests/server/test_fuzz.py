#!/usr/bin/env python3
"""Fuzz the HTTP+JSON path of a running `dspark serve` (tiny model, --ctx 64 so any accepted
request is short): a few thousand random and mutated JSON bodies on every route, random
headers, and raw malformed HTTP over sockets. The server must never crash and must always
answer with a well-formed response: a known status, a JSON body with an OpenAI error object
for every 4xx/5xx (transport limits aside), and well-framed event streams.
"""
import json
import os
import random
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_util as su  # noqa: E402

N_JSON = 2500
N_RAW = 300
ROUTES = ["/v1/chat/completions", "/v1/completions", "/tokenize", "/detokenize"]
VALID = {
    "/v1/chat/completions": {"model": "tiny", "messages": [{"role": "user", "content": "hi"}],
                             "max_tokens": 3, "temperature": 0.5, "n": 1, "stop": ["x"],
                             "seed": 3, "logprobs": True, "top_logprobs": 2, "stream": False},
    "/v1/completions": {"model": "tiny", "prompt": "hello", "max_tokens": 3, "logprobs": 1,
                        "echo": False, "n": 2, "stream": False, "top_k": 5},
    "/tokenize": {"prompt": "hello", "add_special": True},
    "/detokenize": {"tokens": [1, 2, 3]},
}
ALLOWED = {200, 400, 401, 404, 405, 413, 429, 431, 503}
SAMPLES = [None, True, False, 0, -1, 1, 2, 3.5, -1e300, 1e300, 2**63, -2**63, 2**64, "",
           "x" * 50, "\u00e9\ud83d\ude00", "<|im_start|>", [], [1, 2], ["a"], [[1]], {},
           {"type": "text", "text": "t"}, {"role": "user", "content": "c"}, [{"type": "x"}],
           {"include_usage": True}, {"5": 1.0}]


def mutate_value(rng, value, depth=0):
    r = rng.random()
    if r < 0.3 or depth > 3:
        return rng.choice(SAMPLES)
    if isinstance(value, dict):
        v = dict(value)
        if v and rng.random() < 0.5:
            k = rng.choice(list(v))
            v[k] = mutate_value(rng, v[k], depth + 1)
        elif v and rng.random() < 0.5:
            del v[rng.choice(list(v))]
        else:
            v[rng.choice(["extra", "n", "stream", "stop", "prompt", "messages", "logit_bias",
                          "max_completion_tokens", "stream_options", "min_tokens"])] = \
                rng.choice(SAMPLES)
        return v
    if isinstance(value, list):
        v = list(value)
        if v and rng.random() < 0.5:
            i = rng.randrange(len(v))
            v[i] = mutate_value(rng, v[i], depth + 1)
        else:
            v.append(rng.choice(SAMPLES))
        return v
    return rng.choice(SAMPLES)


def mutate_bytes(rng, data):
    """One to four edits: overwrite a byte, delete a run, insert a JSON-ish token, truncate."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        if op < 0.3 and data:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif op < 0.5 and data:
            pos = rng.randrange(len(data))
            del data[pos:pos + rng.randint(1, 10)]
        elif op < 0.8:
            pos = rng.randint(0, len(data))
            data[pos:pos] = rng.choice([b"{", b"}", b"[", b"]", b'"', b",", b":", b"\\u", b"\xff",
                                        b"\x00", b"1e999", b"-", b"null", b"[" * 100])
        else:
            data = data[:rng.randint(0, len(data))]
    return bytes(data)


def check_response(r, route, errors, what):
    if r.status_code not in ALLOWED:
        errors.append(f"{what}: status {r.status_code}")
        return
    ctype = r.headers.get("content-type", "")
    if ctype.startswith("text/event-stream"):
        try:
            su.parse_sse(r.text)
        except Exception as e:  # noqa: BLE001
            errors.append(f"{what}: bad stream: {e}")
        return
    if r.status_code in (413, 431):
        return  # transport limits answer before any handler
    try:
        body = r.json()
    except ValueError:
        errors.append(f"{what}: {r.status_code} body is not JSON: {r.text[:100]!r}")
        return
    if r.status_code >= 400 and not su.is_openai_error(body):
        errors.append(f"{what}: {r.status_code} without an OpenAI error: {body}")


def raw_exchange(port, payload, timeout=10):
    """Sends raw bytes and reads until the server closes or answers; returns the bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        out = b""
        try:
            while True:
                piece = sock.recv(65536)
                if not piece:
                    break
                out += piece
        except (socket.timeout, OSError):
            pass
        return out


def raw_cases(rng):
    base = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            b"\r\nContent-Length: %d\r\n\r\n")
    body = json.dumps(VALID["/v1/chat/completions"]).encode()
    cases = [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"POST /v1/completions HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        b"POST /v1/completions HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET /health HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n",
        b"GET /health HTTP/9.9\r\n\r\n",
        b"\x00\x01\x02\r\n\r\n",
        (base % (len(body) + 10)) + body,  # body shorter than announced
        (base % 5) + body,                 # longer than announced: the rest is a bad request
    ]
    for _ in range(N_RAW - len(cases)):
        c = bytearray(rng.choice(cases[:2] + [(base % len(body)) + body]))
        for _ in range(rng.randint(1, 5)):
            i = rng.randrange(len(c))
            c[i] = rng.randrange(256)
        cases.append(bytes(c))
    return cases


def main():
    args = su.parse_args()
    su.require_packages()
    import httpx
    model = su.tiny_model(args)
    rng = random.Random(20261129)
    errors = []
    statuses = {}
    with su.Server(args, model, "--ctx", "64", "--max-n", "4") as s:
        with httpx.Client(timeout=60) as c:
            for i in range(N_JSON):
                route = rng.choice(ROUTES)
                r = rng.random()
                headers = {"content-type": rng.choice(["application/json", "text/plain", ""])}
                if rng.random() < 0.1:
                    headers[rng.choice(["authorization", "x-junk", "accept"])] = rng.choice(
                        ["Bearer", "Bearer x", "", "Basic abc", "a" * 1000])
                if r < 0.45:
                    body = json.dumps(mutate_value(rng, VALID[route])).encode()
                elif r < 0.85:
                    body = mutate_bytes(rng, json.dumps(VALID[route]).encode())
                else:
                    body = bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))
                method = "POST" if rng.random() < 0.95 else rng.choice(["GET", "PUT", "DELETE"])
                try:
                    resp = c.request(method, s.base + route, content=body, headers=headers)
                except httpx.HTTPError as e:
                    errors.append(f"#{i} {route}: transport error {e!r}")
                    c = httpx.Client(timeout=60)
                    continue
                statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
                check_response(resp, route, errors, f"#{i} {method} {route} {body[:80]!r}")
                if not s.alive():
                    errors.append(f"server died on #{i}: {body[:200]!r}")
                    break
        print(f"  {N_JSON} JSON requests done, statuses {sorted(statuses.items())}")
        if not statuses.get(200) or not statuses.get(400):
            errors.append("the mutations should both pass and fail validation")
        if s.alive():
            for i, payload in enumerate(raw_cases(rng)):
                reply = raw_exchange(s.port, payload)
                if reply and not reply.startswith(b"HTTP/1.1 "):
                    errors.append(f"raw #{i}: not an HTTP response: {reply[:60]!r}")
                if not s.alive():
                    errors.append(f"server died on raw #{i}: {payload[:100]!r}")
                    break
            print(f"  {N_RAW} raw requests done")
        su.check_end_state(s, errors)
    return su.report(errors)


if __name__ == "__main__":
    sys.exit(main())
