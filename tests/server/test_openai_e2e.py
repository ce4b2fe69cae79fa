#!/usr/bin/env python3
"""End to end: `dspark serve` on a tiny generated model (and on SmolLM2 when present) driven by
the official openai client, plus raw httpx for what the client cannot send.

Checks chat and completions, streaming and not (same greedy text), n > 1, stop, seed
reproducibility, logprobs, usage, the `dspark` extension, every error status (400 401 404 405
413 429 503), /tokenize, /detokenize, /v1/models, /metrics, and a graceful SIGTERM that lets a
stream in flight finish and exits 0.
"""
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_util as su  # noqa: E402

KEY = "e2e-secret"
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"  FAIL: {what}")


def chat_text(resp):
    return resp.choices[0].message.content


def test_chat_and_completions(client, name):
    msgs = [{"role": "user", "content": "Hello, world!"}]
    whole = client.chat.completions.create(model=name, messages=msgs, max_tokens=12,
                                           temperature=0)
    check(whole.object == "chat.completion", "chat object")
    check(whole.id.startswith("chatcmpl-"), "chat id prefix")
    check(whole.model == name, "chat model name")
    check(whole.choices[0].message.role == "assistant", "assistant role")
    check(whole.choices[0].finish_reason in ("stop", "length"), "finish reason")
    u = whole.usage
    check(u.prompt_tokens > 0 and 0 < u.completion_tokens <= 12, f"usage {u}")
    check(u.total_tokens == u.prompt_tokens + u.completion_tokens, "total tokens")
    ext = (whole.model_extra or {}).get("dspark")
    check(ext is not None and {"drafted", "accepted", "mean_accepted_length"} <= set(ext),
          f"dspark extension {ext}")

    stream = client.chat.completions.create(model=name, messages=msgs, max_tokens=12,
                                            temperature=0, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    check(chunks[0].choices[0].delta.role == "assistant", "first delta has the role")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    check(text == chat_text(whole), f"streamed text {text!r} != {chat_text(whole)!r}")
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    check(len(finals) == 1 and finals[0].choices[0].finish_reason ==
          whole.choices[0].finish_reason, "one final chunk with the finish reason")
    check("dspark" in (finals[0].model_extra or {}), "dspark extension on the final chunk")
    check(chunks[-1].choices == [] and chunks[-1].usage is not None and
          chunks[-1].usage.completion_tokens == u.completion_tokens, "usage chunk")

    # n > 1 with a seed: reproducible, choice i uses seed + i.
    sampled = {"model": name, "messages": msgs, "max_tokens": 8, "temperature": 1.0,
               "extra_body": {"ignore_eos": True}}
    a = client.chat.completions.create(seed=77, n=3, **sampled)
    b = client.chat.completions.create(seed=77, n=3, **sampled)
    check([c.index for c in a.choices] == [0, 1, 2], "choice indexes")
    check([chat_text_i(a, i) for i in range(3)] == [chat_text_i(b, i) for i in range(3)],
          "same seed, same texts")
    c2 = client.chat.completions.create(seed=79, **sampled)
    check(chat_text(c2) == chat_text_i(a, 2), "choice 2 ran with seed + 2")
    check(a.usage.completion_tokens == 24, f"usage sums the choices: {a.usage}")
    check(a.usage.prompt_tokens == c2.usage.prompt_tokens, "the prompt counts once")

    # Stop: cut the greedy text at a substring.
    long = client.chat.completions.create(model=name, messages=msgs, max_tokens=24,
                                          temperature=0, extra_body={"ignore_eos": True})
    full = chat_text(long)
    if len(full) >= 6:
        stop = full[3:5]
        cut = client.chat.completions.create(model=name, messages=msgs, max_tokens=24,
                                             temperature=0, stop=[stop],
                                             extra_body={"ignore_eos": True})
        check(chat_text(cut) == full[:full.index(stop)], "stop string cuts the text")
        check(cut.choices[0].finish_reason == "stop", "stop finish reason")

    # Logprobs.
    lp = client.chat.completions.create(model=name, messages=msgs, max_tokens=4, temperature=0,
                                        logprobs=True, top_logprobs=2,
                                        extra_body={"ignore_eos": True})
    content = lp.choices[0].logprobs.content
    check(len(content) == 4 and all(len(t.top_logprobs) == 2 and t.logprob <= 0
                                    for t in content), "chat logprobs")

    # Completions, whole and streamed, with several prompts and logprobs.
    comp = client.completions.create(model=name, prompt=["Hello", "The"], max_tokens=6,
                                     temperature=0, logprobs=1)
    check(comp.object == "text_completion" and comp.id.startswith("cmpl-"), "completion object")
    check(len(comp.choices) == 2, "one choice per prompt")
    check(len(comp.choices[0].logprobs.tokens) == comp.choices[0].logprobs.text_offset.__len__(),
          "completion logprobs")
    streamed = client.completions.create(model=name, prompt="Hello", max_tokens=6, temperature=0,
                                         stream=True)
    text = "".join(c.choices[0].text for c in streamed if c.choices)
    check(text == comp.choices[0].text, f"streamed completion {text!r}")
    default = client.completions.create(model=name, prompt="Hello", temperature=0,
                                        extra_body={"ignore_eos": True})
    check(default.usage.completion_tokens == 16, "completions default max_tokens is 16")


def chat_text_i(resp, i):
    return resp.choices[i].message.content


def test_endpoints(base, name, headers):
    import httpx
    models = httpx.get(base + "/v1/models", headers=headers).json()
    check(models["object"] == "list" and models["data"][0]["id"] == name, "models list")
    tok = httpx.post(base + "/tokenize", headers=headers,
                     json={"prompt": "Hello, world!", "add_special": False}).json()
    check(tok["count"] == len(tok["tokens"]) and tok["max_model_len"] > 0, "tokenize")
    detok = httpx.post(base + "/detokenize", headers=headers, json={"tokens": tok["tokens"]})
    check(detok.json().get("prompt") == "Hello, world!", "detokenize round trip")
    check(httpx.get(base + "/version").json()["version"], "version")
    m = httpx.get(base + "/metrics")
    check(m.status_code == 200 and "# TYPE dspark:time_to_first_token_seconds histogram"
          in m.text, "metrics exposition")
    su.wait_idle(base)


def test_errors(base, name, client_cls):
    import httpx
    import openai
    auth = {"Authorization": f"Bearer {KEY}"}
    msgs = [{"role": "user", "content": "hi"}]

    bad = client_cls(base_url=base + "/v1", api_key="wrong", max_retries=0)
    try:
        bad.chat.completions.create(model=name, messages=msgs, max_tokens=2)
        check(False, "401 expected for a wrong key")
    except openai.AuthenticationError as e:
        check(e.status_code == 401, "401 wrong key")
    r = httpx.post(base + "/v1/chat/completions", json={"messages": msgs})
    check(r.status_code == 401, "401 without a key")

    good = client_cls(base_url=base + "/v1", api_key=KEY, max_retries=0)
    try:
        good.chat.completions.create(messages=msgs, model="no-such-model")
        check(False, "404 expected for an unknown model")
    except openai.NotFoundError as e:
        err = e.body if isinstance(e.body, dict) else {}
        check(e.status_code == 404 and err.get("code") == "model_not_found" and
              err.get("param") == "model", f"404 model_not_found: {e.body}")
    for kwargs, param in [({"model": name, "temperature": 5}, "temperature"),
                          ({"model": name, "n": 0}, "n"),
                          ({"model": name, "max_tokens": 10**7}, "max_tokens"),
                          ({"model": name, "logprobs": True, "top_logprobs": 50},
                           "top_logprobs")]:
        try:
            good.chat.completions.create(messages=msgs, **kwargs)
            check(False, f"400 expected for {kwargs}")
        except openai.BadRequestError as e:
            err = e.body if isinstance(e.body, dict) else {}
            check(e.status_code == 400 and err.get("param") == param,
                  f"400 naming {param}: {e.body}")
    wrong_type = httpx.post(base + "/v1/chat/completions", headers=auth,
                            json={"messages": msgs, "max_tokens": "many"})
    body = wrong_type.json()
    check(wrong_type.status_code == 400 and su.is_openai_error(body) and
          body["error"]["param"] == "max_tokens", "400 wrong type, OpenAI shape")
    check(httpx.post(base + "/v1/chat/completions", headers=auth,
                     content=b"{oops").status_code == 400, "400 invalid JSON")
    over = httpx.post(base + "/v1/chat/completions", headers=auth,
                      json={"messages": msgs, "max_tokens": 10**6}).json()["error"]["message"]
    check("1000000" in over, f"context error names the numbers: {over}")
    check(httpx.get(base + "/v1/nothing", headers=auth).status_code == 404, "404")
    r405 = httpx.get(base + "/v1/chat/completions", headers=auth)
    check(r405.status_code == 405 and r405.headers.get("allow") == "POST", "405 with Allow")
    big = httpx.post(base + "/v1/chat/completions", headers=auth,
                     content=b"{" + b" " * (9 << 20) + b"}")
    check(big.status_code == 413, f"413 for a 9 MiB body, got {big.status_code}")
    parts = httpx.post(base + "/v1/chat/completions", headers=auth, json={
        "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {
            "url": "http://x/y.png"}}]}]})
    check(parts.status_code == 400, "400 for image parts")


