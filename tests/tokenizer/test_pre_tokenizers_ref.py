#!/usr/bin/env python3
"""Reference test: every tokenizer.ggml.pre name dspark accepts, against Hugging Face `tokenizers`.

For each model family, FAMILIES below writes out the normalizer and pre-tokenizer of the
family's original tokenizer.json (the facts; they share no code with dspark's table in
src/tokenizer/pre_presets.cpp). Over a real byte-level BPE vocabulary (Qwen2.5-Coder's, read from
its GGUF with the `gguf` package, plus digit tokens appended so that digit grouping shows in the
ids) the test builds the reference `tokenizers.Tokenizer`, saves it as tokenizer.json, and writes
one tokenizer-only GGUF per pre name. tests/tokenizer/tokenize_tool must give the reference's ids
on both files, on a corpus of code, digit runs, whitespace runs, contractions, punctuation and
non-Latin scripts, with special-token parsing on and off.

The names tested must be exactly the names dspark supports (read from its error message for an
unknown name), so a table entry without a reference fails here.

Exit 0: pass, 1: fail, 77: skip (model or package missing, unless DSPARK_REQUIRE_MODELS=1).
"""
import json
import os
import random
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import py_util  # noqa: E402

try:
    import gguf
    from tokenizers import AddedToken, Regex, Tokenizer, models, normalizers, pre_tokenizers
except ImportError as e:
    py_util.skip(f"python package missing: {e}")

MODEL = "qwen2.5-coder-0.5b.gguf"

# --- The facts: each family's tokenizer.json pipeline ------------------------------------------

LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
          r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
         r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
UPPER, LOWER = r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]", r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]"
# mistralai/Mistral-Nemo-Base-2407
TEKKEN = (rf"[^\r\n\p{{L}}\p{{N}}]?{UPPER}*{LOWER}+|[^\r\n\p{{L}}\p{{N}}]?{UPPER}+{LOWER}*|\p{{N}}"
          r"| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# Xenova/gpt-4o (o200k)
CONTRACTION = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
GPT4O = (rf"[^\r\n\p{{L}}\p{{N}}]?{UPPER}*{LOWER}+{CONTRACTION}"
         rf"|[^\r\n\p{{L}}\p{{N}}]?{UPPER}+{LOWER}*{CONTRACTION}|\p{{N}}{{1,3}}"
         r"| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# ByteDance-Seed/Seed-Coder-8B-Base
SEED_CODER = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}"
              r"| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+")
# inclusionAI/Ling-lite
BAILING = (r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}"
           r"| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+")
