#!/usr/bin/env python3
"""Reference test: dspark's SentencePiece-style ("llama" GGUF model) tokenizer against Hugging Face
`tokenizers`.

The reference is a `tokenizers.Tokenizer` built here from the GGUF's tokens, scores and token
types the way transformers' slow->fast conversion (convert_slow_tokenizer.py) builds one from a
SentencePiece BPE model:
  - model: BPE over the whole vocabulary, merges from generate_merges(vocab, scores) (every split
    of a piece into two pieces, ordered by the merged piece's score, best first, then longer left
    part, then longer right part; within one piece by the ids of the parts), unk_token <unk>,
    fuse_unk, byte_fallback;
  - LlamaConverter (legacy): normalizer Prepend("▁") + Replace(" ", "▁"), no pre-tokenizer,
    decoder Replace("▁", " ") + ByteFallback + Fuse + Strip(" ", 1, 0), BOS by TemplateProcessing;
  - GemmaConverter: normalizer Replace(" ", "▁") (no prefix), decoder Replace + ByteFallback +
    Fuse, BOS by TemplateProcessing;
  - control and unknown pieces are special added tokens, user-defined pieces plain added tokens,
    none normalized: llama.cpp's converter writes user-defined pieces with real spaces ("▁"
    pre-normalized to " ", e.g. Gemma's whitespace runs), so they match the raw text, as in
    llama.cpp.
generate_merges is written out below (transformers is not installed here and not a dependency);
everything else is the `tokenizers` library's own code.

Two vocabularies: models/gemma3-270m.Q4_K_M.gguf (262,144 pieces; checked when present), and a
tiny Llama-style SentencePiece vocabulary generated here (a few hundred pieces with scores, the
256 byte tokens, <unk>/<s>/</s>, two user-defined tokens), written to tokenizer-only GGUFs with and
without the add_space_prefix key, so CI checks the Llama path without a download. dspark runs
through tests/tokenizer/tokenize_tool, on the GGUF and on the reference saved as tokenizer.json.
Per text, with special-token parsing on and off and BOS on and off: the ids must equal the
reference's, decode (with and without special tokens) must equal the reference's decode,
streaming must equal whole decoding, and plain encode -> decode must give the text back.

Gemma 3 is in fetch_models.py's `--set test` (what scripts/test.sh fetches): with
DSPARK_REQUIRE_MODELS=1 its absence fails the test; otherwise it is reported and the tiny
vocabulary is still checked.
Exit 0: pass, 1: fail, 77: skip (a Python package missing, unless DSPARK_REQUIRE_MODELS=1).
"""
import json
import os
import random
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import py_util  # noqa: E402

try:
    import gguf
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors
    from tokenizers import pre_tokenizers, trainers
except ImportError as e:
    py_util.skip(f"python package missing: {e}")

import test_tokenizer_ref as base  # noqa: E402  (corpus, tool runner, Checker)

MARK = "\u2581"
# llama.cpp token types
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
GEMMA = "gemma3-270m.Q4_K_M.gguf"


def generate_merges(vocab, scores):
    """transformers' generate_merges(vocab, vocab_scores) for a SentencePiece BPE vocabulary."""
    merges = []
    for piece, score in scores.items():
        local = []
        for i in range(1, len(piece)):
            left, right = piece[:i], piece[i:]
            if left in vocab and right in vocab:
                local.append((left, right, score))
        local.sort(key=lambda m: (vocab[m[0]], vocab[m[1]]))
        merges.extend(local)
    merges.sort(key=lambda m: (m[2], len(m[0]), len(m[1])), reverse=True)
    return [(m[0], m[1]) for m in merges]


def read_gguf(path):
    return py_util.gguf_fields(path, {
        "arch": ("general.architecture", None),
        "model": ("tokenizer.ggml.model", None),
        "tokens": ("tokenizer.ggml.tokens", None),
        "scores": ("tokenizer.ggml.scores", None),
        "types": ("tokenizer.ggml.token_type", None),
        "bos": ("tokenizer.ggml.bos_token_id", None),
        "eos": ("tokenizer.ggml.eos_token_id", None),
        "unk": ("tokenizer.ggml.unknown_token_id", None),
        "add_bos": ("tokenizer.ggml.add_bos_token", True),
        "add_space_prefix": ("tokenizer.ggml.add_space_prefix", None),
    })


