#!/usr/bin/env python3
"""`dspark capture` on a tiny generated model (llama-tied-f16.gguf: 3 layers, d_model 64).

Checks the output format against meta.json (file sizes, shapes, offsets, answer masks), the
tokenization ({"messages"} rendered like the equivalent {"prompt"}, special tokens parsed in the
answer, truncation to --max-len, short answers skipped), the default target_layer_ids, features
and top-K against model_tool's independent forward (features bit-exact, top-K ids exact,
probabilities to fp16 rounding), that --chunk and --shard-tokens change nothing, resuming
(--limit 2, then the rest, over a stale partial shard) equals one run, a settings mismatch on
resume, SIGTERM stopping after a whole sample with its shard written (then resumed), and clear errors (non-zero exit, a message) for bad input lines, flags and models.
Exits 77 where numpy is missing.
"""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import py_util  # noqa: E402

try:
    import numpy as np
except ImportError:
    py_util.skip("numpy is not installed")

MODEL = "llama-tied-f16.gguf"
IM_START, IM_END = 1, 2  # the tiny tokenizer's added tokens
TEXT = "Hello, world! This is a test of the tokenizer with some punctuation: (brackets). "
SAMPLES = [
    {"prompt": "<|im_start|>user\nSay hello<|im_end|>\n<|im_start|>assistant\n",
     "answer": "Hello, world! This is a test.<|im_end|>", "id": "a"},
    {"messages": [{"role": "user", "content": "Say hello"}],
     "answer": "Hello, world! This is a test.<|im_end|>"},
    {"prompt": "Tell me", "answer": "ok"},  # 1 answer token: skipped
    {"messages": [{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": [{"type": "text", "text": "Repeat "},
                                               {"type": "text", "text": "it"}]}],
     "answer": TEXT * 4},  # longer than --max-len: truncated
]
MAX_LEN = 96
K = 5

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"  FAIL: {what}")


def run(exe, *args):
    r = subprocess.run([exe, "capture", *args], capture_output=True, text=True, timeout=300)
    return r.returncode, r.stderr


def capture(exe, model, inp, out, *extra):
    code, err = run(exe, "-m", model, "--input", inp, "--output", out, "--top-k", str(K),
                    "--max-len", str(MAX_LEN), "--threads", "2", *extra)
    if code != 0:
        raise RuntimeError(f"dspark capture {' '.join(extra)} failed ({code}): {err}")
    return err


def load(out):
    """meta and the shards' arrays concatenated: tokens [N], offsets [S+1], mask [N],
    features [N, m, d] f16, topk_ids [N, K], topk_probs [N, K] f16."""
    with open(os.path.join(out, "meta.json")) as f:
        meta = json.load(f)
    m, d, k = len(meta["target_layer_ids"]), meta["d_model"], meta["top_k"]
    parts = {n: [] for n in ("tokens", "offsets", "mask", "features", "topk_ids", "topk_probs")}
    base = 0
    for s in meta["shards"]:
        p = os.path.join(out, s["name"])
        n, S = s["n_tokens"], s["n_seqs"]
        arrays = {
            "tokens": np.fromfile(p + ".tokens.i32", "<i4"),
            "offsets": np.fromfile(p + ".offsets.i64", "<i8"),
            "mask": np.fromfile(p + ".mask.u8", np.uint8),
            "features": np.fromfile(p + ".features.f16", "<f2"),
            "topk_ids": np.fromfile(p + ".topk_ids.i32", "<i4"),
            "topk_probs": np.fromfile(p + ".topk_probs.f16", "<f2"),
        }
        sizes = {"tokens": n, "offsets": S + 1, "mask": n, "features": n * m * d,
                 "topk_ids": n * k, "topk_probs": n * k}
        for name, a in arrays.items():
            check(a.size == sizes[name], f"{s['name']} {name}: {a.size} values, want {sizes[name]}")
        off = arrays["offsets"]
        check(off[0] == 0 and off[-1] == n and np.all(np.diff(off) > 0),
              f"{s['name']} offsets {off.tolist()}")
        parts["offsets"].append(off[:-1] + base)
        base += n
        for name in ("tokens", "mask"):
            parts[name].append(arrays[name])
        parts["features"].append(arrays["features"].reshape(n, m, d))
        parts["topk_ids"].append(arrays["topk_ids"].reshape(n, k))
        parts["topk_probs"].append(arrays["topk_probs"].reshape(n, k))
    parts["offsets"].append(np.array([base], np.int64))
    return meta, {name: np.concatenate(v) for name, v in parts.items()}


def same(a, b, what):
    for name in a:
        check(a[name].shape == b[name].shape and
              np.array_equal(a[name].view(np.uint8), b[name].view(np.uint8)),
              f"{what}: {name} differs")


