"""The DSpark drafter (dspark-spec.md sections 2-5) as a torch.nn.Module, plus checkpoint I/O.

Exactly the math of the C++ drafter and of tests/spec/dspark_ref.py:
  ctx = RMSNorm_hidden_norm(fc . concat(features))            shared by every draft layer
  block input [anchor, MASK x (B-1)] at positions start..start+B-1
  Qwen3 layers: q/k/v (no bias), per-head q_norm/k_norm, rotate-half RoPE at absolute positions,
  non-causal attention over [context rows < start ; the whole block], GQA, scale hd^-0.5,
  o_proj, silu-gated MLP; h = RMSNorm_norm(x); U = lm_head(h)
  vanilla Markov head L_k = U_k + W2 W1[prev_k]; confidence c_k = sigmoid((w.[h_k ; W1[prev_k]] + b) / T_k)

embed_tokens and lm_head are frozen fp32 buffers copied from the target (GGUF); they are not
written into checkpoints (the C++ loader falls back to the target's tensors), but checkpoints
that hold them (the tiny test drafters) load too. Safetensors is read and written by hand
(8-byte header length, JSON header, raw little-endian data) so BF16 needs no extra package.
"""
import json
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

FROZEN = ("embed_tokens.weight", "lm_head.weight")
DRAFT_VOCAB = "draft_vocab_ids"  # I32 [V'] increasing ids the drafter proposes from


# ---------------------------------------------------------------- safetensors