def build_reference(meta, llama_style):
    tokens, types, scores = meta["tokens"], meta["types"], meta["scores"]
    vocab, piece_scores = {}, {}
    for i, (t, ty) in enumerate(zip(tokens, types)):
        if ty == UNUSED:
            continue
        assert t not in vocab, f"duplicate piece {t!r}"
        vocab[t] = i
        piece_scores[t] = float(scores[i])
    unk = tokens[meta["unk"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=generate_merges(vocab, piece_scores),
                               unk_token=unk, fuse_unk=True, byte_fallback=True, dropout=None))
    steps = [decoders.Replace(MARK, " "), decoders.ByteFallback(), decoders.Fuse()]
    if llama_style:
        tok.normalizer = normalizers.Sequence([normalizers.Prepend(MARK),
                                               normalizers.Replace(" ", MARK)])
        steps.append(decoders.Strip(content=" ", left=1, right=0))
    else:
        tok.normalizer = normalizers.Replace(" ", MARK)
    tok.decoder = decoders.Sequence(steps)
    if meta["add_bos"]:
        bos = tokens[meta["bos"]]
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", special_tokens=[(bos, meta["bos"])])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(tokens, types) if ty in (CONTROL, UNKNOWN)])
    tok.add_tokens([AddedToken(t, special=False, normalized=False)
                    for t, ty in zip(tokens, types) if ty == USER_DEFINED])
    for t, ty in zip(tokens, types):
        if ty in (CONTROL, UNKNOWN, USER_DEFINED):
            assert tok.token_to_id(t) == vocab[t], f"added token {t!r} moved"
    return tok


# ------------------------------------------------------------------ the tiny Llama-style vocab

TINY_CORPUS = """The quick brown fox jumps over the lazy dog. Hello world, hello there!
def add(a, b):
    return a + b

for i in range(10):
        print(i, i * 2)
Numbers 12345 and 3.14159; the year 2024. Café naïve résumé. Ünïcödé text.
Il était une fois une princesse. Das ist ein Test. Esto es una prueba.
"""