def test_429(args, model):
    import httpx
    with su.Server(args, model, "--max-queued-requests", "0") as s:
        r = httpx.post(s.base + "/v1/chat/completions", json={
            "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
        check(r.status_code == 429 and r.headers.get("retry-after") == "1",
              f"429 with Retry-After, got {r.status_code}")
        check(s.terminate() == 0, "exit 0")


def test_graceful_shutdown(args, model):
    """SIGTERM: a stream in flight finishes, new requests get 503 (or are refused), exit 0."""
    import httpx
    with su.Server(args, model, "--shutdown-timeout", "30") as s:
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 300,
                "temperature": 0, "stream": True, "ignore_eos": True}
        result = {}
        started = threading.Event()

        def stream():
            with httpx.Client(timeout=60) as c:
                result["body"] = su.post_stream(c, s.base + "/v1/chat/completions", body,
                                                on_piece=started.set)

        keep = httpx.Client(timeout=10)
        check(keep.get(s.base + "/health").status_code == 200, "health before shutdown")
        t = threading.Thread(target=stream)
        t.start()
        started.wait(30)
        s.proc.send_signal(15)
        time.sleep(0.3)
        try:
            late = keep.post(s.base + "/v1/chat/completions", json={
                "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
            check(late.status_code == 503, f"503 while shutting down, got {late.status_code}")
        except httpx.HTTPError:
            pass  # the transport closed idle connections and the listener: refused is right
        t.join(60)
        chunks, done = su.parse_sse(result.get("body", ""))
        check(done and chunks[-1]["choices"][0]["finish_reason"] == "length",
              "the stream in flight finished")
        check(s.terminate() == 0, "exit 0 after SIGTERM")


def test_chat_template_override(args, model):
    """--chat-template: a template that does not parse stops start-up with a clear message; a
    good one replaces the model's."""
    import subprocess

    import httpx
    binary = os.path.join(args.build_dir, "dspark")
    bad = subprocess.run([binary, "serve", "-m", model, "--port", "0", "--chat-template",
                          "{% for m in %}"], capture_output=True, text=True, timeout=120)
    check(bad.returncode == 1 and "does not parse" in bad.stderr,
          f"bad template: rc {bad.returncode}, {bad.stderr[-300:]!r}")
    with su.Server(args, model, "--chat-template",
                   "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}") as s:
        tokens = httpx.post(s.base + "/tokenize", json={"messages": [
            {"role": "user", "content": "Hello"}]}).json()["tokens"]
        text = httpx.post(s.base + "/detokenize", json={"tokens": tokens}).json()["prompt"]
        check(text == "<user>Hello", f"override template used: {text!r}")
        check(s.terminate() == 0, "exit 0")


def test_real_model(args, path):
    import httpx
    import openai
    with su.Server(args, path, "--kv-cache-mem", "256", "--api-key", KEY,
                   name="smollm2") as s:
        # /health answers 503 while the weights load (a tiny model loads too fast to see it).
        check(s.saw_loading, "503 from /health while loading")
        client = openai.OpenAI(base_url=s.base + "/v1", api_key=KEY, max_retries=0)
        msgs = [{"role": "user", "content": "Hi! How are you?"}]
        r = client.chat.completions.create(model="smollm2", messages=msgs, max_tokens=24,
                                           temperature=0)
        text = chat_text(r)
        print(f"  SmolLM2: {text!r}")
        check(len(text.strip()) > 0 and r.usage.completion_tokens > 0, "SmolLM2 answers")
        # The chat path is the model's template: the same tokens through /v1/completions give
        # the same text.
        auth = {"Authorization": f"Bearer {KEY}"}
        tokens = httpx.post(s.base + "/tokenize", headers=auth,
                            json={"messages": msgs}).json()["tokens"]
        rendered = httpx.post(s.base + "/detokenize", headers=auth,
                              json={"tokens": tokens}).json()["prompt"]
        check("Hi! How are you?" in rendered and "assistant" in rendered,
              f"the template wraps the message: {rendered!r}")
        check(r.usage.prompt_tokens == len(tokens), "prompt tokens == /tokenize count")
        same = client.completions.create(model="smollm2", prompt=tokens, max_tokens=24,
                                         temperature=0)
        check(same.choices[0].text == text, "chat == completions on the template's tokens")
        streamed = "".join(c.choices[0].delta.content or "" for c in
                           client.chat.completions.create(model="smollm2", messages=msgs,
                                                          max_tokens=24, temperature=0,
                                                          stream=True) if c.choices)
        check(streamed == text, "SmolLM2 streamed == whole")
        a = client.chat.completions.create(model="smollm2", messages=msgs, max_tokens=16,
                                           temperature=0.8, seed=5)
        b = client.chat.completions.create(model="smollm2", messages=msgs, max_tokens=16,
                                           temperature=0.8, seed=5)
        check(chat_text(a) == chat_text(b), "SmolLM2 seed reproducibility")
        su.wait_idle(s.base, headers=auth)
        check(s.terminate() == 0, "SmolLM2 server exit 0")


def main():
    args = su.parse_args()
    su.require_packages()
    import openai
    model = su.tiny_model(args)
    print("tiny model server")
    with su.Server(args, model, "--api-key", KEY) as s:
        client = openai.OpenAI(base_url=s.base + "/v1", api_key=KEY, max_retries=0)
        test_chat_and_completions(client, "tiny")
        test_endpoints(s.base, "tiny", {"Authorization": f"Bearer {KEY}"})
        test_errors(s.base, "tiny", openai.OpenAI)
        su.wait_idle(s.base)
        check(s.terminate() == 0, "exit 0")
    print("queue limit")
    test_429(args, model)
    print("graceful shutdown")
    test_graceful_shutdown(args, model)
    print("chat template override")
    test_chat_template_override(args, model)
    print("real model")
    real = su.real_model(args, failures)
    if real:
        test_real_model(args, real)
    return su.report(failures)


if __name__ == "__main__":
    sys.exit(main())