def check_format(meta, data, stderr):
    check(meta["version"] == 1 and meta["feature_dtype"] == "f16", "meta version / dtype")
    check(meta["n_layers"] == 3 and meta["d_model"] == 64, f"meta shape {meta}")
    check(meta["target_layer_ids"] == [-1, 0, 1], f"default ids {meta['target_layer_ids']}")
    check(meta["top_k"] == K and meta["max_len"] == MAX_LEN, "meta top_k / max_len")
    check(meta["samples_done"] == len(SAMPLES), f"samples_done {meta['samples_done']}")
    check(sum(s["n_seqs"] for s in meta["shards"]) == 3, "3 sequences (one skipped)")
    check("3 samples (1 skipped" in stderr, f"summary counts: {stderr[-400:]}")
    off, tok, mask = data["offsets"], data["tokens"], data["mask"]
    seqs = [(tok[a:b], mask[a:b]) for a, b in zip(off[:-1], off[1:])]
    for i, (t, mk) in enumerate(seqs):
        n_prompt = int(np.argmax(mk))  # the mask is 0 on the prompt, then 1 on the answer
        check(mk[0] == 0 and np.all(mk[n_prompt:] == 1) and mk.sum() >= 8, f"seq {i} mask")
        check(t[0] == IM_START, f"seq {i} starts with <|im_start|> (special tokens parsed)")
    check(np.array_equal(seqs[0][0], seqs[1][0]) and np.array_equal(seqs[0][1], seqs[1][1]),
          "messages render as the equivalent prompt")
    check(seqs[0][0][-1] == IM_END, "the answer's <|im_end|> is one token")
    check(len(seqs[2][0]) == MAX_LEN, f"truncated to --max-len: {len(seqs[2][0])}")
    p = data["topk_probs"].astype(np.float64)
    check(np.all(np.diff(p, axis=1) <= 0), "top-k probabilities descend")
    check(np.all(p.sum(axis=1) <= 1 + 2e-3) and np.all(p >= 0), "top-k probabilities sum <= 1")
    ids = data["topk_ids"]
    check(np.all((ids >= 0) & (ids < meta["vocab_size"])), "top-k ids in the vocabulary")
    check(all(len(set(r)) == K for r in ids.tolist()), "top-k ids distinct")
    return seqs