def read_safetensors(path):
    """{name: torch tensor} of a safetensors file: F32, F16 and BF16 as float32, I32 as int64
    (id lists such as draft_vocab_ids)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    base, out = 8 + n, {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = blob[base + begin:base + end]
        kind = info["dtype"]
        if kind == "BF16":
            t = torch.from_numpy(np.frombuffer(raw, dtype="<i2").copy()).view(torch.bfloat16)
        elif kind == "F16":
            t = torch.from_numpy(np.frombuffer(raw, dtype="<f2").copy())
        elif kind == "F32":
            t = torch.from_numpy(np.frombuffer(raw, dtype="<f4").copy())
        elif kind == "I32":
            out[name] = torch.from_numpy(np.frombuffer(raw, dtype="<i4").astype(np.int64))
            continue
        else:
            raise ValueError(f"{path}: tensor {name} has unsupported dtype {kind}")
        out[name] = t.float().reshape(info["shape"])
    return out


def write_safetensors(path, tensors, dtype="BF16"):
    """Writes {name: tensor}: floating tensors as dtype (BF16 rounds to nearest even, F16, F32),
    integer ones as I32; returns bytes."""
    torch_dtype = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}[dtype]
    view = {torch.bfloat16: torch.int16, torch.float16: torch.float16,
            torch.float32: torch.float32}[torch_dtype]
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu")
        if t.is_floating_point():
            kind = dtype
            blob = t.float().contiguous().to(torch_dtype).view(view).numpy().tobytes()
        else:
            kind = "I32"
            blob = t.numpy().astype("<i4").tobytes()
        header[name] = {"dtype": kind, "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    os.replace(tmp, path)  # a reader never sees a half-written checkpoint
    return 8 + len(text) + offset


# ---------------------------------------------------------------- target GGUF

def _field(reader, key, default=None):
    field = reader.fields.get(key)
    return default if field is None else field.contents()


def read_target(path, with_weights=True):
    """(geometry dict, embed [V, d] fp32 or None, head [V, d] fp32 or None) of a target GGUF.

    Geometry: arch, n_layers, d_model, n_heads, n_kv, head_dim, d_ff, vocab, rope_theta, eps,
    bos/eos/pad ids and the default mask token (see default_mask_token)."""
    import gguf
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: target GGUF not found")
    reader = gguf.GGUFReader(path)
    arch = _field(reader, "general.architecture")
    if arch not in ("llama", "qwen2", "qwen3"):
        raise ValueError(f"{path}: unsupported target architecture {arch!r}")
    d = int(_field(reader, f"{arch}.embedding_length"))
    n_heads = int(_field(reader, f"{arch}.attention.head_count"))
    tokens = _field(reader, "tokenizer.ggml.tokens") or []
    types = _field(reader, "tokenizer.ggml.token_type") or []
    geom = {
        "arch": arch, "d_model": d, "n_heads": n_heads,
        "n_layers": int(_field(reader, f"{arch}.block_count")),
        "n_kv": int(_field(reader, f"{arch}.attention.head_count_kv", n_heads)),
        "head_dim": int(_field(reader, f"{arch}.attention.key_length", d // n_heads)),
        "d_ff": int(_field(reader, f"{arch}.feed_forward_length")),
        "rope_theta": float(_field(reader, f"{arch}.rope.freq_base", 10000.0)),
        "eps": float(_field(reader, f"{arch}.attention.layer_norm_rms_epsilon")),
        "vocab": int(_field(reader, f"{arch}.vocab_size", len(tokens))),
        "bos": _field(reader, "tokenizer.ggml.bos_token_id"),
        "eos": _field(reader, "tokenizer.ggml.eos_token_id"),
        "pad": _field(reader, "tokenizer.ggml.padding_token_id"),
        "chat_template": _field(reader, "tokenizer.chat_template") or "",
    }
    geom["mask_token"] = default_mask_token(geom, tokens, types)
    if not with_weights:
        return geom, None, None
    mats = {}
    for t in reader.tensors:
        if t.name in ("token_embd.weight", "output.weight", "output_norm.weight"):
            rows = gguf.quants.dequantize(t.data, t.tensor_type)
            shape = tuple(int(n) for n in reversed(t.shape))  # GGUF lists the innermost dim first
            mats[t.name] = torch.from_numpy(np.asarray(rows, dtype=np.float32).reshape(shape))
    if "token_embd.weight" not in mats:
        raise ValueError(f"{path}: no token_embd.weight")
    embed = mats["token_embd.weight"]
    head = mats.get("output.weight", embed)  # tied targets have no output.weight
    geom["output_norm"] = mats.get("output_norm.weight")  # [d]: init of the drafter's norm
    if tuple(embed.shape) != (geom["vocab"], d) or tuple(head.shape) != (geom["vocab"], d):
        raise ValueError(f"{path}: embedding {tuple(embed.shape)} / head {tuple(head.shape)} "
                         f"!= [{geom['vocab']}, {d}]")
    return geom, embed, head


def default_mask_token(geom, tokens, types):
    """A control token the model never emits: the highest-id control (type 3) token that is not
    bos/eos/pad/unk and does not occur in the chat template (SmolLM2: 16 <empty_output>); the
    last vocabulary id when there is none. Override with --mask-token-id."""
    used = {geom.get("bos"), geom.get("eos"), geom.get("pad"), 0}
    for i in range(len(types) - 1, -1, -1):
        if int(types[i]) == 3 and i not in used and tokens[i] not in geom["chat_template"]:
            return i
    return geom["vocab"] - 1


# ---------------------------------------------------------------- config

def make_config(geom, target_layer_ids, n_layers=1, intermediate_size=None, block_size=7,
                mask_token_id=None, markov_rank=64):
    """config.json of a Qwen3DSparkModel drafter for the target geometry geom (read_target)."""
    return {
        "architectures": ["Qwen3DSparkModel"], "model_type": "qwen3",
        "hidden_size": geom["d_model"], "num_attention_heads": geom["n_heads"],
        "num_key_value_heads": geom["n_kv"], "head_dim": geom["head_dim"],
        "intermediate_size": int(intermediate_size or geom["d_ff"]),
        "vocab_size": geom["vocab"], "rope_theta": geom["rope_theta"],
        "rms_norm_eps": geom["eps"], "attention_bias": False, "hidden_act": "silu",
        "tie_word_embeddings": False, "num_hidden_layers": int(n_layers),
        "num_target_layers": geom["n_layers"], "block_size": int(block_size),
        "target_layer_ids": [int(i) for i in target_layer_ids],
        "mask_token_id": int(geom["mask_token"] if mask_token_id is None else mask_token_id),
        "num_anchors": 16, "layer_types": ["full_attention"] * int(n_layers),
        "markov_rank": int(markov_rank), "markov_head_type": "vanilla",
        "enable_confidence_head": True, "confidence_head_with_markov": True,
        "torch_dtype": "bfloat16",
    }


# ---------------------------------------------------------------- the module

def rms_norm(x, weight, eps):
    """x * rsqrt(mean(x^2) + eps) * weight over the last dim (fp32 math)."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