# bigscience/bloom, written as in its tokenizer.json (a nested class)
BLOOM = " ?[^(\\s|[.,!?\u2026\u3002\uff0c\u3001\u0964\u06d4\u060c])]+"
# deepseek-ai/deepseek-llm-7b-base: letters of the cased scripts, code point ranges
DS_LATIN_RANGES = [
    (0x41, 0x5A), (0x61, 0x7A), (0xB5, 0xB5), (0xC0, 0xD6), (0xD8, 0xF6), (0xF8, 0x1BA),
    (0x1BC, 0x1BF), (0x1C4, 0x293), (0x295, 0x2AF), (0x370, 0x373), (0x376, 0x377),
    (0x37B, 0x37D), (0x37F, 0x37F), (0x386, 0x386), (0x388, 0x38A), (0x38C, 0x38C),
    (0x38E, 0x3A1), (0x3A3, 0x3F5), (0x3F7, 0x481), (0x48A, 0x52F), (0x531, 0x556),
    (0x10A0, 0x10C5), (0x13A0, 0x13F5), (0x13F8, 0x13FD), (0x1C90, 0x1CBA), (0x1CBD, 0x1CBF),
    (0x1D00, 0x1D2B), (0x1D6B, 0x1D77), (0x1D79, 0x1D9A), (0x1E00, 0x1F15), (0x1F18, 0x1F1D),
    (0x1F20, 0x1F45), (0x1F48, 0x1F4D), (0x1F50, 0x1F57), (0x1F59, 0x1F59), (0x1F5B, 0x1F5B),
    (0x1F5D, 0x1F5D), (0x1F5F, 0x1F7D), (0x1F80, 0x1FB4), (0x1FB6, 0x1FBC), (0x1FBE, 0x1FBE),
    (0x1FC2, 0x1FC4), (0x1FC6, 0x1FCC), (0x1FD0, 0x1FD3), (0x1FD6, 0x1FDB), (0x1FE0, 0x1FEC),
    (0x1FF2, 0x1FF4), (0x1FF6, 0x1FFC), (0x2102, 0x2102), (0x2107, 0x2107), (0x210A, 0x2113),
    (0x2115, 0x2115), (0x2119, 0x211D), (0x2124, 0x2124), (0x2126, 0x2126), (0x2128, 0x2128),
    (0x212A, 0x212D), (0x212F, 0x2134), (0x2139, 0x2139), (0x213C, 0x213F), (0x2145, 0x2149),
    (0x214E, 0x214E), (0x2183, 0x2184), (0x2C00, 0x2C7B), (0x2C7E, 0x2CE4), (0x2CEB, 0x2CEE),
    (0x2CF2, 0x2CF3), (0xA640, 0xA66D), (0xA680, 0xA69B), (0xA722, 0xA76F), (0xA771, 0xA787),
    (0xA78B, 0xA78E), (0xAB70, 0xABBF), (0xFB00, 0xFB06), (0xFB13, 0xFB17), (0xFF21, 0xFF3A),
    (0xFF41, 0xFF5A), (0x10400, 0x1044F), (0x104B0, 0x104D3), (0x104D8, 0x104FB),
    (0x10C80, 0x10CB2), (0x10CC0, 0x10CF2), (0x118A0, 0x118DF), (0x1E900, 0x1E943),
]
DS_LATIN = r"\s?[" + "".join(
    f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in DS_LATIN_RANGES) + "]+"
DS_PUNCT = r"\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+"
DS_CJK = r"[\x{4E00}-\x{9FA5}\x{0800}-\x{4E00}\x{AC00}-\x{D7FF}]+"
# deepseek-ai/DeepSeek-V3
DSV3_CJK = r"[\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+"
DSV3_MAIN = (r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+"
             r"|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+"
             r"| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def split(pattern):
    return pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False)


def byte_level(use_regex):
    return pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True,
                                    use_regex=use_regex)


def seq(*steps):
    return pre_tokenizers.Sequence(list(steps))


DIGITS = pre_tokenizers.Digits(individual_digits=True)


class Family:
    """Names llama.cpp gives one tokenizer.json pipeline: (NFC?, pre-tokenizer, ignore_merges)."""

    def __init__(self, names, pre, nfc=False, ignore_merges=False):
        self.names, self.pre, self.nfc, self.ignore_merges = names, pre, nfc, ignore_merges


