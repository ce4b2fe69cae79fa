#!/usr/bin/env python3
"""Reference test: dspark's tokenizers against Hugging Face `tokenizers` on real models.

The reference shares no code with dspark. It is a `tokenizers.Tokenizer` built here from the
GGUF's own vocabulary and merges (read with the `gguf` package) plus the normalizer,
pre-tokenizer and decoder that each model's ORIGINAL tokenizer.json declares (written out in
REFERENCE_PIPELINES below). dspark is run through tests/tokenizer/tokenize_tool twice per model:
on the GGUF (tokenizer.ggml.pre presets) and on a tokenizer.json saved from the reference
(the from_hf_json path). Both must give the reference's ids on every text, with special-token
parsing on and off; decoding must give the text back (NFC-normalized where the model
normalizes), streaming must equal whole decoding, and every token's bytes must match.

transformers can also convert GGUF tokenizers, but its GGUF reader needs torch, and its table of
pre-tokenizers has no "smollm" entry (it would drop SmolLM2's digit splitting), so the
reference pipelines are written out explicitly instead.

Exit 0: pass, 1: fail, 77: skip (model or package missing, unless DSPARK_REQUIRE_MODELS=1).
"""
import json
import os
import random
import subprocess
import sys
import tempfile
import unicodedata

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import py_util  # noqa: E402

try:
    import gguf
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
    from tokenizers import pre_tokenizers, processors
except ImportError as e:
    py_util.skip(f"python package missing: {e}")

# Qwen2's Split pattern, from Qwen2.5's tokenizer.json (pre_tokenizer.pretokenizers[0].pattern).
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def smollm2_pipeline():
    # HuggingFaceTB/SmolLM2-135M-Instruct tokenizer.json:
    #   "normalizer": null,
    #   "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
    #       {"type": "Digits", "individual_digits": true},
    #       {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
    #        "use_regex": true}]},
    #   "decoder": {"type": "ByteLevel", ...}, "post_processor": {"type": "ByteLevel", ...}
    return None, pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])


def qwen2_pipeline():
    # Qwen/Qwen2.5-Coder-0.5B tokenizer.json:
    #   "normalizer": {"type": "NFC"},
    #   "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
    #       {"type": "Split", "pattern": {"Regex": QWEN2_PATTERN}, "behavior": "Isolated",
    #        "invert": false},
    #       {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false,
    #        "use_regex": false}]},
    #   "decoder": {"type": "ByteLevel", ...}, "post_processor": {"type": "ByteLevel", ...}
    return normalizers.NFC(), pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])


# Llama 3's Split pattern, from Meta-Llama-3-8B's tokenizer.json.
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                  r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def llama3_pipeline():
    # meta-llama/Meta-Llama-3-8B tokenizer.json:
    #   "normalizer": null,
    #   "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
    #       {"type": "Split", "pattern": {"Regex": LLAMA3_PATTERN}, "behavior": "Isolated",
    #        "invert": false},
    #       {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
    #        "use_regex": false}]},
    #   "model": {"type": "BPE", "ignore_merges": true, ...},
    #   "post_processor": TemplateProcessing "<|begin_of_text|> $A"
    return None, pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])


def gpt2_pipeline():
    # openai-community/gpt2 tokenizer.json: "normalizer": null, "pre_tokenizer": {"type":
    # "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
    return None, pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True,
                                          use_regex=True)


class Case:
    """One tokenizer to check: a GGUF file and the reference pipeline its pre value names."""

    def __init__(self, label, pre, pipeline, nfc, ignore_merges=False, bos_template=False):
        self.label, self.pre, self.pipeline, self.nfc = label, pre, pipeline, nfc
        self.ignore_merges, self.bos_template = ignore_merges, bos_template


# GGUF file name -> the case for the real file
MODELS = {
    "SmolLM2-135M-Instruct.Q4_1.gguf": Case("SmolLM2", "smollm", smollm2_pipeline, False),
    "qwen2.5-coder-0.5b.gguf": Case("Qwen2.5-Coder", "qwen2", qwen2_pipeline, True),
}
# Presets without a real model here, checked on Qwen2.5's real vocabulary and merges written to
# tokenizer-only GGUFs with another tokenizer.ggml.pre (llama-bpe also adds BOS).
VARIANTS = [
    Case("qwen-vocab/llama-bpe", "llama-bpe", llama3_pipeline, False, ignore_merges=True,
         bos_template=True),
    Case("qwen-vocab/gpt2", "gpt2", gpt2_pipeline, False),
]

# llama.cpp token types
NORMAL, CONTROL, USER_DEFINED, UNUSED = 1, 3, 4, 5