class ModelTool:
    """tests/model/model_tool: an independent driver of the same forward."""

    def __init__(self, exe, model):
        self.proc = subprocess.Popen([exe, model, "--threads", "2"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def ask(self, request, out):
        self.proc.stdin.write(json.dumps(dict(request, out=out)) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        if "error" in reply:
            raise RuntimeError(f"model_tool: {reply['error']}")
        return np.fromfile(out, dtype=np.float32)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def check_reference(tool, tmp, meta, data):
    ids = meta["target_layer_ids"]
    V, d, off = meta["vocab_size"], meta["d_model"], data["offsets"]
    for i, (a, b) in enumerate(zip(off[:-1], off[1:])):
        tokens = [int(t) for t in data["tokens"][a:b]]
        n = b - a
        hidden = tool.ask({"op": "hidden", "tokens": tokens}, os.path.join(tmp, "h.f32"))
        hidden = hidden.reshape(n, -1, d)[:, [l + 1 for l in ids], :].astype(np.float16)
        check(np.array_equal(hidden.view(np.uint16), data["features"][a:b].view(np.uint16)),
              f"seq {i}: features are not the forward's hidden states")
        logits = tool.ask({"op": "logits", "tokens": tokens, "rows": "all"},
                          os.path.join(tmp, "l.f32")).reshape(n, V).astype(np.float64)
        order = np.lexsort((np.tile(np.arange(V), (n, 1)), -logits), axis=1)[:, :K]
        check(np.array_equal(order, data["topk_ids"][a:b]), f"seq {i}: top-k ids")
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = np.take_along_axis(e / e.sum(axis=1, keepdims=True), order, axis=1)
        got = data["topk_probs"][a:b].astype(np.float64)
        check(np.allclose(got, probs, rtol=1e-3, atol=1e-7), f"seq {i}: top-k probabilities")


def check_errors(exe, model, tmp, inp):
    bad = os.path.join(tmp, "bad.jsonl")
    cases = [
        ('{"prompt": "a", "answer": "hello there my friend"}\n{"prompt": "a", "answer": \n',
         [], "line 2"),
        ('{"prompt": "a"}\n', [], "\"answer\""),
        ('{"prompt": "a", "messages": [], "answer": "b"}\n', [], "exactly one"),
        ('[1, 2]\n', [], "line 1"),
        ('{"messages": [{"content": "x"}], "answer": "b"}\n', [], "role"),
    ]
    for text, extra, want in cases:
        with open(bad, "w") as f:
            f.write(text)
        code, err = run(exe, "-m", model, "--input", bad, "--output", os.path.join(tmp, "bad"),
                        *extra)
        check(code > 0 and want in err, f"bad input {text!r}: {code} {err}")
    out = os.path.join(tmp, "flags")
    for extra, want in [(["--target-layer-ids", "0,0"], "increasing"),
                        (["--target-layer-ids", "2"], "[-1, 1]"),
                        (["--target-layer-ids", "x"], "--target-layer-ids"),
                        (["--top-k", "0"], "--top-k"), (["--bogus"], "--bogus"),
                        (["--top-k", "1000"], "vocabulary")]:
        code, err = run(exe, "-m", model, "--input", inp, "--output", out, *extra)
        check(code > 0 and want in err, f"flags {extra}: {code} {err}")
    code, err = run(exe, "-m", os.path.join(tmp, "nope.gguf"), "--input", inp, "--output", out)
    check(code > 0 and "nope.gguf" in err, f"missing model: {code} {err}")
    code, err = run(exe, "-m", model, "--output", out)
    check(code > 0 and "--input" in err, f"no --input: {code} {err}")


def check_sigterm(exe, model, tmp):
    """SIGTERM mid-run: exit 0 after a whole sample, every captured sample in a listed shard and
    samples_done saying where a rerun resumes; the rerun continues from there."""
    import signal
    import time
    inp = os.path.join(tmp, "many.jsonl")
    with open(inp, "w") as f:
        f.write((json.dumps(SAMPLES[0]) + "\n") * 50000)
    out = os.path.join(tmp, "stopped")
    cmd = [exe, "capture", "-m", model, "--input", inp, "--output", out, "--top-k", str(K),
           "--max-len", str(MAX_LEN), "--threads", "1"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    started = os.path.join(out, "shard-00000.tokens.i32.tmp")
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None and not (
            os.path.exists(started) and os.path.getsize(started) > 0):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        check(False, "SIGTERM: capture did not stop within 60 s")
        return
    check(proc.returncode == 0 and "stopped by a signal" in err,
          f"SIGTERM: exit {proc.returncode}: {err[-500:]}")
    meta, data = load(out)
    done = meta["samples_done"]
    check(0 < done < 50000, f"SIGTERM: samples_done {done}")
    check(sum(s["n_seqs"] for s in meta["shards"]) == done and len(data["offsets"]) == done + 1,
          f"SIGTERM: {done} samples done, shards {meta['shards']}")
    capture(exe, model, inp, out, "--limit", str(done + 3))
    meta, data = load(out)
    check(meta["samples_done"] == done + 3 and len(data["offsets"]) == done + 4,
          f"SIGTERM then resumed to {done + 3}: {meta['samples_done']}, {len(data['offsets'])}")
    check(np.array_equal(data["tokens"][data["offsets"][done]:data["offsets"][done + 1]],
                         data["tokens"][:data["offsets"][1]]), "resumed sample's tokens")


def main():
    args = py_util.parse_args()
    exe = py_util.built(args, "dspark")
    tool_exe = py_util.built(args, "tests/model/model_tool")
    model = os.path.join(args.build_dir, "tiny_models", MODEL)
    if not os.path.exists(model):
        print(f"FAIL: {model} missing (ctest fixture tiny_models)")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        inp = os.path.join(tmp, "in.jsonl")
        with open(inp, "w") as f:
            f.write("".join(json.dumps(s) + "\n" for s in SAMPLES))
        full, split, resumed = (os.path.join(tmp, n) for n in ("full", "split", "resumed"))

        stderr = capture(exe, model, inp, full)
        meta, data = load(full)
        check(len(meta["shards"]) == 1, "one shard by default")
        check_format(meta, data, stderr)
        tool = ModelTool(tool_exe, model)
        check_reference(tool, tmp, meta, data)
        tool.close()

        # Other chunking and shard sizes: the same arrays, in several shards.
        capture(exe, model, inp, split, "--chunk", "7", "--shard-tokens", "1")
        meta2, data2 = load(split)
        check(len(meta2["shards"]) == 3, f"--shard-tokens 1: {len(meta2['shards'])} shards")
        same(data, data2, "--chunk 7 --shard-tokens 1")

        # Resume over a stale partial shard a killed run left.
        capture(exe, model, inp, resumed, "--limit", "2")
        meta3, _ = load(resumed)
        check(meta3["samples_done"] == 2 and len(meta3["shards"]) == 1, f"--limit 2: {meta3}")
        with open(os.path.join(resumed, "shard-00001.features.f16.tmp"), "wb") as f:
            f.write(b"\x7f" * 1000)
        err = capture(exe, model, inp, resumed)
        check("resuming" in err, "resume reported")
        meta3, data3 = load(resumed)
        check(meta3["samples_done"] == len(SAMPLES), "resumed samples_done")
        same(data, data3, "--limit 2 then resumed")
        code, err = run(exe, "-m", model, "--input", inp, "--output", resumed, "--top-k", "3",
                        "--max-len", str(MAX_LEN))
        check(code > 0 and "--output" in err, f"mismatched resume: {code} {err}")

        check_errors(exe, model, tmp, inp)
        check_sigterm(exe, model, tmp)
    return py_util.report(failures)


if __name__ == "__main__":
    sys.exit(main())