FAMILIES = [
    # openai-community/gpt2 (and families reusing it; jina-v1-en/v2-code/roberta also add SEP)
    Family(["gpt2", "default", "gpt-2", "phi-2", "jais", "jina-es", "jina-de", "jina-v2-es",
            "jina-v2-de", "a.x-4.0", "mellum", "exaone4", "trillion", "granite-docling",
            "jina-v2-code", "roberta-bpe"],
           lambda: byte_level(True)),
    # mosaicml/mpt-7b, allenai/OLMo-1.7-7B-hf: GPT-NeoX's NFC + ByteLevel
    Family(["mpt", "olmo"], lambda: byte_level(True), nfc=True),
    # bigcode/starcoder2-3b, HuggingFaceTB/SmolLM-135M, Refact, CodeShell, EXAONE 3, Mellum2
    Family(["smollm", "starcoder", "refact", "codeshell", "exaone", "mellum2"],
           lambda: seq(DIGITS, byte_level(True))),
    # CohereForAI/c4ai-command-r-v01
    Family(["command-r"], lambda: seq(DIGITS, byte_level(True)), nfc=True),
    # tiiuae/falcon-7b: Digits and the Split run after ByteLevel, on byte-mapped text
    Family(["falcon"], lambda: seq(
        pre_tokenizers.Punctuation(behavior="contiguous"), byte_level(True),
        pre_tokenizers.Digits(individual_digits=False), split(r"[0-9][0-9][0-9]"))),
    # tiiuae/Falcon3-7B-Base: Digits after ByteLevel too
    Family(["falcon3"], lambda: seq(
        pre_tokenizers.Punctuation(behavior="contiguous"), byte_level(True), DIGITS),
        ignore_merges=True),
    # meta-llama/Meta-Llama-3-8B and the Llama-3-pattern families
    Family(["llama-bpe", "llama3", "llama-v3", "pixtral", "midm-2.0", "lfm2"],
           lambda: seq(split(LLAMA3), byte_level(False)), ignore_merges=True),
    Family(["dbrx", "smaug-bpe", "chatglm-bpe", "glm4"],
           lambda: seq(split(LLAMA3), byte_level(False))),
    # Qwen/Qwen1.5-7B
    Family(["qwen2", "deepseek-r1-qwen"], lambda: seq(split(QWEN2), byte_level(False)), nfc=True),
    # stabilityai/stablelm-2-zephyr-1_6b, Infinigence/Megrez-3B-Instruct
    Family(["stablelm2", "megrez"], lambda: seq(split(QWEN2), byte_level(False))),
    Family(["tekken"], lambda: seq(split(TEKKEN), byte_level(False)), ignore_merges=True),
    Family(["gpt-4o", "llama4", "kanana2", "minimax-m2", "talkie"],
           lambda: seq(split(GPT4O), byte_level(False))),
    Family(["seed-coder"], lambda: seq(split(SEED_CODER), byte_level(False))),
    Family(["bailingmoe", "bailingmoe2", "llada-moe"],
           lambda: seq(split(BAILING), byte_level(False))),
    # bigscience/bloom, LumiOpen/Poro-34B-chat, TurkuNLP/gpt3-finnish-small
    Family(["bloom", "poro-chat", "gpt3-finnish"], lambda: seq(split(BLOOM), byte_level(False))),
    # LumiOpen/Viking-7B
    Family(["viking"], lambda: seq(split(BLOOM), DIGITS, byte_level(False))),
    # UW/OLMo2-8B-SuperBPE-t180k
    Family(["superbpe"], lambda: seq(
        pre_tokenizers.Digits(individual_digits=False), split(r"(?=(\d{3})+(?!\d))"),
        byte_level(False))),
    Family(["deepseek-llm"], lambda: seq(
        split(r"[\r\n]"), split(DS_LATIN), split(DS_PUNCT), split(r"\s+$"), split(DS_CJK),
        DIGITS, byte_level(False))),
    # deepseek-ai/deepseek-coder-6.7b-base
    Family(["deepseek-coder"], lambda: seq(
        split(r"[\r\n]"), split(r"\s?\p{L}+"), split(r"\s?\p{P}+"), split(DS_CJK), DIGITS,
        byte_level(False))),
    Family(["deepseek-v3"], lambda: seq(
        split(r"\p{N}{1,3}"), split(DSV3_CJK), split(DSV3_MAIN), byte_level(False))),
]

# --- Corpus -----------------------------------------------------------------------------------