def gpt2_byte_decoder():
    """GPT-2's byte-level alphabet, character -> byte (the published bytes_to_unicode table)."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD))
                 + list(range(0xAE, 0x100)))
    chars = {b: chr(b) for b in printable}
    n = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + n)
            n += 1
    return {c: b for b, c in chars.items()}


def read_gguf(path):
    return py_util.gguf_fields(path, {
        "pre": ("tokenizer.ggml.pre", None),
        "model": ("tokenizer.ggml.model", None),
        "tokens": ("tokenizer.ggml.tokens", None),
        "types": ("tokenizer.ggml.token_type", None),
        "merges": ("tokenizer.ggml.merges", None),
        "eos": ("tokenizer.ggml.eos_token_id", None),
        "bos": ("tokenizer.ggml.bos_token_id", None),
    })


def build_reference(meta, case):
    tokens, types = meta["tokens"], meta["types"]
    vocab = {}
    for i, (t, ty) in enumerate(zip(tokens, types)):
        if ty == UNUSED:  # llama.cpp's padding entries; not in the original vocabulary
            continue
        assert t not in vocab, f"duplicate token {t!r}"
        vocab[t] = i
    merges = [tuple(m.split(" ", 1)) for m in meta["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, dropout=None, unk_token=None,
                               fuse_unk=False, byte_fallback=False,
                               ignore_merges=case.ignore_merges))
    normalizer, pre = case.pipeline()
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    tok.decoder = decoders.ByteLevel()
    if case.bos_template:
        bos = meta["tokens"][meta["bos"]]
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", special_tokens=[(bos, meta["bos"])])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    # Added tokens as in the original tokenizer.json: control tokens are special, user-defined
    # ones (Qwen's <tool_call>) are plain added tokens; none is normalized.
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(tokens, types) if ty == CONTROL])
    tok.add_tokens([AddedToken(t, special=False, normalized=False)
                    for t, ty in zip(tokens, types) if ty == USER_DEFINED])
    for t, ty in zip(tokens, types):
        if ty in (CONTROL, USER_DEFINED):
            assert tok.token_to_id(t) == vocab[t], f"added token {t!r} moved"
    return tok


def write_variant_gguf(meta, case, path):
    """A GGUF holding only the tokenizer metadata of `meta`, with case.pre as its pre value."""
    w = gguf.GGUFWriter(path, "qwen2")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(case.pre)
    w.add_token_list(meta["tokens"])
    w.add_token_types(meta["types"])
    w.add_token_merges(meta["merges"])
    w.add_bos_token_id(meta["bos"])
    w.add_eos_token_id(meta["eos"])
    w.add_add_bos_token(case.bos_template)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


CHAT = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nWrite a Python function that adds two numbers.<|im_end|>\n"
        "<|im_start|>assistant\n")

FIXED_TEXTS = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog. It's 5 o'clock; they're here, we've been, "
    "I'm sure you'll see, he'd go. IT'S LOUD, THEY'RE HERE.",
    "def add(a, b):\n    \"\"\"Add two numbers.\"\"\"\n    return a + b\n\n\nif __name__ == '__main__':"
    "\n    print(add(1, 2))\n",
    "#include <vector>\n\nint main() {\n\tstd::vector<int> v{1, 2, 3};\n\tfor (auto& x : v) {\n"
    "\t\tx *= 2;  // double\n\t}\n\treturn 0;\n}\n",
    "class A:\r\n    pass\r\n\r\n",
    "你好，世界！这是一个测试。机器学习很有趣。",
    "日本語のテキストとカタカナ、ひらがな。東京は大きい。",
    "한국어 텍스트입니다",
    "Emoji: 😀😃 👍🏽 🇺🇸 ❤️ 👩‍💻 👨‍👩‍👧‍👦 🏳️‍🌈 end",
    "Numbers: 0 12 123 1234 12345 3.14159 1,000,000 2024-01-15 0x1F ½ ² ٣ Ⅻ",
    "1234567890" * 5,
    "   leading spaces", "trailing spaces   ", "multiple     internal      spaces",
    "tabs\t\tand\nnewlines\n\n\nand\r\ncrlf\r\n\r\n", " \n \n\t \r\n ", "\n", " ", "\t",
    "a" * 300, "ab " * 200, "!!!???...---", "(parens) [brackets] {braces} <angles>",
    "don't can't won't shouldn't it's I'll you're we've they'd 'quoted' \"double\"",
    "Café naïve résumé façade Ångström", "e\u0301 a\u0308 n\u0303 \u1e0b\u0323 q\u0307\u0323",
    "\u00a0nbsp\u3000ideographic\u2003em space",
    "Mixed: The model (GPT-4) scored 92.5% on MMLU—impressive! 🚀",
    CHAT,
    "<|im_start|><|im_end|><|im_start|>user<|im_end|>",
    "text<|im_end|>more text<|im_start|>",
    "<|im_start incomplete <|im_end| <|endoftext|>",
    "<|endoftext|>",
    "<|fim_prefix|>def f():\n<|fim_suffix|>\n    return 1<|fim_middle|>",
    "<tool_call>{\"name\": \"f\"}</tool_call>",
    "<repo_name>dspark<file_sep>main.cpp<filename>x.py<gh_stars>10",
    "",
]

INVALID_TEXTS = [
    b"abc\xff\xfe def", b"\xe4\xbd", b"\xc3(", b"ok \xf0\x9f\x98 end", b"\xed\xa0\x80x",
    b"\x80\x80\x80", b"caf\xc3", b"\xc0\xaf overlong",
]

RANDOM_POOL = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
               + list(" \t\n\r'\".,;:!?-_()[]{}<>/\\|@#$%^&*+=~`") + [" ", "  ", "\r\n", "'s", "'T"]
               + list("你好世界中文字日本語カタナひらがなёжиклαβγ한국어ÀéïõüÅ")
               + ["\u0301", "\u0323", "\u0308", "\u200d", "\u00a0", "\u3000", "\u2003", "\u202f"]
               + ["😀", "👍", "🏽", "👩", "💻", "🇺", "🇸", "❤", "\ufe0f", "½", "٣", "²", "Ⅻ", "①"]
               + ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<tool_call>", "<|fim_pad|>"])


def random_texts(n, seed):
    rng = random.Random(seed)
    return ["".join(rng.choice(RANDOM_POOL) for _ in range(rng.randint(1, 40))) for _ in range(n)]


def bench_text():
    """About 10 KB of mixed English, code, CJK and emoji, for the speed check."""
    parts = [FIXED_TEXTS[1], FIXED_TEXTS[2], FIXED_TEXTS[3], FIXED_TEXTS[5], FIXED_TEXTS[8],
             FIXED_TEXTS[9]]
    text, i = "", 0
    while len(text.encode()) < 10240:
        text += parts[i % len(parts)] + "\n"
        i += 1
    return text


def run_tool(tool, model, args):
    out = subprocess.run([tool, model] + args, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        print(f"FAIL: tokenize_tool {model} {' '.join(args)} exited {out.returncode}: "
              f"{out.stderr.strip()}")
        sys.exit(1)
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


class Checker:
    def __init__(self, name):
        self.name, self.failures, self.checks = name, [], 0

    def expect(self, ok, what):
        self.checks += 1
        if not ok:
            self.failures.append(what)


def check_case(path, meta, case, tool, work):
    c = Checker(case.label)
    c.expect(meta["model"] == "gpt2" and meta["pre"] == case.pre,
             f"GGUF says model={meta['model']} pre={meta['pre']}, expected gpt2/{case.pre}")
    ref = build_reference(meta, case)
    json_path = os.path.join(work, os.path.basename(path) + ".tokenizer.json")
    ref.save(json_path)

    texts = [t.encode() for t in FIXED_TEXTS + random_texts(300, 1234) + [bench_text()]]
    texts += INVALID_TEXTS
    requests = [(flags, t) for t in texts for flags in ("p", "-", "pa", "a")]
    req_path = os.path.join(work, "requests.txt")
    with open(req_path, "w") as f:
        for flags, t in requests:
            f.write(f"{flags} {t.hex()}\n")

    expected = []
    for flags, raw in requests:
        text = raw.decode("utf-8", "replace")
        ref.encode_special_tokens = "p" not in flags
        expected.append(ref.encode(text, add_special_tokens="a" in flags).ids)
    ref.encode_special_tokens = False

    for source in (path, json_path):
        label = "gguf" if source == path else "tokenizer.json"
        results = run_tool(tool, source, ["encode", req_path])
        c.expect(len(results) == len(requests), f"{label}: {len(results)} results")
        for (flags, raw), want, got in zip(requests, expected, results):
            ids = got["ids"]
            shown = raw[:80]
            if ids != want:
                first = next((i for i, (a, b) in enumerate(zip(ids, want)) if a != b),
                             min(len(ids), len(want)))
                c.expect(False, f"{label} [{flags}] {shown!r}: ids differ at {first}: "
                                f"dspark {ids[first:first + 6]} vs HF {want[first:first + 6]}")
                continue
            c.expect(True, "")
            decoded = bytes.fromhex(got["decode"])
            hf_decoded = ref.decode(want, skip_special_tokens=False).encode()
            c.expect(decoded == hf_decoded, f"{label} [{flags}] {shown!r}: decode differs from HF")
            plain = bytes.fromhex(got["decode_plain"])
            hf_plain = ref.decode(want, skip_special_tokens=True).encode()
            c.expect(plain == hf_plain, f"{label} [{flags}] {shown!r}: decode without specials")
            c.expect(bytes.fromhex(got["stream"]) == decoded,
                     f"{label} [{flags}] {shown!r}: streaming != decode")
            text = raw.decode("utf-8", "replace")
            round_trip = unicodedata.normalize("NFC", text) if case.nfc else text
            if case.bos_template and "a" in flags:
                round_trip = meta["tokens"][meta["bos"]] + round_trip  # the rendered BOS
            c.expect(decoded == round_trip.encode(), f"{label} [{flags}] {shown!r}: round trip")

    # Every token's bytes, from GPT-2's published byte table (written above, independent of C++).
    byte_of = gpt2_byte_decoder()
    vocab = run_tool(tool, path, ["vocab"])[0]
    c.expect(vocab["n"] == len(meta["tokens"]), f"vocab size {vocab['n']}")
    for i, (t, ty) in enumerate(zip(meta["tokens"], meta["types"])):
        if all(ch in byte_of for ch in t):
            want = bytes(byte_of[ch] for ch in t)
        else:
            want = t.encode()
        if bytes.fromhex(vocab["bytes"][i]) != want:
            c.expect(False, f"token {i} {t!r}: bytes {vocab['bytes'][i]} vs {want.hex()}")
    controls = [i for i, ty in enumerate(meta["types"]) if ty == CONTROL]
    c.expect(vocab["special"] == controls, "special ids differ from the GGUF's control tokens")

    info = run_tool(tool, path, ["info"])[0]
    c.expect(info["eos"] == meta["eos"] and info["bos"] == meta["bos"], f"bos/eos {info}")
    for name in ("<|im_end|>", "<|endoftext|>"):
        c.expect(ref.token_to_id(name) in info["stop"], f"{name} not a stop id: {info['stop']}")

    return c


def check_speed(path, tool, work, sanitized):
    bench = os.path.join(work, "bench.txt")
    with open(bench, "w") as f:
        f.write(bench_text())
    # A fresh process per run: the first encode has a cold word cache. CPU time, not wall time,
    # is checked, so a machine busy with other jobs does not fail the test.
    cold = run_tool(tool, path, ["bench", bench, "1"])[0]
    warm = run_tool(tool, path, ["bench", bench, "20"])[0]
    limit = 200.0 if sanitized else 10.0
    print(f"  speed {os.path.basename(path)}: {cold['bytes']} bytes -> {cold['ids']} ids, "
          f"cold {cold['cpu_ms']:.2f} ms cpu ({cold['wall_ms']:.2f} wall), "
          f"warm {warm['cpu_ms']:.2f} ms cpu (limit {limit} ms)")
    return cold["cpu_ms"] < limit and warm["cpu_ms"] < limit


def is_sanitized(build_dir):
    try:
        with open(os.path.join(build_dir, "CMakeCache.txt")) as f:
            cache = f.read()
    except OSError:
        return False
    return "DSPARK_SANITIZE:BOOL=ON" in cache or "CMAKE_BUILD_TYPE:STRING=Debug" in cache


def main():
    args = py_util.parse_args()
    tool = py_util.built(args, "tests/tokenizer/tokenize_tool")
    models_dir = py_util.models_dir(args)
    found = {name: os.path.join(models_dir, name) for name in MODELS
             if os.path.exists(os.path.join(models_dir, name))}
    missing = sorted(set(MODELS) - set(found))
    if missing:
        py_util.skip(f"models missing from {models_dir}: {', '.join(missing)}")

    ok = True
    sanitized = is_sanitized(args.build_dir)

    def report(c):
        print(f"{c.name}: {c.checks - len(c.failures)}/{c.checks} checks passed")
        for f in c.failures[:15]:
            print(f"  FAIL {f}")
        return not c.failures

    with tempfile.TemporaryDirectory() as work:
        for name, path in found.items():
            meta = read_gguf(path)
            ok = report(check_case(path, meta, MODELS[name], tool, work)) and ok
            if not check_speed(path, tool, work, sanitized):
                print("  FAIL encoding 10 KB is too slow")
                ok = False
            if MODELS[name].pre == "qwen2":
                for case in VARIANTS:
                    variant = os.path.join(work, case.pre + ".gguf")
                    write_variant_gguf(meta, case, variant)
                    ok = report(check_case(variant, read_gguf(variant), case, tool, work)) and ok
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
