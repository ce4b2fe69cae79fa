"""Independent NumPy forward of llama / qwen2 / qwen3 models, for checking dspark's logits.

Weights come from the `gguf` package (GGUF: parsed and dequantized by gguf.GGUFReader and
gguf.quants.dequantize) or from the safetensors files of a Hugging Face folder (parsed here, since
the safetensors NumPy API has no bfloat16). Norms, RoPE, attention and the MLP are written out
below in plain NumPy; nothing is shared with dspark. Activations stay in floating point (dspark
quantizes them to 8 bits for quantized matmuls, as llama.cpp does), so logits differ slightly.
"""
import json
import math
import os
import struct

import numpy as np

SUPPORTED = ("llama", "qwen2", "qwen3")
# dspark quantizes a matmul's activations to 8 bits in blocks of this many values when the
# weights are of these types (float weights get float activations).
ACT_BLOCK = {"Q4_0": 32, "Q4_1": 32, "Q5_0": 32, "Q5_1": 32, "Q8_0": 32,
             "Q2_K": 256, "Q3_K": 256, "Q4_K": 256, "Q5_K": 256, "Q6_K": 256}
GGUF_MATRICES = {"q": "attn_q.weight", "k": "attn_k.weight", "v": "attn_v.weight",
                 "o": "attn_output.weight", "gate": "ffn_gate.weight", "up": "ffn_up.weight",
                 "down": "ffn_down.weight"}