CORPUS = [
    "Hello world", "The quick brown fox jumps over the lazy dog.",
    "def add(a, b):\n    \"\"\"Add two numbers.\"\"\"\n    return a + b\n\n\n"
    "if __name__ == '__main__':\n    print(add(1, 2))\n",
    "#include <vector>\nint main() {\n\tstd::vector<int> v{1, 2, 3};\n\tfor (auto& x : v) x *= 2;"
    "  // double\n\treturn 0;\n}\n",
    "fn main() { let s = \"a/b/c\"; println!(\"{s:?}\"); } // path/to/file.rs",
    "1 12 123 1234 12345 123456 1234567 12345678 1234567890",
    " 1 12 123 1234567 x1234567y 3.14159 1,000,000 2024-01-15 0x1F 007 v1.2.3",
    "Numbers: ½ ² ³ ¹ ¼ ٣٤٥ ١٢٣٤ Ⅻ ① 𝟙𝟚𝟛 ０１２３",
    "it's IT'S we'll WE'LL they've I'd you're 'S 'LL 'll 'Ve a'lL 'quoted' \"double\" ſ K",
    "don't can't won't shouldn't it's I'll you're we've they'd",
    "   leading", "trailing   ", "multiple     internal      spaces", "a  b   c    d",
    "tabs\t\tand\nnewlines\n\n\nand\r\ncrlf\r\n\r\n", " \n \n\t \r\n ", "\n", " ", "\t", "\r",
    "x \n y  \n\n z   \r\n", "end with spaces and newline  \n",
    "!!!???...---", "(parens) [brackets] {braces} <angles> a.b,c!d?e a…b 1.5",
    "$100 + 5% = <x> ^ ~ | ` @user #tag", "a/b//c///d", "path/to/file:/usr/bin\n/",
    "你好，世界！这是一个测试。机器学习很有趣。", "日本語のテキストとカタカナ、ひらがな。東京は大きい。",
    "한국어 텍스트입니다. 서울", "مرحبا بالعالم، كيف حالك؟ ١٢٣ ۔", "Привет, мир! Ёжик в тумане 2024.",
    "Γειά σου Κόσμε Ωmega ΐ ώ", "नमस्ते दुनिया। हिंदी", "ภาษาไทย ສະບາຍດີ", "Ａｂｃ！？（全角）",
    "Emoji: 😀😃 👍🏽 🇺🇸 ❤️ 👩‍💻 👨‍👩‍👧‍👦 end", "Café naïve résumé e\u0301 a\u0308 \u1e0b\u0323",
    "\u00a0nbsp\u3000ideographic\u2003em space\u202fnarrow",
    "CamelCaseWord HTTPServer iPhone ǅungla",
    "<|im_start|>user\nHi 123<|im_end|>\n<|im_start|>assistant\n", "text<|endoftext|>more",
    "Mixed: The model (GPT-4) scored 92.5% on MMLU—impressive! 🚀", "a" * 200, "ab " * 100,
    "",
]

POOL = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        + list(" \t\n\r'\".,;:!?-_()[]{}<>/\\|@#$%^&*+=~`…。，、।۔،")
        + [" ", "  ", "\r\n", "'s", "'T", "'ll", "123", "4567"]
        + list("你好世界中文字日本語カタナひらがなёжиклαβγ한국어ÀéïõüÅمرحبا")
        + ["\u0301", "\u0308", "\u200d", "\u00a0", "\u3000", "\u2003", "½", "٣", "²", "Ⅻ", "①"]
        + ["😀", "👍", "🏽", "❤", "\ufe0f", "<|im_start|>", "<|endoftext|>"])


def random_texts(n, seed):
    rng = random.Random(seed)
    return ["".join(rng.choice(POOL) for _ in range(rng.randint(1, 30))) for _ in range(n)]


# --- Vocabulary, reference, GGUF ---------------------------------------------------------------

NORMAL, CONTROL, USER_DEFINED, UNUSED = 1, 3, 4, 5
SPACE = "\u0120"  # GPT-2's byte-level spelling of " "


def read_vocab(path):
    reader = gguf.GGUFReader(path)

    def field(name):
        return reader.fields[name].contents()

    meta = {k: field("tokenizer.ggml." + k) for k in ("tokens", "token_type", "merges")}
    meta["eos"] = field("tokenizer.ggml.eos_token_id")
    # Digit tokens (two and three digits, and " " + digit) appended with the lowest-priority
    # merges, so that how a family groups digits changes the ids.
    known = set(meta["tokens"])
    digits = "0123456789"
    extra = [(a, b) for a in digits for b in digits]
    extra += [(a + b, c) for a in digits for b in digits for c in digits]
    extra += [(SPACE, d) for d in digits]
    for left, right in extra:
        if left + right not in known:
            meta["tokens"].append(left + right)
            meta["token_type"].append(NORMAL)
            meta["merges"].append(f"{left} {right}")
            known.add(left + right)
    return meta