class DSparkDrafter(nn.Module):
    """Trainable parameters use the checkpoint's tensor names with '.' -> '__'."""

    def __init__(self, config, embed, head):
        super().__init__()
        c = self.config = dict(config)
        if c.get("markov_head_type", "vanilla") != "vanilla" or int(c["markov_rank"]) <= 0:
            raise ValueError("only markov_head_type 'vanilla' with markov_rank > 0 is supported")
        if not (c.get("enable_confidence_head") and c.get("confidence_head_with_markov")):
            raise ValueError("the drafter needs enable_confidence_head and "
                             "confidence_head_with_markov true")
        self.d = c["hidden_size"]
        self.H, self.Hkv = c["num_attention_heads"], c["num_key_value_heads"]
        self.hd = c.get("head_dim") or self.d // self.H
        self.eps, self.B, self.r = c["rms_norm_eps"], c["block_size"], c["markov_rank"]
        self.mask_id, self.n_layers = c["mask_token_id"], c["num_hidden_layers"]
        self.m = len(c["target_layer_ids"])
        V, d, hd, I = c["vocab_size"], self.d, self.hd, c["intermediate_size"]
        if tuple(embed.shape) != (V, d) or tuple(head.shape) != (V, d):
            raise ValueError(f"embedding {tuple(embed.shape)} / head {tuple(head.shape)} do not "
                             f"match the config's [{V}, {d}]")
        self.register_buffer("embed", embed.float(), persistent=False)
        self.register_buffer("head", head.float(), persistent=False)
        inv = c["rope_theta"] ** (-np.arange(hd // 2, dtype=np.float64) * 2.0 / hd)
        self.register_buffer("inv_freq", torch.from_numpy(inv), persistent=False)  # float64
        temps = c.get("confidence_temperatures") or [1.0] * self.B
        self.register_buffer("conf_temps", torch.tensor(temps, dtype=torch.float32),
                             persistent=False)
        shapes = {"fc.weight": (d, self.m * d), "hidden_norm.weight": (d,), "norm.weight": (d,),
                  "markov_head.markov_w1.weight": (V, self.r),
                  "markov_head.markov_w2.weight": (V, self.r),
                  "confidence_head.proj.weight": (1, d + self.r),
                  "confidence_head.proj.bias": (1,)}
        for i in range(self.n_layers):
            p = f"layers.{i}."
            shapes.update({
                p + "input_layernorm.weight": (d,), p + "post_attention_layernorm.weight": (d,),
                p + "self_attn.q_proj.weight": (self.H * hd, d),
                p + "self_attn.k_proj.weight": (self.Hkv * hd, d),
                p + "self_attn.v_proj.weight": (self.Hkv * hd, d),
                p + "self_attn.o_proj.weight": (d, self.H * hd),
                p + "self_attn.q_norm.weight": (hd,), p + "self_attn.k_norm.weight": (hd,),
                p + "mlp.gate_proj.weight": (I, d), p + "mlp.up_proj.weight": (I, d),
                p + "mlp.down_proj.weight": (d, I)})
        self.names = sorted(shapes)
        # [V'] increasing ids drafts come from (the --loss-vocab subset the heads were trained
        # over; saved as draft_vocab_ids); None: the whole vocabulary.
        self.draft_vocab = None
        self.kv_fp16 = False  # round K/V to fp16 as the C++ cache does (parity tests only)
        for name, shape in shapes.items():
            self.register_parameter(name.replace(".", "__"),
                                    nn.Parameter(torch.zeros(shape, dtype=torch.float32)))
        self.reset_parameters()

    def w(self, name):
        return getattr(self, name.replace(".", "__"))

    @torch.no_grad()
    def reset_parameters(self, seed=0):
        """Norms 1; matrices N(0, 0.02) as Hugging Face initializes the reference model; the
        Markov W2 starts at 0 (bias 0 until trained, and rows outside a --loss-vocab subset stay
        exactly 0); the confidence bias at 0 (c = 0.5)."""
        g = torch.Generator().manual_seed(seed)
        for name in self.names:
            p = self.w(name)
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            elif name in ("markov_head.markov_w2.weight", "confidence_head.proj.bias"):
                p.zero_()
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)

    # -- pieces

    def rope(self, x, positions):
        """x [..., n, heads, hd] rotate-half; positions [..., n] absolute (int)."""
        ang = positions.to(torch.float64)[..., None] * self.inv_freq  # [..., n, hd/2]
        cos = torch.cos(ang).to(x.dtype)[..., None, :]
        sin = torch.sin(ang).to(x.dtype)[..., None, :]
        half = self.hd // 2
        a, b = x[..., :half], x[..., half:]
        return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)

    def context(self, feats):
        """feats [S, n, m*d] -> ctx [S, n, d] = RMSNorm_hidden_norm(fc . feats)."""
        return rms_norm(F.linear(feats, self.w("fc.weight")), self.w("hidden_norm.weight"),
                        self.eps)

    def backbone(self, ctx, starts, anchors):
        """h [S, A, B, d] of A blocks per sequence.

        ctx [S, n, d] (context rows at positions 0..n-1), starts [S, A] anchor positions (every
        block sees context rows < its start, and its own B rows), anchors [S, A] anchor tokens."""
        S, n, d = ctx.shape
        A, B, H, Hkv, hd = starts.shape[1], self.B, self.H, self.Hkv, self.hd
        ids = torch.full((S, A, B), self.mask_id, dtype=torch.long, device=ctx.device)
        ids[:, :, 0] = anchors
        x = self.embed[ids].reshape(S, A * B, d).to(ctx.dtype)
        pos_blk = (starts[:, :, None] + torch.arange(B, device=ctx.device)).reshape(S, A * B)
        pos_ctx = torch.arange(n, device=ctx.device).expand(S, n)
        row_start = starts.repeat_interleave(B, dim=1)  # [S, AB]
        blk = torch.arange(A, device=ctx.device).repeat_interleave(B)
        mask = torch.cat([pos_ctx[:, None, :] < row_start[:, :, None],          # [S, AB, n]
                          (blk[:, None] == blk[None, :]).expand(S, A * B, A * B)], dim=2)
        mask = mask[:, None]  # [S, 1, AB, n + AB]
        for i in range(self.n_layers):
            p = f"layers.{i}."
            w = lambda s: self.w(p + s)  # noqa: E731
            xn = rms_norm(x, w("input_layernorm.weight"), self.eps)
            q = F.linear(xn, w("self_attn.q_proj.weight")).view(S, A * B, H, hd)
            q = self.rope(rms_norm(q, w("self_attn.q_norm.weight"), self.eps), pos_blk)
            rows = torch.cat([ctx, xn], dim=1)  # [S, n + AB, d]
            pos = torch.cat([pos_ctx, pos_blk], dim=1)
            k = F.linear(rows, w("self_attn.k_proj.weight")).view(S, -1, Hkv, hd)
            k = self.rope(rms_norm(k, w("self_attn.k_norm.weight"), self.eps), pos)
            v = F.linear(rows, w("self_attn.v_proj.weight")).view(S, -1, Hkv, hd)
            if self.kv_fp16:  # the C++ drafter stores K/V in fp16 (parity tests round too)
                k, v = k.half().to(k.dtype), v.half().to(v.dtype)
            k = k.transpose(1, 2).repeat_interleave(H // Hkv, dim=1)  # [S, H, n+AB, hd]
            v = v.transpose(1, 2).repeat_interleave(H // Hkv, dim=1)
            att = F.scaled_dot_product_attention(q.transpose(1, 2), k, v, attn_mask=mask,
                                                 scale=hd ** -0.5)  # [S, H, AB, hd]
            x = x + F.linear(att.transpose(1, 2).reshape(S, A * B, H * hd),
                             w("self_attn.o_proj.weight"))
            xn = rms_norm(x, w("post_attention_layernorm.weight"), self.eps)
            gate = F.linear(xn, w("mlp.gate_proj.weight"))
            x = x + F.linear(F.silu(gate) * F.linear(xn, w("mlp.up_proj.weight")),
                             w("mlp.down_proj.weight"))
        return rms_norm(x, self.w("norm.weight"), self.eps).view(S, A, B, d)

    def base_logits(self, h, vocab=None):
        """U = lm_head(h) [..., V] (or over the ids in vocab [V'])."""
        head = self.head if vocab is None else self.head[vocab]
        return h @ head.to(h.dtype).T

    def corrected_logits(self, h, prev, vocab=None):
        """L = U + W2 W1[prev] [..., V'] for h [..., d], prev [...]."""
        e = self.w("markov_head.markov_w1.weight")[prev]
        w2 = self.w("markov_head.markov_w2.weight")
        head = self.head if vocab is None else self.head[vocab]
        w2 = w2 if vocab is None else w2[vocab]
        # Two products, not one over [h ; e]: the frozen head then needs no weight gradient.
        return h @ head.to(h.dtype).T + e.to(h.dtype) @ w2.to(h.dtype).T

    def confidence_logit(self, h, prev):
        """z = w . [h ; W1[prev]] + b [...] (before temperature and sigmoid)."""
        e = self.w("markov_head.markov_w1.weight")[prev]
        feat = torch.cat([h, e.to(h.dtype)], -1)
        return F.linear(feat, self.w("confidence_head.proj.weight"),
                        self.w("confidence_head.proj.bias")).squeeze(-1)

    @torch.no_grad()
    def greedy_chain(self, h, anchors, vocab=None, prevs=None):
        """The inference loop (spec section 4) batched over rows: h [R, B, d], anchors [R].

        Returns drafts [R, B] (vocabulary ids), confidence logits z [R, B] and L [R, B, V'],
        over vocab (default: the draft vocabulary). prevs [R, B], when given, replaces the
        drafter's own previous drafts (parity tests)."""
        vocab = self.draft_vocab if vocab is None else vocab
        if vocab is not None:
            vocab = vocab.to(h.device)
        R = h.shape[0]
        prev = anchors
        drafts, zs, Ls = [], [], []
        for k in range(self.B):
            if prevs is not None:
                prev = prevs[:, k]
            L = self.corrected_logits(h[:, k], prev, vocab)
            zs.append(self.confidence_logit(h[:, k], prev))
            x = L.argmax(-1)
            x = x if vocab is None else vocab[x]
            drafts.append(x)
            Ls.append(L)
            prev = x
        return (torch.stack(drafts, 1).view(R, self.B), torch.stack(zs, 1),
                torch.stack(Ls, 1))

    @torch.no_grad()
    def draft(self, features, anchor, prevs=None):
        """One inference round for one request: features [start, m*d] of positions < start,
        anchor token at position start. Returns (drafts [B], confidences [B] after the
        configured temperatures, U [B, V'], L [B, V'] over the draft vocabulary)."""
        feats = torch.as_tensor(features, dtype=torch.float32).reshape(1, -1, self.m * self.d)
        start = feats.shape[1]
        ctx = self.context(feats)
        h = self.backbone(ctx, torch.tensor([[start]]), torch.tensor([[int(anchor)]]))[0]
        drafts, z, L = self.greedy_chain(h, torch.tensor([int(anchor)]), prevs=prevs)
        conf = torch.sigmoid(z[0] / self.conf_temps)
        return drafts[0], conf, self.base_logits(h[0], self.draft_vocab), L[0]

    # -- checkpoint

    def checkpoint_tensors(self):
        """{checkpoint name: tensor} without the frozen embedding/head."""
        tensors = {name: self.w(name).detach() for name in self.names}
        if self.draft_vocab is not None:
            tensors[DRAFT_VOCAB] = self.draft_vocab.detach().to("cpu", torch.int32)
        return tensors

    def n_checkpoint_params(self):
        return sum(self.w(n).numel() for n in self.names)


def save_checkpoint(folder, model, dtype="BF16", extra_config=None, include_frozen=False):
    """config.json + model.safetensors (trainable tensors only, unless include_frozen: then
    also embed_tokens/lm_head, for loaders without the fallback to the target's tensors);
    returns the file size."""
    os.makedirs(folder, exist_ok=True)
    config = dict(model.config)
    config["torch_dtype"] = {"BF16": "bfloat16", "F16": "float16", "F32": "float32"}[dtype]
    config.update(extra_config or {})
    tensors = model.checkpoint_tensors()
    if include_frozen:
        tensors.update({"embed_tokens.weight": model.embed, "lm_head.weight": model.head})
    size = write_safetensors(os.path.join(folder, "model.safetensors"), tensors, dtype)
    tmp = os.path.join(folder, "config.json.tmp")
    with open(tmp, "w") as f:
        json.dump(config, f, indent=2)
    os.replace(tmp, os.path.join(folder, "config.json"))
    return size


def load_checkpoint(folder, target=None):
    """DSparkDrafter from a checkpoint folder. The frozen embedding/head come from the
    checkpoint when it has them, else from target (a GGUF path, or an (embed, head) pair)."""
    path = os.path.join(folder, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: not a DSpark checkpoint folder")
    with open(path) as f:
        config = json.load(f)
    if config.get("architectures") != ["Qwen3DSparkModel"]:
        raise ValueError(f"{folder}: architectures {config.get('architectures')} is not "
                         "['Qwen3DSparkModel']")
    tensors = read_safetensors(os.path.join(folder, "model.safetensors"))
    if all(n in tensors for n in FROZEN):
        embed, head = tensors.pop(FROZEN[0]), tensors.pop(FROZEN[1])
    elif target is None:
        raise ValueError(f"{folder} has no embed_tokens/lm_head: give the target GGUF")
    elif isinstance(target, str):
        _, embed, head = read_target(target)
    else:
        embed, head = target
    model = DSparkDrafter(config, embed, head)
    model.draft_vocab = tensors.pop(DRAFT_VOCAB, None)
    dv = model.draft_vocab
    if dv is not None and (dv.dim() != 1 or len(dv) == 0 or int(dv.min()) < 0 or
                           int(dv.max()) >= config["vocab_size"] or
                           (len(dv) > 1 and not bool((dv[1:] > dv[:-1]).all()))):
        raise ValueError(f"{folder}: {DRAFT_VOCAB} must be increasing ids in "
                         f"[0, {config['vocab_size']})")
    missing = [n for n in model.names if n not in tensors]
    if missing:
        raise ValueError(f"{folder}: missing tensors {missing[:5]}")
    with torch.no_grad():
        for name in model.names:
            p = model.w(name)
            if tuple(tensors[name].shape) != tuple(p.shape):
                raise ValueError(f"{folder}: {name} has shape {tuple(tensors[name].shape)}, "
                                 f"expected {tuple(p.shape)}")
            p.copy_(tensors[name])
    return model


def describe_size(model, dtype="BF16"):
    """Human-readable parameter count and checkpoint size."""
    n = model.n_checkpoint_params()
    nbytes = n * {"BF16": 2, "F16": 2, "F32": 4}[dtype]
    return n, nbytes, f"{n / 1e6:.2f} M parameters, {nbytes / 1e6:.1f} MB as {dtype}"


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description="Print a drafter's size for a target geometry.")
    ap.add_argument("--target", required=True)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--markov-rank", type=int, default=64)
    ap.add_argument("--n-features", type=int, default=5)
    a = ap.parse_args()
    g, _, _ = read_target(a.target, with_weights=False)
    cfg = make_config(g, list(range(a.n_features)), a.layers, markov_rank=a.markov_rank)
    V, d = g["vocab"], g["d_model"]
    m = DSparkDrafter(cfg, torch.zeros(V, d), torch.zeros(V, d))
    print(describe_size(m)[2], f"(mask token {g['mask_token']})")
