#!/usr/bin/env python3
"""Generates tiny random models in real formats for the tests.

For each architecture (llama, qwen2, qwen3) it writes GGUF files with assorted weight types
(F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 through gguf.quants; Q4_K, Q5_K, Q6_K through the
K-quant encoders below, since the gguf package cannot quantize K-quants) and Hugging Face
folders (config.json, model.safetensors or shards with model.safetensors.index.json, F32 / F16 /
BF16), each with a small byte-level BPE tokenizer (GGUF tokenizer.ggml.* metadata, or
tokenizer.json + tokenizer_config.json) so the CLI can run on them.

The GGUF llama files hold the same weights as the Hugging Face llama folders, with q/k rows
permuted the way llama.cpp's converter does, so a test can check that both RoPE layouts agree.

Writes <out>/manifest.json describing every model (path, format, arch, weight type), and
<out>/broken/ with deliberately malformed models (unknown architecture, missing tensor, wrong
shape, weight type dspark cannot compute with, unsupported RoPE scaling) for the error tests.
Also writes tiny DSpark drafter checkpoints (Qwen3DSparkModel), listed under "drafters" in the
manifest with the target each belongs to: dspark-qwen3/ (random, BF16) for the qwen3 targets,
dspark-qwen3-aligned/ built from the second layer of qwen3-drafted-f32.gguf, a qwen3 target
whose first layer barely moves the residual stream, so its drafts often match the target (the
engine's speculation tests need accepted drafts), and for the llama target llama-f32.gguf (whose
q/k rows are permuted for the interleaved RoPE, while draft layers rotate Hugging Face style):
dspark-llama/ (random, F32, with copies of the target's embedding and head) and
dspark-llama-shared/ (the same tensors minus embed_tokens.weight and lm_head.weight, so the
drafter reads the target's own).
Does nothing when the manifest is already of this generator's version (--force regenerates).
Usage: make_tiny_models.py OUT_DIR [--force]
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np

GENERATOR_VERSION = 7


class Spec:
    """Hyper-parameters of one tiny model."""

    def __init__(self, arch, d_model=64, n_layers=2, n_heads=4, n_kv=2, head_dim=None, d_ff=128,
                 tied=False, rope_theta=10000.0, eps=1e-5, scaling=None, context=2048):
        self.arch = arch
        self.d_model = d_model
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.n_kv = n_kv
        self.head_dim = head_dim or d_model // n_heads
        self.d_ff = d_ff
        self.tied = tied
        self.rope_theta = rope_theta
        self.eps = eps
        self.scaling = scaling  # None or dict in Hugging Face rope_scaling form
        self.context = context
        self.vocab = 0  # set from the tokenizer


def random_weights(spec, seed):
    """Hugging Face named float32 weights; scales keep activations and logits well spread."""
    rng = np.random.default_rng(seed)

    def mat(rows, cols, gain=1.0):
        return (rng.standard_normal((rows, cols)) * gain / math.sqrt(cols)).astype(np.float32)

    def norm(n):
        return (1.0 + 0.2 * rng.standard_normal(n)).astype(np.float32)

    def vec(n, scale):
        return (scale * rng.standard_normal(n)).astype(np.float32)

    # Residual branches (o, down) at half gain keep these random nets from amplifying rounding
    # noise too much, so the reference comparison stays meaningful.
    d, hd = spec.d_model, spec.head_dim
    w = {"model.embed_tokens.weight": vec((spec.vocab, d), 0.8)}
    for i in range(spec.n_layers):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = norm(d)
        w[p + "self_attn.q_proj.weight"] = mat(spec.n_heads * hd, d)
        w[p + "self_attn.k_proj.weight"] = mat(spec.n_kv * hd, d)
        w[p + "self_attn.v_proj.weight"] = mat(spec.n_kv * hd, d)
        w[p + "self_attn.o_proj.weight"] = mat(d, spec.n_heads * hd, 0.5)
        if spec.arch == "qwen2":
            w[p + "self_attn.q_proj.bias"] = vec(spec.n_heads * hd, 0.3)
            w[p + "self_attn.k_proj.bias"] = vec(spec.n_kv * hd, 0.3)
            w[p + "self_attn.v_proj.bias"] = vec(spec.n_kv * hd, 0.3)
        if spec.arch == "qwen3":
            w[p + "self_attn.q_norm.weight"] = norm(hd)
            w[p + "self_attn.k_norm.weight"] = norm(hd)
        w[p + "post_attention_layernorm.weight"] = norm(d)
        w[p + "mlp.gate_proj.weight"] = mat(spec.d_ff, d)
        w[p + "mlp.up_proj.weight"] = mat(spec.d_ff, d)
        w[p + "mlp.down_proj.weight"] = mat(d, spec.d_ff, 0.5)
    w["model.norm.weight"] = norm(d)
    if not spec.tied:
        w["lm_head.weight"] = mat(spec.vocab, d, 3.0)
    return w


# ---------------------------------------------------------------- Hugging Face folders

HF_ARCH = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}
ST_DTYPE = {"F32": "F32", "F16": "F16", "BF16": "BF16"}


def to_storage(array, dtype):
    """Bytes of a float32 array stored as F32, F16 or BF16 (round to nearest even)."""
    if dtype == "F32":
        return array.astype("<f4").tobytes()
    if dtype == "F16":
        return array.astype("<f2").tobytes()
    bits = array.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype("<u2").tobytes()


def write_safetensors(path, tensors, dtype):
    """Minimal safetensors writer (the safetensors numpy API has no bfloat16)."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        blob = to_storage(tensors[name], dtype)
        header[name] = {"dtype": ST_DTYPE[dtype], "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    return offset


def hf_config(spec, tok_info, dtype):
    config = {
        "architectures": [HF_ARCH[spec.arch]],
        "model_type": spec.arch,
        "hidden_size": spec.d_model,
        "intermediate_size": spec.d_ff,
        "num_hidden_layers": spec.n_layers,
        "num_attention_heads": spec.n_heads,
        "num_key_value_heads": spec.n_kv,
        "head_dim": spec.head_dim,
        "rms_norm_eps": spec.eps,
        "rope_theta": spec.rope_theta,
        "max_position_embeddings": spec.context,
        "vocab_size": spec.vocab,
        "tie_word_embeddings": spec.tied,
        "torch_dtype": {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[dtype],
        "bos_token_id": tok_info["bos_id"],
        "eos_token_id": tok_info["eos_id"],
        "hidden_act": "silu",
    }
    if spec.arch == "qwen2":
        config["use_sliding_window"] = False
    if spec.arch == "llama":
        config["attention_bias"] = False
    if spec.scaling:
        config["rope_scaling"] = spec.scaling
    return config


def write_hf(folder, spec, weights, dtype, tok, n_shards=1):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(hf_config(spec, tok.info, dtype), f, indent=2)
    tok.write_hf(folder)
    if n_shards == 1:
        write_safetensors(os.path.join(folder, "model.safetensors"), weights, dtype)
        return
    names = sorted(weights)
    weight_map, total = {}, 0
    for s in range(n_shards):
        part = names[s::n_shards]
        fname = f"model-{s + 1:05d}-of-{n_shards:05d}.safetensors"
        shard = {n: weights[n] for n in part}
        total += write_safetensors(os.path.join(folder, fname), shard, dtype)
        weight_map.update({n: fname for n in part})
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


# ---------------------------------------------------------------- K-quant encoders
# Plain (not error-optimal) encoders for ggml's super-block formats. encode_tensor checks each
# result with gguf.quants.dequantize, the package's independent reading of the layout.

QK_K = 256


def _f16(values):
    return np.asarray(values, dtype=np.float16)


def _pack_scale_min_6bit(sc, mn):
    """12 bytes holding eight 6-bit scales and eight 6-bit mins (ggml's get_scale_min_k4)."""
    out = np.zeros((sc.shape[0], 12), dtype=np.uint8)
    out[:, 0:4] = (sc[:, 0:4] & 63) | ((sc[:, 4:8] >> 4) << 6)
    out[:, 4:8] = (mn[:, 0:4] & 63) | ((mn[:, 4:8] >> 4) << 6)
    out[:, 8:12] = (sc[:, 4:8] & 15) | ((mn[:, 4:8] & 15) << 4)
    return out


def _affine_subblocks(x, levels):
    """x: [n, 8, 32] -> (d, dmin, sc, mn, q) with x ~= d*sc*q - dmin*mn, q in [0, levels]."""
    lo = np.minimum(x.min(axis=2), 0.0)
    hi = x.max(axis=2)
    step = (hi - lo) / levels
    d = _f16(step.max(axis=1) / 63.0).astype(np.float32)
    dmin = _f16((-lo).max(axis=1) / 63.0).astype(np.float32)
    safe_d = np.where(d > 0, d, 1.0)[:, None]
    safe_dmin = np.where(dmin > 0, dmin, 1.0)[:, None]
    sc = np.clip(np.round(step / safe_d), 0, 63).astype(np.uint8)
    mn = np.clip(np.round(-lo / safe_dmin), 0, 63).astype(np.uint8)
    scale = (d[:, None] * sc)[:, :, None]
    offset = (dmin[:, None] * mn)[:, :, None]
    q = np.round((x + offset) / np.where(scale > 0, scale, 1.0))
    q = np.clip(q, 0, levels).astype(np.uint8)
    return d, dmin, sc, mn, q


def encode_q4_k(array):
    rows, cols = array.shape
    x = array.reshape(-1, 8, 32).astype(np.float32)
    d, dmin, sc, mn, q = _affine_subblocks(x, 15)
    q = q.reshape(-1, 4, 2, 32)  # [block, pair of sub-blocks, low/high nibble, 32]
    qs = (q[:, :, 0, :] | (q[:, :, 1, :] << 4)).reshape(-1, 128)
    head = np.stack([_f16(d), _f16(dmin)], axis=1).view(np.uint8).reshape(-1, 4)
    blocks = np.concatenate([head, _pack_scale_min_6bit(sc, mn), qs], axis=1)
    return blocks.reshape(rows, cols // QK_K * 144)


def encode_q5_k(array):
    rows, cols = array.shape
    x = array.reshape(-1, 8, 32).astype(np.float32)
    d, dmin, sc, mn, q = _affine_subblocks(x, 31)
    q = q.reshape(-1, 4, 2, 32)
    low = q & 15
    qs = (low[:, :, 0, :] | (low[:, :, 1, :] << 4)).reshape(-1, 128)
    high = (q >> 4).astype(np.uint8)  # bit 2g + h of qh[l] is the fifth bit of sub-block 2g + h
    qh = np.zeros((q.shape[0], 32), dtype=np.uint8)
    for g in range(4):
        for h in range(2):
            qh |= high[:, g, h, :] << (2 * g + h)
    head = np.stack([_f16(d), _f16(dmin)], axis=1).view(np.uint8).reshape(-1, 4)
    blocks = np.concatenate([head, _pack_scale_min_6bit(sc, mn), qh, qs], axis=1)
    return blocks.reshape(rows, cols // QK_K * 176)


def encode_q6_k(array):
    rows, cols = array.shape
    x = array.reshape(-1, 16, 16).astype(np.float32)
    step = np.abs(x).max(axis=2) / 31.0
    d = _f16(step.max(axis=1) / 127.0).astype(np.float32)
    sc = np.clip(np.round(step / np.where(d > 0, d, 1.0)[:, None]), 0, 127).astype(np.int8)
    scale = (d[:, None] * sc.astype(np.float32))[:, :, None]
    q = np.clip(np.round(x / np.where(scale > 0, scale, 1.0)), -32, 31).astype(np.int16) + 32
    q = q.astype(np.uint8).reshape(-1, 2, 4, 32)  # [block, half, quarter, 32]
    ql = np.concatenate([(q[:, :, 0] & 15) | ((q[:, :, 2] & 15) << 4),
                         (q[:, :, 1] & 15) | ((q[:, :, 3] & 15) << 4)], axis=2).reshape(-1, 128)
    qh = ((q[:, :, 0] >> 4) | ((q[:, :, 1] >> 4) << 2) | ((q[:, :, 2] >> 4) << 4)
          | ((q[:, :, 3] >> 4) << 6)).reshape(-1, 64)
    blocks = np.concatenate([ql, qh, sc.view(np.uint8), _f16(d).view(np.uint8).reshape(-1, 2)],
                            axis=1)
    return blocks.reshape(rows, cols // QK_K * 210)


KQUANT_ENCODERS = {"Q4_K": encode_q4_k, "Q5_K": encode_q5_k, "Q6_K": encode_q6_k}


# ---------------------------------------------------------------- tokenizer

CORPUS = """\
The quick brown fox jumps over the lazy dog. A small model reads the text and predicts the next
token; speculative decoding lets a cheap drafter propose several tokens that the target checks.
def fibonacci(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a
print(fibonacci(10))  # 55
Once upon a time there was a little robot who liked to count: 1, 2, 3, 42, 1000.
Questions and answers: what is the capital of France? Paris is the capital of France.
for (int i = 0; i < n; ++i) { sum += values[i] * weights[i]; }
The weather today is sunny with a light breeze from the west, and the temperature is mild.
Hello, world! This is a test of the tokenizer with some punctuation: (brackets), [lists], {sets}.
User: please write a short poem about the sea.
Assistant: The sea is wide, the sea is deep, it sings the sailors all to sleep.
import numpy as np
x = np.zeros((4, 4), dtype=np.float32)
class Stack:
    def __init__(self):
        self.items = []
    def push(self, item):
        self.items.append(item)
"""

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# ChatML, as the Qwen and SmolLM2 models use it.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}")

# Qwen2's pre-tokenizer split (llama.cpp's tokenizer.ggml.pre "qwen2").
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
               r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


class TinyTokenizer:
    """A byte-level BPE trained on CORPUS, written as tokenizer.json and as GGUF metadata."""

    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.vocab_size = tokenizer.get_vocab_size()
        eos = tokenizer.token_to_id("<|im_end|>")
        self.info = {"bos_id": tokenizer.token_to_id("<|endoftext|>"), "eos_id": eos}

    @staticmethod
    def train(vocab_size=400):
        from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                      show_progress=False)
        tok.train_from_iterator(CORPUS.splitlines(keepends=True), trainer)
        return TinyTokenizer(tok)

    def write_hf(self, folder):
        self.tok.save(os.path.join(folder, "tokenizer.json"))
        config = {
            "bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
            "add_bos_token": False, "add_eos_token": False, "chat_template": CHAT_TEMPLATE,
            "model_max_length": 2048, "tokenizer_class": "PreTrainedTokenizerFast",
        }
        with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
            json.dump(config, f, indent=2)

    def write_gguf(self, writer):
        model = json.loads(self.tok.to_str())["model"]
        by_id = sorted(model["vocab"].items(), key=lambda kv: kv[1])
        assert [i for _, i in by_id] == list(range(len(by_id)))
        specials = set(SPECIAL_TOKENS)
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre("qwen2")
        writer.add_token_list([t for t, _ in by_id])
        writer.add_token_types([3 if t in specials else 1 for t, _ in by_id])
        writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in model["merges"]])
        writer.add_bos_token_id(self.info["bos_id"])
        writer.add_eos_token_id(self.info["eos_id"])
        writer.add_add_bos_token(False)
        writer.add_chat_template(CHAT_TEMPLATE)


# ---------------------------------------------------------------- GGUF files

def interleave_rope_rows(w, n_heads):
    """Reorders each head's rows from halves (x0..x_{h/2-1}, y0..) to pairs (x0, y0, x1, y1, ..).

    This is what llama.cpp's converter does to llama q/k so that its rotation of adjacent pairs
    equals Hugging Face's rotate_half."""
    rows = w.shape[0]
    head = rows // n_heads
    out = w.reshape(n_heads, 2, head // 2, *w.shape[1:])
    return np.ascontiguousarray(np.swapaxes(out, 1, 2).reshape(w.shape))


def gguf_tensors(spec, weights):
    """(gguf name, float32 array, role) in GGUF naming and layout."""
    out = [("token_embd.weight", weights["model.embed_tokens.weight"], "embd")]
    for i in range(spec.n_layers):
        p, g = f"model.layers.{i}.", f"blk.{i}."
        q = weights[p + "self_attn.q_proj.weight"]
        k = weights[p + "self_attn.k_proj.weight"]
        if spec.arch == "llama":
            q = interleave_rope_rows(q, spec.n_heads)
            k = interleave_rope_rows(k, spec.n_kv)
        out += [
            (g + "attn_norm.weight", weights[p + "input_layernorm.weight"], "norm"),
            (g + "attn_q.weight", q, "attn"),
            (g + "attn_k.weight", k, "attn"),
            (g + "attn_v.weight", weights[p + "self_attn.v_proj.weight"], "attn_v"),
            (g + "attn_output.weight", weights[p + "self_attn.o_proj.weight"], "attn"),
            (g + "ffn_norm.weight", weights[p + "post_attention_layernorm.weight"], "norm"),
            (g + "ffn_gate.weight", weights[p + "mlp.gate_proj.weight"], "ffn"),
            (g + "ffn_up.weight", weights[p + "mlp.up_proj.weight"], "ffn"),
            (g + "ffn_down.weight", weights[p + "mlp.down_proj.weight"], "ffn_down"),
        ]
        if spec.arch == "qwen2":
            for n in "qkv":
                out.append((g + f"attn_{n}.bias", weights[p + f"self_attn.{n}_proj.bias"], "norm"))
        if spec.arch == "qwen3":
            out.append((g + "attn_q_norm.weight", weights[p + "self_attn.q_norm.weight"], "norm"))
            out.append((g + "attn_k_norm.weight", weights[p + "self_attn.k_norm.weight"], "norm"))
    out.append(("output_norm.weight", weights["model.norm.weight"], "norm"))
    if not spec.tied:
        out.append(("output.weight", weights["lm_head.weight"], "output"))
    return out


def llama3_rope_factors(spec):
    """Per-frequency divisors llama.cpp stores as rope_freqs.weight for llama3 scaling."""
    s = spec.scaling
    factor, low, high = s["factor"], s["low_freq_factor"], s["high_freq_factor"]
    orig = s["original_max_position_embeddings"]
    out = []
    for i in range(spec.head_dim // 2):
        freq = spec.rope_theta ** (-2.0 * i / spec.head_dim)
        wavelen = 2 * math.pi / freq
        if wavelen < orig / high:
            out.append(1.0)
        elif wavelen > orig / low:
            out.append(factor)
        else:
            smooth = (orig / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def encode_tensor(array, type_name):
    """(data, raw_dtype) for GGUFWriter.add_tensor."""
    from gguf import GGMLQuantizationType as T
    from gguf import quants
    if type_name == "F32":
        return array.astype(np.float32), None
    if type_name == "F16":
        return array.astype(np.float16), None
    if type_name in KQUANT_ENCODERS:
        blocks = KQUANT_ENCODERS[type_name](array)
        err = np.abs(quants.dequantize(blocks, T[type_name]) - array).max()
        if err > 0.2 * np.abs(array).max():  # 4 bits and up stay well inside this
            raise AssertionError(f"{type_name} encoder: max error {err} for max {abs(array).max()}")
        return blocks, T[type_name]
    qtype = T[type_name]
    return quants.quantize(array.astype(np.float32), qtype), qtype


def write_gguf(path, spec, weights, types, tok, name, arch=None, edit=None, extra_kv=None):
    """types maps a role (embd, attn, attn_v, ffn, ffn_down, output) to a weight type name.

    arch, edit (a function over the (name, array, role) list) and extra_kv (key -> string) make
    the deliberately broken files of broken_models()."""
    import gguf
    a = arch or spec.arch
    w = gguf.GGUFWriter(path, a)
    w.add_name(name)
    w.add_uint32(f"{a}.block_count", spec.n_layers)
    w.add_uint32(f"{a}.context_length", spec.context)
    w.add_uint32(f"{a}.embedding_length", spec.d_model)
    w.add_uint32(f"{a}.feed_forward_length", spec.d_ff)
    w.add_uint32(f"{a}.attention.head_count", spec.n_heads)
    w.add_uint32(f"{a}.attention.head_count_kv", spec.n_kv)
    if spec.head_dim != spec.d_model // spec.n_heads or spec.arch == "qwen3":
        w.add_uint32(f"{a}.attention.key_length", spec.head_dim)
        w.add_uint32(f"{a}.attention.value_length", spec.head_dim)
    w.add_float32(f"{a}.rope.freq_base", spec.rope_theta)
    w.add_uint32(f"{a}.rope.dimension_count", spec.head_dim)
    w.add_float32(f"{a}.attention.layer_norm_rms_epsilon", spec.eps)
    w.add_uint32(f"{a}.vocab_size", spec.vocab)
    scaling = spec.scaling or {}
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind == "linear":
        w.add_string(f"{a}.rope.scaling.type", "linear")
        w.add_float32(f"{a}.rope.scaling.factor", scaling["factor"])
    elif kind == "yarn":
        w.add_string(f"{a}.rope.scaling.type", "yarn")
        w.add_float32(f"{a}.rope.scaling.yarn_beta_fast", scaling.get("beta_fast", 32.0))
        w.add_float32(f"{a}.rope.scaling.yarn_beta_slow", scaling.get("beta_slow", 1.0))
        w.add_float32(f"{a}.rope.scaling.factor", scaling["factor"])
        w.add_uint32(f"{a}.rope.scaling.original_context_length",
                     scaling["original_max_position_embeddings"])
    w.add_uint32("general.quantization_version", 2)
    for key, value in (extra_kv or {}).items():
        w.add_string(key, value)
    tok.write_gguf(w)
    tensors = gguf_tensors(spec, weights)
    for tname, array, role in (edit(tensors) if edit else tensors):
        if role in ("norm", "raw"):
            w.add_tensor(tname, array if role == "raw" else array.astype(np.float32))
            continue
        data, raw = encode_tensor(array, types[role])
        w.add_tensor(tname, data, raw_dtype=raw)
    if kind == "llama3":
        w.add_tensor("rope_freqs.weight", llama3_rope_factors(spec))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def uniform(t, embd=None, output=None):
    """Roles all in type t except the given embedding/output types."""
    roles = {r: t for r in ("attn", "attn_v", "ffn", "ffn_down")}
    roles["embd"] = embd or t
    roles["output"] = output or t
    return roles


# ---------------------------------------------------------------- the model set

def model_set():
    """(name, spec, seed, outputs) where outputs lists (kind, file name, weight types)."""
    llama3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
              "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
    yarn = {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 256,
            "beta_fast": 32.0, "beta_slow": 1.0}
    return [
        ("llama", Spec("llama"), 1, [
            ("hf", "llama-hf-f32", "F32", 1),
            ("hf", "llama-hf-bf16", "BF16", 1),
            ("gguf", "llama-f32.gguf", uniform("F32")),
            ("gguf", "llama-q8_0.gguf", uniform("Q8_0")),
            ("gguf", "llama-q4_0.gguf", uniform("Q4_0", embd="Q8_0", output="Q8_0")),
            ("gguf", "llama-q5_1.gguf", uniform("Q5_1", embd="F16", output="F16")),
        ]),
        ("llama-tied", Spec("llama", n_layers=3, tied=True, rope_theta=100000.0), 2, [
            ("gguf", "llama-tied-q4_1.gguf", uniform("Q4_1", embd="Q8_0")),
            ("gguf", "llama-tied-f16.gguf", uniform("F16")),
            ("hf", "llama-tied-hf-f16", "F16", 2),
        ]),
        ("llama-scaled", Spec("llama", scaling=llama3, rope_theta=500000.0), 3, [
            ("hf", "llama3-scaling-hf-f32", "F32", 1),
            ("gguf", "llama3-scaling-f32.gguf", uniform("F32")),
        ]),
        ("llama-linear", Spec("llama", scaling={"type": "linear", "factor": 4.0}), 4, [
            ("gguf", "llama-linear-bf16.gguf", uniform("BF16")),
            ("hf", "llama-linear-hf-f32", "F32", 1),
        ]),
        ("qwen2", Spec("qwen2", eps=1e-6, rope_theta=1000000.0), 5, [
            ("gguf", "qwen2-q5_0.gguf", dict(uniform("Q5_0", embd="Q5_0", output="Q8_0"),
                                             attn_v="Q8_0")),
            ("gguf", "qwen2-f32.gguf", uniform("F32")),
            ("hf", "qwen2-hf-f32", "F32", 1),
        ]),
        ("qwen2-yarn", Spec("qwen2", eps=1e-6, scaling=yarn), 10, [
            ("hf", "qwen2-yarn-hf-f32", "F32", 1),
            ("gguf", "qwen2-yarn-q8_0.gguf", uniform("Q8_0")),
        ]),
        ("qwen2-tied", Spec("qwen2", tied=True, eps=1e-6), 6, [
            ("hf", "qwen2-tied-hf-bf16", "BF16", 1),
            ("gguf", "qwen2-tied-q8_0.gguf", uniform("Q8_0")),
        ]),
        ("qwen3", Spec("qwen3", head_dim=32, eps=1e-6, rope_theta=1000000.0), 7, [
            ("gguf", "qwen3-q4_0.gguf", uniform("Q4_0", embd="Q8_0", output="Q8_0")),
            ("gguf", "qwen3-f16.gguf", uniform("F16")),
            ("hf", "qwen3-hf-f16-sharded", "F16", 3),
        ]),
        ("llama-kquant", Spec("llama", d_model=256, d_ff=512, n_heads=4, n_kv=2), 8, [
            ("gguf", "llama-q4_k.gguf", dict(uniform("Q4_K", embd="Q6_K", output="Q6_K"),
                                             ffn_down="Q6_K")),
        ]),
        ("qwen2-kquant", Spec("qwen2", d_model=256, d_ff=512, n_heads=4, n_kv=1, eps=1e-6), 9, [
            ("gguf", "qwen2-q5_k.gguf", dict(uniform("Q5_K", embd="Q5_K", output="Q6_K"),
                                             attn_v="Q6_K")),
        ]),
        # The target of dspark-qwen3-aligned (see near_identity_first_layer).
        ("qwen3-drafted", Spec("qwen3", head_dim=32, eps=1e-6, rope_theta=1000000.0), 11, [
            ("gguf", "qwen3-drafted-f32.gguf", uniform("F32")),
        ]),
    ]


# ---------------------------------------------------------------- DSpark drafter checkpoint



def dspark_checkpoint(spec, target_weights, seed):
    """(config additions, tensors) of a tiny Qwen3DSparkModel drafter for a 2-layer target.

    Layout as in dspark-spec.md section 1: no "model." prefix, frozen copies of the target's
    embedding and head, fc over the concatenated features of target_layer_ids, a vanilla
    rank-8 Markov head and a confidence head over [h ; W1[prev]]."""
    rng = np.random.default_rng(seed)
    layer_ids = [-1, 0]
    rank, d, hd = 8, spec.d_model, spec.head_dim

    def mat(rows, cols, gain=1.0):
        return (rng.standard_normal((rows, cols)) * gain / math.sqrt(cols)).astype(np.float32)

    def norm(n):
        return (1.0 + 0.2 * rng.standard_normal(n)).astype(np.float32)

    w = {
        "embed_tokens.weight": target_weights["model.embed_tokens.weight"],
        "lm_head.weight": target_weights["lm_head.weight"],
        "fc.weight": mat(d, len(layer_ids) * d),
        "hidden_norm.weight": norm(d),
        "norm.weight": norm(d),
        # Bias = W2 . W1[prev]: unit-scale rows keep the bigram term comparable to the logits.
        "markov_head.markov_w1.weight": rng.standard_normal((spec.vocab, rank)).astype(np.float32),
        "markov_head.markov_w2.weight": mat(spec.vocab, rank),
        "confidence_head.proj.weight": mat(1, d + rank),
        "confidence_head.proj.bias": np.array([0.5], dtype=np.float32),
    }
    n_draft = 2
    for i in range(n_draft):
        p = f"layers.{i}."
        w[p + "input_layernorm.weight"] = norm(d)
        w[p + "post_attention_layernorm.weight"] = norm(d)
        w[p + "self_attn.q_proj.weight"] = mat(spec.n_heads * hd, d)
        w[p + "self_attn.k_proj.weight"] = mat(spec.n_kv * hd, d)
        w[p + "self_attn.v_proj.weight"] = mat(spec.n_kv * hd, d)
        w[p + "self_attn.o_proj.weight"] = mat(d, spec.n_heads * hd, 0.5)
        w[p + "self_attn.q_norm.weight"] = norm(hd)
        w[p + "self_attn.k_norm.weight"] = norm(hd)
        w[p + "mlp.gate_proj.weight"] = mat(spec.d_ff, d)
        w[p + "mlp.up_proj.weight"] = mat(spec.d_ff, d)
        w[p + "mlp.down_proj.weight"] = mat(d, spec.d_ff, 0.5)
    extra = {
        "architectures": ["Qwen3DSparkModel"],
        "num_hidden_layers": n_draft,
        "num_target_layers": spec.n_layers,
        "block_size": 4,
        "target_layer_ids": layer_ids,
        "mask_token_id": spec.vocab - 1,
        "num_anchors": 16,
        "tie_word_embeddings": False,
        "layer_types": ["full_attention"] * n_draft,
        "markov_rank": rank,
        "markov_head_type": "vanilla",
        "enable_confidence_head": True,
        "confidence_head_with_markov": True,
    }
    return extra, w


def near_identity_first_layer(weights):
    """Scales layer 0's output branches down so it barely changes the residual stream, and makes
    layer 1's attention sharp and strong, so the next token depends on the context (a drafter
    handed the wrong context then guesses wrong)."""
    for name in ("model.layers.0.self_attn.o_proj.weight", "model.layers.0.mlp.down_proj.weight"):
        weights[name] = (weights[name] * 0.02).astype(np.float32)
    for name, gain in (("model.layers.1.self_attn.o_proj.weight", 6.0),
                       ("model.layers.1.self_attn.q_norm.weight", 2.0),
                       ("model.layers.1.self_attn.k_norm.weight", 2.0)):
        weights[name] = (weights[name] * gain).astype(np.float32)


def aligned_dspark_checkpoint(spec, target_weights, seed):
    """A drafter whose one layer is the target's layer 1 reading the features after layer 0
    (fc = identity, hidden_norm = layer 1's input norm): the context K/V equal the target's
    layer-1 K/V, and with a near-identity layer 0 (near_identity_first_layer) the anchor's block
    position predicts nearly what the target does. No Markov bias (W2 = 0), a constant
    confidence (0.82) for the calibrator to correct."""
    rng = np.random.default_rng(seed)
    rank, d = 8, spec.d_model
    src = "model.layers.1."
    # The mask token embeds to zeros here: its keys score 0 and carry no value, so the block's
    # mask positions barely disturb the anchor's attention.
    embed = target_weights["model.embed_tokens.weight"].copy()
    embed[spec.vocab - 1] = 0.0
    w = {
        "embed_tokens.weight": embed,
        "lm_head.weight": target_weights["lm_head.weight"],
        "fc.weight": np.eye(d, dtype=np.float32),
        "hidden_norm.weight": target_weights[src + "input_layernorm.weight"],
        "norm.weight": target_weights["model.norm.weight"],
        "markov_head.markov_w1.weight": rng.standard_normal((spec.vocab, rank)).astype(np.float32),
        "markov_head.markov_w2.weight": np.zeros((spec.vocab, rank), dtype=np.float32),
        "confidence_head.proj.weight": np.zeros((1, d + rank), dtype=np.float32),
        "confidence_head.proj.bias": np.array([1.5], dtype=np.float32),
    }
    for name, value in target_weights.items():
        if name.startswith(src):
            w["layers.0." + name[len(src):]] = value
    extra = {
        "architectures": ["Qwen3DSparkModel"],
        "num_hidden_layers": 1,
        "num_target_layers": spec.n_layers,
        "block_size": 4,
        "target_layer_ids": [0],
        "mask_token_id": spec.vocab - 1,
        "num_anchors": 16,
        "tie_word_embeddings": False,
        "layer_types": ["full_attention"],
        "markov_rank": rank,
        "markov_head_type": "vanilla",
        "enable_confidence_head": True,
        "confidence_head_with_markov": True,
    }
    return extra, w


def shared_dspark_checkpoint(spec, target_weights, seed):
    """dspark_checkpoint without embed_tokens.weight and lm_head.weight: the drafter then uses
    the target's own token embedding and output head (the other tensors are the same as
    dspark_checkpoint's for the same seed)."""
    extra, w = dspark_checkpoint(spec, target_weights, seed)
    for name in ("embed_tokens.weight", "lm_head.weight"):
        del w[name]
    return extra, w


# (folder, target model file, checkpoint builder, weight type, seed)
DSPARK_DRAFTERS = [
    ("dspark-qwen3", "qwen3-f16.gguf", dspark_checkpoint, "BF16", 12),
    ("dspark-qwen3-aligned", "qwen3-drafted-f32.gguf", aligned_dspark_checkpoint, "F32", 13),
    # F32 like the target: the copies equal the target's tensors bit for bit.
    ("dspark-llama", "llama-f32.gguf", dspark_checkpoint, "F32", 14),
    ("dspark-llama-shared", "llama-f32.gguf", shared_dspark_checkpoint, "F32", 14),
]


def write_dspark(folder, spec, target_weights, tok, build, dtype, seed):
    """The checkpoint as save_pretrained writes it: the target's config plus the DSpark keys.
    Returns the number of draft layers."""
    os.makedirs(folder, exist_ok=True)
    extra, weights = build(spec, target_weights, seed)
    config = hf_config(spec, tok.info, dtype)
    config.update(extra)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    write_safetensors(os.path.join(folder, "model.safetensors"), weights, dtype)
    return extra["num_hidden_layers"]


def broken_models(out, tok):
    """Files that must be rejected with a clear error; the gtests check each message."""
    spec = Spec("llama")
    spec.vocab = tok.vocab_size
    weights = random_weights(spec, 11)
    folder = os.path.join(out, "broken")
    os.makedirs(folder, exist_ok=True)
    types = uniform("Q8_0")

    def drop(name):
        return lambda ts: [t for t in ts if t[0] != name]

    def reshape(name, rows):
        return lambda ts: [(n, a[:rows] if n == name else a, r) for n, a, r in ts]

    def as_int32(name):
        return lambda ts: [(n, a.astype(np.int32), "raw") if n == name else (n, a, r)
                           for n, a, r in ts]

    gguf_cases = {
        "unknown-arch.gguf": dict(arch="gpt2"),
        "missing-tensor.gguf": dict(edit=drop("blk.1.ffn_up.weight")),
        "wrong-shape.gguf": dict(edit=reshape("blk.0.attn_k.weight", 16)),
        "bad-dtype.gguf": dict(edit=as_int32("blk.0.ffn_gate.weight")),
        "bad-rope-scaling.gguf": dict(extra_kv={"llama.rope.scaling.type": "longrope"}),
    }
    for fname, kw in gguf_cases.items():
        write_gguf(os.path.join(folder, fname), spec, weights, types, tok, fname, **kw)
    write_hf(os.path.join(folder, "hf-unknown-arch"), spec, weights, "F32", tok)
    with open(os.path.join(folder, "hf-unknown-arch", "config.json")) as f:
        config = json.load(f)
    config["architectures"] = ["GPT2LMHeadModel"]
    with open(os.path.join(folder, "hf-unknown-arch", "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    no_head = {n: a for n, a in weights.items() if n != "lm_head.weight"}
    write_hf(os.path.join(folder, "hf-missing-lm-head"), spec, no_head, "F32", tok)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--force", action="store_true", help="regenerate even if up to date")
    args = parser.parse_args()
    out = os.path.abspath(args.out_dir)
    manifest_path = os.path.join(out, "manifest.json")
    if not args.force and os.path.exists(manifest_path):
        with open(manifest_path) as f:
            if json.load(f).get("version") == GENERATOR_VERSION:
                print(f"tiny models in {out} are up to date")
                return 0
    os.makedirs(out, exist_ok=True)
    tok = TinyTokenizer.train()
    manifest = {"version": GENERATOR_VERSION, "models": [], "drafters": []}
    for group, spec, seed, outputs in model_set():
        spec.vocab = tok.vocab_size
        weights = random_weights(spec, seed)
        if group == "qwen3-drafted":
            near_identity_first_layer(weights)
        for folder, target, build, dtype, drafter_seed in DSPARK_DRAFTERS:
            if not any(entry[1] == target for entry in outputs):
                continue
            n_draft = write_dspark(os.path.join(out, folder), spec, weights, tok, build, dtype,
                                   drafter_seed)
            # Its own list: "models" holds only what Model::load reads (the model tests run
            # every entry there).
            manifest["drafters"].append({
                "name": folder, "group": group, "format": "dspark", "arch": "qwen3",
                "weight_type": dtype, "path": folder, "vocab": spec.vocab,
                "n_layers": n_draft, "d_model": spec.d_model, "target": target,
            })
        for entry in outputs:
            if entry[0] == "hf":
                _, name, dtype, shards = entry
                write_hf(os.path.join(out, name), spec, weights, dtype, tok, shards)
                wtype = dtype
            else:
                _, name, types = entry
                write_gguf(os.path.join(out, name), spec, weights, types, tok, f"tiny {name}")
                wtype = types["attn"]
            manifest["models"].append({
                "name": name, "group": group, "format": entry[0], "arch": spec.arch,
                "weight_type": wtype, "path": name, "vocab": spec.vocab,
                "n_layers": spec.n_layers, "d_model": spec.d_model,
            })
    broken_models(out, tok)
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=2)
    print(f"wrote {len(manifest['models'])} tiny models to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