def tiny_llama_vocab():
    """A SentencePiece-BPE-like vocabulary: <unk> <s> </s>, the 256 byte tokens, merged pieces
    scored by training order (as SentencePiece scores BPE pieces, eight at a time, so that equal
    scores occur), whitespace-run pieces, single
    characters below them, and one user-defined piece. Returns (tokens, scores, types)."""
    trainer = trainers.BpeTrainer(vocab_size=420, show_progress=False, special_tokens=[])
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.Replace(" ", MARK)
    bpe.pre_tokenizer = pre_tokenizers.Metaspace(replacement=MARK, prepend_scheme="always")
    bpe.train_from_iterator([TINY_CORPUS] * 4, trainer)
    model = bpe.get_vocab()
    merged = [a + b for a, b in ((m.split(" ") if isinstance(m, str) else m)
                                 for m in _merges_of(bpe))]
    chars = sorted((p for p in model if len(p) == 1), key=lambda p: model[p])

    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    scores = [0.0] * len(tokens)
    types = [UNKNOWN, CONTROL, CONTROL] + [BYTE] * 256
    pieces = []
    for p in merged + [MARK * 2, MARK * 4, MARK * 8, "user", MARK + "user"]:
        if p not in pieces and p not in tokens:
            pieces.append(p)
    for i, p in enumerate(pieces):
        tokens.append(p)
        scores.append(-float(i // 8))  # groups of equal scores exercise the tie rules
        types.append(NORMAL)
    for i, c in enumerate(chars):
        if c not in tokens:
            tokens.append(c)
            scores.append(-float(len(pieces) + i))
            types.append(NORMAL)
    for p in ("<|user|>", "<tab>"):
        tokens.append(p)
        scores.append(0.0)
        types.append(USER_DEFINED)
    return tokens, scores, types


def tie_texts(tokens, scores, types):
    """Texts on which two merges of equal score compete for a shared symbol (P = a+b and
    Q = b+d with score(P) == score(Q): "abd"), so the converter's tie rules decide the ids."""
    vocab = set(t for t, ty in zip(tokens, types) if ty != UNUSED)
    splits = {}
    for t, s, ty in zip(tokens, scores, types):
        if ty == NORMAL:
            splits.setdefault(s, []).extend((t[:i], t[i:]) for i in range(1, len(t))
                                            if t[:i] in vocab and t[i:] in vocab)
    texts = set()
    for group in splits.values():
        for a, b in group:
            for c, d in group:
                if b == c and a + b != c + d:
                    text = (a + b + d).replace(MARK, " ")
                    texts.add(text[1:] if text.startswith(" ") else text)
    return sorted(texts)


def _merges_of(tok):
    return json.loads(tok.to_str())["model"]["merges"]


def write_tiny_gguf(path, tokens, scores, types, add_space_prefix):
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    if add_space_prefix is not None:
        w.add_add_space_prefix(add_space_prefix)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ------------------------------------------------------------------ corpus and checks

SPM_TEXTS = [
    "<s>Hello</s> world", "<s> <s>  </s>", "text<s>more</s>", "<unk> unknown",
    "<|user|> hi<|user|>there", "<tab>\t<tab>", "<bos>Hello<eos>", "<start_of_turn>user\nHi"
    "<end_of_turn>\n<start_of_turn>model\n", "\u2581already marked \u2581\u2581 x",
    "<0x41> literal byte-token text", " " * 40 + "x", "\n" * 40, "\t" * 40, "a" + " " * 100 + "b",
    "    indented\n        twice\n\t\ttabs", "ok " + "🦀" * 5 + " ∀x∈ℝ ⟨ψ|φ⟩ \U0001F9EC \U000E0041",
    "مرحبا بالعالم", "Привет, мир!", "שלום עולם", "नमस्ते दुनिया", "ไทย ภาษา",
    "x = [1,2,3]\nprint(sum(x))  # 6\n", "3.14159265358979 6.02e23 -42 0b1011 1_000_000",
]
SPM_POOL = base.RANDOM_POOL + ["<s>", "</s>", "<unk>", "<|user|>", "<tab>", "<bos>", "<eos>",
                               "<start_of_turn>", "<end_of_turn>", "\u2581", "  ", "\n\n", "\t\t",
                               "🦀", "ℝ", "\U0001F9EC"]


def corpus():
    rng = random.Random(4321)
    randoms = ["".join(rng.choice(SPM_POOL) for _ in range(rng.randint(1, 40)))
               for _ in range(300)]
    texts = [t.encode() for t in base.FIXED_TEXTS + SPM_TEXTS + randoms + [base.bench_text()]]
    return texts + base.INVALID_TEXTS


def check(label, path, meta, llama_style, tool, work, extra_texts=()):
    c = base.Checker(label)
    c.expect(meta["model"] == "llama", f"GGUF says model={meta['model']}, expected llama")
    ref = build_reference(meta, llama_style)
    texts = corpus() + [t.encode() for t in extra_texts]
    requests = [(flags, t) for t in texts for flags in ("p", "-", "pa", "a")]
    user_defined = [t for t, ty in zip(meta["tokens"], meta["types"]) if ty == USER_DEFINED]
    req_path = os.path.join(work, "requests.txt")
    with open(req_path, "w") as f:
        for flags, t in requests:
            f.write(f"{flags} {t.hex()}\n")
    wants = []
    for flags, raw in requests:
        ref.encode_special_tokens = "p" not in flags
        text = raw.decode("utf-8", "replace")
        wants.append(ref.encode(text, add_special_tokens="a" in flags).ids)
    ref.encode_special_tokens = False
    # The GGUF, and the reference saved as tokenizer.json (dspark's from_hf_json path).
    json_path = os.path.join(work, "reference.tokenizer.json")
    ref.save(json_path)
    for source, file in (("gguf", path), ("tokenizer.json", json_path)):
        results = base.run_tool(tool, file, ["encode", req_path])
        c.expect(len(results) == len(requests), f"{len(results)} results for {len(requests)}")
        for (flags, raw), want, got in zip(requests, wants, results):
            text = raw.decode("utf-8", "replace")
            ids, shown = got["ids"], raw[:60]
            if ids != want:
                first = next((i for i, (a, b) in enumerate(zip(ids, want)) if a != b),
                             min(len(ids), len(want)))
                c.expect(False, f"{source} [{flags}] {shown!r}: ids differ at {first}: "
                                f"dspark {ids[first:first + 6]} vs HF {want[first:first + 6]}")
                continue
            c.expect(True, "")
            decoded = bytes.fromhex(got["decode"])
            c.expect(decoded == ref.decode(want, skip_special_tokens=False).encode(),
                     f"{source} [{flags}] {shown!r}: decode differs from HF: {decoded[:60]!r} vs "
                     f"{ref.decode(want, skip_special_tokens=False)[:60]!r}")
            c.expect(bytes.fromhex(got["decode_plain"]) == ref.decode(want).encode(),
                     f"{source} [{flags}] {shown!r}: decode without special tokens differs from HF")
            # Streaming keeps the prefix space the Llama decoder strips from a whole text: a
            # streamed continuation's first "▁word" is " word".
            stream = bytes.fromhex(got["stream"])
            if llama_style and want and ref.id_to_token(want[0]).startswith(MARK):
                stream = stream[1:] if stream.startswith(b" ") else b"missing space " + stream
            c.expect(stream == decoded, f"{source} [{flags}] {shown!r}: streaming != decode")
            # A "▁" in the text comes back as a space. With a prefix space, each segment between
            # added tokens (user-defined ones match even without parsing) gets its own.
            if flags == "-" and not (llama_style and any(u in text for u in user_defined)):
                c.expect(decoded == text.replace(MARK, " ").encode(),
                         f"{source} {shown!r}: round trip gave {decoded[:60]!r}")

    info = base.run_tool(tool, path, ["info"])[0]
    c.expect(info["kind"] == "spm" and info["vocab_size"] == len(meta["tokens"]), f"info {info}")
    c.expect(info["bos"] == meta["bos"] and info["eos"] == meta["eos"], f"bos/eos {info}")
    vocab = base.run_tool(tool, path, ["vocab"])[0]
    specials = [i for i, ty in enumerate(meta["types"]) if ty in (CONTROL, UNKNOWN)]
    c.expect(vocab["special"] == specials, "special ids differ from the control/unknown pieces")
    for i, t in enumerate(meta["tokens"]):
        ty = meta["types"][i]
        want = (bytes([int(t[3:5], 16)]) if ty == BYTE else t.replace(MARK, " ").encode())
        if bytes.fromhex(vocab["bytes"][i]) != want:
            c.expect(False, f"token {i} {t!r}: bytes {vocab['bytes'][i]} vs {want.hex()}")
    return c


def report(c):
    print(f"{c.name}: {c.checks - len(c.failures)}/{c.checks} checks passed")
    for f in c.failures[:20]:
        print(f"  FAIL {f}")
    return not c.failures


def check_speed(path, tool, work, sanitized, limit_ms):
    """A long text with no added token in it: one BPE run over 10 KB."""
    bench = os.path.join(work, "bench.txt")
    text = base.bench_text().replace("\n", " ").replace("\t", " ")
    with open(bench, "w") as f:
        f.write(text)
    cold = base.run_tool(tool, path, ["bench", bench, "1"])[0]
    limit = limit_ms * (20 if sanitized else 1)
    print(f"  speed {os.path.basename(path)}: {cold['bytes']} bytes -> {cold['ids']} ids, "
          f"{cold['cpu_ms']:.2f} ms cpu ({cold['wall_ms']:.2f} wall; limit {limit} ms)")
    return cold["cpu_ms"] < limit


def main():
    args = py_util.parse_args()
    tool = py_util.built(args, "tests/tokenizer/tokenize_tool")
    sanitized = base.is_sanitized(args.build_dir)
    ok = True
    with tempfile.TemporaryDirectory() as work:
        tokens, scores, types = tiny_llama_vocab()
        ties = tie_texts(tokens, scores, types)
        print(f"tiny vocabulary: {len(tokens)} pieces, {len(ties)} texts with tied merges")
        for label, prefix in (("tiny-llama", True), ("tiny-llama/no-prefix-key", None)):
            path = os.path.join(work, label.replace("/", "-") + ".gguf")
            write_tiny_gguf(path, tokens, scores, types, prefix)
            meta = read_gguf(path)
            ok = report(check(label, path, meta, True, tool, work, ties)) and ok
        ok = check_speed(path, tool, work, sanitized, 20.0) and ok

        gemma = os.path.join(py_util.models_dir(args), GEMMA)
        if os.path.exists(gemma):
            meta = read_gguf(gemma)
            ok = report(check("gemma3", gemma, meta, False, tool, work)) and ok
            ok = check_speed(gemma, tool, work, sanitized, 20.0) and ok
        elif os.environ.get("DSPARK_REQUIRE_MODELS") == "1":
            print(f"FAIL: {gemma} is missing (DSPARK_REQUIRE_MODELS=1; "
                  "scripts/fetch_models.py --set test fetches it)")
            ok = False
        else:
            print(f"(not present, not checked: {gemma}; scripts/fetch_models.py gemma3)")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