def build_reference(meta, family):
    vocab = {t: i for i, (t, ty) in enumerate(zip(meta["tokens"], meta["token_type"]))
             if ty != UNUSED}
    merges = [tuple(m.split(" ", 1)) for m in meta["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=family.ignore_merges))
    if family.nfc:
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = family.pre()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(meta["tokens"], meta["token_type"]) if ty == CONTROL])
    tok.add_tokens([AddedToken(t, special=False, normalized=False)
                    for t, ty in zip(meta["tokens"], meta["token_type"]) if ty == USER_DEFINED])
    return tok


def write_gguf(meta, pre, path):
    w = gguf.GGUFWriter(path, "qwen2")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(meta["tokens"])
    w.add_token_types(meta["token_type"])
    w.add_token_merges(meta["merges"])
    w.add_eos_token_id(meta["eos"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def run_tool(tool, model, args):
    out = subprocess.run([tool, model] + args, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        return None, out.stderr.strip()
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()], ""


def supported_names(tool, meta, work):
    """The names dspark accepts, from its error for an unknown tokenizer.ggml.pre."""
    path = os.path.join(work, "unknown.gguf")
    write_gguf({"tokens": meta["tokens"][:300], "token_type": meta["token_type"][:300],
                "merges": ["a b"], "eos": 0}, "no-such-pre", path)
    _, err = run_tool(tool, path, ["info"])
    m = re.search(r"\(supported: ([^)]*)\)", err)
    return m.group(1).split(", ") if m else None


def check_family(family, meta, tool, work, requests, failures):
    ref = build_reference(meta, family)
    expected = []
    for flags, text in requests:
        ref.encode_special_tokens = "p" not in flags
        expected.append(ref.encode(text, add_special_tokens=False).ids)
    json_path = os.path.join(work, "tokenizer.json")
    ref.save(json_path)
    sources = [("tokenizer.json for " + family.names[0], json_path)]
    for pre in family.names:
        path = os.path.join(work, pre + ".gguf")
        write_gguf(meta, pre, path)
        sources.append((pre, path))
    req_path = os.path.join(work, "requests.txt")
    with open(req_path, "w") as f:
        for flags, text in requests:
            f.write(f"{flags} {text.encode().hex()}\n")
    for label, path in sources:
        results, err = run_tool(tool, path, ["encode", req_path])
        if results is None:
            failures.append(f"{label}: tokenize_tool failed: {err}")
            continue
        bad = [(text, want, got["ids"]) for (_, text), want, got in zip(requests, expected, results)
               if got["ids"] != want]
        if len(results) != len(requests):
            failures.append(f"{label}: {len(results)} results for {len(requests)} requests")
        for text, want, got in bad[:3]:
            first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b),
                         min(len(got), len(want)))
            failures.append(f"{label} {text[:60]!r}: ids differ at {first}: dspark "
                            f"{got[first:first + 6]} vs HF {want[first:first + 6]}")
        print(f"  {label}: {len(requests) - len(bad)}/{len(requests)} texts match")
        if path != json_path:
            os.remove(path)


def main():
    args = py_util.parse_args()
    tool = py_util.built(args, "tests/tokenizer/tokenize_tool")
    model = os.path.join(py_util.models_dir(args), MODEL)
    if not os.path.exists(model):
        py_util.skip(f"{model} missing (scripts/fetch_models.py fetches it)")
    meta = read_vocab(model)
    texts = CORPUS + random_texts(150, 18)
    requests = [(flags, t) for t in texts for flags in ("p", "-")]
    failures = []
    with tempfile.TemporaryDirectory() as work:
        names = supported_names(tool, meta, work)
        tested = [n for f in FAMILIES for n in f.names]
        if names is None:
            failures.append("no '(supported: ...)' list in dspark's error for an unknown name")
        else:
            for n in sorted(set(names) - set(tested)):
                failures.append(f"'{n}' is supported by dspark but has no reference here")
            for n in sorted(set(tested) - set(names)):
                failures.append(f"'{n}' has a reference here but dspark refuses it")
        for family in FAMILIES:
            print(f"{family.names[0]}:")
            check_family(family, meta, tool, work, requests, failures)
    return py_util.report(failures)


if __name__ == "__main__":
    sys.exit(main())