HF_ARCHS = {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2", "Qwen3ForCausalLM": "qwen3"}


# ---------------------------------------------------------------- weight reading

def _field(reader, key, default=None):
    field = reader.fields.get(key)
    if field is None:
        return default
    return field.contents()


def read_gguf(path, dtype):
    """(config dict, {internal name: array}) from a GGUF file."""
    import gguf
    reader = gguf.GGUFReader(path)
    arch = _field(reader, "general.architecture")
    if arch not in SUPPORTED:
        raise ValueError(f"unsupported architecture {arch}")
    tensors, blocks = {}, {}
    for t in reader.tensors:
        rows = gguf.quants.dequantize(t.data, t.tensor_type)
        shape = tuple(int(n) for n in reversed(t.shape))  # GGUF lists the innermost dim first
        tensors[t.name] = np.asarray(rows, dtype=dtype).reshape(shape)
        blocks[t.name] = ACT_BLOCK.get(t.tensor_type.name)
    n_heads = int(_field(reader, f"{arch}.attention.head_count"))
    d_model = int(_field(reader, f"{arch}.embedding_length"))
    head_dim = int(_field(reader, f"{arch}.attention.key_length", d_model // n_heads))
    cfg = {
        "arch": arch,
        "n_layers": int(_field(reader, f"{arch}.block_count")),
        "d_model": d_model,
        "n_heads": n_heads,
        "n_kv": int(_field(reader, f"{arch}.attention.head_count_kv", n_heads)),
        "head_dim": head_dim,
        "eps": float(_field(reader, f"{arch}.attention.layer_norm_rms_epsilon")),
        "theta": float(_field(reader, f"{arch}.rope.freq_base", 10000.0)),
        "rot_dims": int(_field(reader, f"{arch}.rope.dimension_count", head_dim)),
        # llama.cpp's converter permutes llama q/k rows so that adjacent pairs rotate.
        "interleaved": arch == "llama",
        "freq_divisors": tensors.get("rope_freqs.weight"),
        "scaling": None,
    }
    kind = _field(reader, f"{arch}.rope.scaling.type")
    if kind == "linear":
        factor = float(_field(reader, f"{arch}.rope.scaling.factor"))
        cfg["scaling"] = {"type": "linear", "factor": factor}
    elif kind == "yarn":
        cfg["scaling"] = {
            "type": "yarn", "factor": float(_field(reader, f"{arch}.rope.scaling.factor")),
            "original_max_position_embeddings":
                int(_field(reader, f"{arch}.rope.scaling.original_context_length")),
            "beta_fast": float(_field(reader, f"{arch}.rope.scaling.yarn_beta_fast", 32.0)),
            "beta_slow": float(_field(reader, f"{arch}.rope.scaling.yarn_beta_slow", 1.0)),
        }
    elif kind not in (None, "none"):
        raise ValueError(f"reference: unsupported rope scaling {kind}")
    w = {"embed": tensors["token_embd.weight"], "norm": tensors["output_norm.weight"]}
    head = "output.weight" if "output.weight" in tensors else "token_embd.weight"
    w["output"] = tensors[head]
    w["act_block"] = {"output": blocks[head]}
    for i in range(cfg["n_layers"]):
        for key, name in GGUF_MATRICES.items():
            w["act_block"][(i, key)] = blocks[f"blk.{i}.{name}"]

        def g(name):
            return tensors.get(f"blk.{i}.{name}")
        w[i] = {
            "attn_norm": g("attn_norm.weight"), "q": g("attn_q.weight"), "k": g("attn_k.weight"),
            "v": g("attn_v.weight"), "o": g("attn_output.weight"), "ffn_norm": g("ffn_norm.weight"),
            "gate": g("ffn_gate.weight"), "up": g("ffn_up.weight"), "down": g("ffn_down.weight"),
            "q_bias": g("attn_q.bias"), "k_bias": g("attn_k.bias"), "v_bias": g("attn_v.bias"),
            "q_norm": g("attn_q_norm.weight"), "k_norm": g("attn_k_norm.weight"),
        }
    return cfg, w


ST_TYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


def read_safetensors_file(path, dtype):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = blob[base + begin:base + end]
        if info["dtype"] == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            values = bits.view(np.float32)
        else:
            values = np.frombuffer(raw, dtype=np.dtype(ST_TYPES[info["dtype"]]).newbyteorder("<"))
        out[name] = values.astype(dtype).reshape(info["shape"])
    return out


def read_hf(folder, dtype):
    with open(os.path.join(folder, "config.json")) as f:
        c = json.load(f)
    arch = HF_ARCHS.get((c.get("architectures") or [""])[0])
    if arch is None:
        raise ValueError(f"unsupported architectures {c.get('architectures')}")
    index = os.path.join(folder, "model.safetensors.index.json")
    tensors = {}
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    for fname in files:
        tensors.update(read_safetensors_file(os.path.join(folder, fname), dtype))
    n_heads = c["num_attention_heads"]
    head_dim = c.get("head_dim") or c["hidden_size"] // n_heads
    cfg = {
        "arch": arch, "n_layers": c["num_hidden_layers"], "d_model": c["hidden_size"],
        "n_heads": n_heads, "n_kv": c.get("num_key_value_heads", n_heads), "head_dim": head_dim,
        "eps": c["rms_norm_eps"], "theta": c.get("rope_theta", 10000.0),
        "rot_dims": int(head_dim * c.get("partial_rotary_factor", 1.0)),
        "interleaved": False, "freq_divisors": None, "scaling": c.get("rope_scaling"),
    }
    w = {"embed": tensors["model.embed_tokens.weight"], "norm": tensors["model.norm.weight"]}
    w["output"] = tensors.get("lm_head.weight", w["embed"])
    w["act_block"] = {}  # float weights: float activations
    for i in range(cfg["n_layers"]):
        def g(name):
            return tensors.get(f"model.layers.{i}.{name}")
        w[i] = {
            "attn_norm": g("input_layernorm.weight"), "q": g("self_attn.q_proj.weight"),
            "k": g("self_attn.k_proj.weight"), "v": g("self_attn.v_proj.weight"),
            "o": g("self_attn.o_proj.weight"), "ffn_norm": g("post_attention_layernorm.weight"),
            "gate": g("mlp.gate_proj.weight"), "up": g("mlp.up_proj.weight"),
            "down": g("mlp.down_proj.weight"), "q_bias": g("self_attn.q_proj.bias"),
            "k_bias": g("self_attn.k_proj.bias"), "v_bias": g("self_attn.v_proj.bias"),
            "q_norm": g("self_attn.q_norm.weight"), "k_norm": g("self_attn.k_norm.weight"),
        }
    return cfg, w


# ---------------------------------------------------------------- the forward

def inverse_frequencies(cfg):
    """(rotation speed of each pair of rotated dims after context scaling, cos/sin magnitude)."""
    rot = cfg["rot_dims"]
    inv = cfg["theta"] ** (-np.arange(0, rot, 2, dtype=np.float64) / rot)
    if cfg["freq_divisors"] is not None:  # GGUF llama3: per-frequency divisors stored as a tensor
        return inv / np.asarray(cfg["freq_divisors"], dtype=np.float64), 1.0
    s = cfg["scaling"]
    if not s:
        return inv, 1.0
    kind = s.get("rope_type", s.get("type"))
    if kind in (None, "default"):
        return inv, 1.0
    if kind == "linear":
        return inv / s["factor"], 1.0
    if kind == "llama3":
        factor, low, high = s["factor"], s["low_freq_factor"], s["high_freq_factor"]
        orig = s["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        smooth = np.clip((orig / wavelen - low) / (high - low), 0.0, 1.0)
        return (1 - smooth) * inv / factor + smooth * inv, 1.0
    if kind == "yarn":
        # YaRN: dims that turn fewer than beta_slow times over the original context are
        # interpolated (divided by factor), those turning more than beta_fast times are kept,
        # with a linear ramp between; cos and sin grow by 0.1 ln(factor) + 1.
        factor, orig = s["factor"], s["original_max_position_embeddings"]

        def dim_of(turns):
            return rot * math.log(orig / (turns * 2 * math.pi)) / (2 * math.log(cfg["theta"]))

        lo = max(math.floor(dim_of(s.get("beta_fast", 32.0))), 0)
        hi = min(math.ceil(dim_of(s.get("beta_slow", 1.0))), rot - 1)
        if lo == hi:
            hi += 0.001
        keep = 1.0 - np.clip((np.arange(rot // 2) - lo) / (hi - lo), 0.0, 1.0)
        return inv / factor * (1 - keep) + inv * keep, 0.1 * math.log(factor) + 1.0
    raise ValueError(f"reference: unsupported rope scaling {kind}")


def rms_norm(x, weight, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def apply_rope(x, positions, inv_freq, mscale, rot, interleaved):
    """x: [n_tok, n_heads, head_dim]; rotates the first rot dims of every head."""
    angles = positions[:, None].astype(np.float64) * inv_freq[None, :]  # [n_tok, rot/2]
    cos = (mscale * np.cos(angles))[:, None, :].astype(x.dtype)
    sin = (mscale * np.sin(angles))[:, None, :].astype(x.dtype)
    out = x.copy()
    if interleaved:
        a, b = x[:, :, 0:rot:2], x[:, :, 1:rot:2]
        out[:, :, 0:rot:2] = a * cos - b * sin
        out[:, :, 1:rot:2] = b * cos + a * sin
    else:
        half = rot // 2
        a, b = x[:, :, :half], x[:, :, half:rot]
        out[:, :, :half] = a * cos - b * sin
        out[:, :, half:rot] = b * cos + a * sin
    return out


def silu(x):
    return x / (1.0 + np.exp(-x))


def quantize_activations(x, block):
    """Rounds each block of each row to 8 bits with scale max|x| / 127 (dspark's matmul input)."""
    shape = x.shape
    xb = x.reshape(-1, block).astype(np.float32)
    amax = np.abs(xb).max(axis=1, keepdims=True)
    scale = amax / np.float32(127)
    inv = np.where(amax > 0, np.float32(127) / np.where(amax > 0, amax, 1), 0).astype(np.float32)
    q = np.clip(np.rint(xb * inv), -127, 127)
    return (q * scale).reshape(shape).astype(x.dtype)


class ReferenceModel:
    """Teacher-forced logits and greedy generation, with a simple growing KV cache.

    emulate=True reproduces dspark's two deliberate roundings, so that the remaining difference
    is float summation order only: matmul activations quantized to 8 bits per block (for
    quantized weights) and K/V stored as fp16."""

    def __init__(self, path, dtype=np.float32, emulate=False):
        self.dtype = dtype
        self.emulate = emulate
        if os.path.isdir(path):
            self.cfg, self.w = read_hf(path, dtype)
        else:
            self.cfg, self.w = read_gguf(path, dtype)
        self.inv_freq, self.mscale = inverse_frequencies(self.cfg)
        self.vocab = self.w["embed"].shape[0]

    def matmul(self, x, w, block):
        if self.emulate and block:
            x = quantize_activations(x, block)
        return x @ w.T

    def new_cache(self):
        return [{"k": None, "v": None} for _ in range(self.cfg["n_layers"])]

    def forward(self, tokens, start, cache, hidden=None):
        """Logits [len(tokens), vocab] for tokens at positions start.., extending cache.

        hidden, when a list, receives the residual stream: embeddings, then after each layer."""
        c, w = self.cfg, self.w
        n = len(tokens)
        nh, nkv, hd = c["n_heads"], c["n_kv"], c["head_dim"]
        positions = np.arange(start, start + n)
        x = w["embed"][np.asarray(tokens)].astype(self.dtype)
        causal = np.tril(np.ones((n, start + n), dtype=bool), k=start)
        if hidden is not None:
            hidden.append(x)
        blocks = w["act_block"]
        for i in range(c["n_layers"]):
            L = w[i]

            def mm(x, key):
                return self.matmul(x, L[key], blocks.get((i, key)))

            h = rms_norm(x, L["attn_norm"], c["eps"])
            q, k, v = mm(h, "q"), mm(h, "k"), mm(h, "v")
            if L["q_bias"] is not None:
                q, k, v = q + L["q_bias"], k + L["k_bias"], v + L["v_bias"]
            q, k, v = q.reshape(n, nh, hd), k.reshape(n, nkv, hd), v.reshape(n, nkv, hd)
            if L["q_norm"] is not None:
                q = rms_norm(q, L["q_norm"], c["eps"])
                k = rms_norm(k, L["k_norm"], c["eps"])
            rope = (positions, self.inv_freq, self.mscale, c["rot_dims"], c["interleaved"])
            q = apply_rope(q, *rope)
            k = apply_rope(k, *rope)
            if self.emulate:
                k = k.astype(np.float16).astype(self.dtype)
                v = v.astype(np.float16).astype(self.dtype)
            kc = cache[i]
            kc["k"] = k if kc["k"] is None else np.concatenate([kc["k"], k])
            kc["v"] = v if kc["v"] is None else np.concatenate([kc["v"], v])
            group = nh // nkv
            keys = np.repeat(kc["k"], group, axis=1)  # [n_keys, nh, hd]
            vals = np.repeat(kc["v"], group, axis=1)
            scores = np.einsum("thd,khd->htk", q, keys) / math.sqrt(hd)
            scores = np.where(causal[None], scores, -np.inf)
            scores -= scores.max(axis=-1, keepdims=True)
            p = np.exp(scores)
            p /= p.sum(axis=-1, keepdims=True)
            attn = np.einsum("htk,khd->thd", p, vals).reshape(n, nh * hd)
            x = x + mm(attn, "o")
            h = rms_norm(x, L["ffn_norm"], c["eps"])
            x = x + mm(silu(mm(h, "gate")) * mm(h, "up"), "down")
            if hidden is not None:
                hidden.append(x)
        return self.matmul(rms_norm(x, w["norm"], c["eps"]), w["output"], blocks.get("output"))

    def logits(self, tokens):
        return self.forward(tokens, 0, self.new_cache())

    def hidden(self, tokens):
        """Residual stream [n_tok, n_layers + 1, d_model]: embeddings, then after each layer."""
        states = []
        self.forward(tokens, 0, self.new_cache(), hidden=states)
        return np.stack(states, axis=1)

    def greedy(self, prompt, n_new):
        """(generated tokens, top-1 minus top-2 logit margin at each step)."""
        cache = self.new_cache()
        logits = self.forward(prompt, 0, cache)[-1]
        out, margins = [], []
        for step in range(n_new):
            top2 = np.argpartition(-logits, 1)[:2]
            best = int(np.argmax(logits))
            margins.append(float(logits[top2].max() - logits[top2].min()))
            out.append(best)
            if step + 1 < n_new:
                logits = self.forward([best], len(prompt) + step, cache)[-1]
        return out, margins
