#!/usr/bin/env python3
"""Writes a random-weights DSpark drafter checkpoint (Qwen3DSparkModel) for a real GGUF target,
for measuring the drafter's cost on the target's true geometry (its drafts are meaningless).

The geometry (d_model, heads, head_dim, vocabulary, layers, d_ff, RoPE theta, RMS eps) is read
from the GGUF with the gguf package. By default the checkpoint also holds BF16 copies of the
target's token embedding and output head (dequantized from the GGUF, as DeepSpec ships them);
with --no-copies it leaves them out, so dspark uses the target's own (quantized) tensors.

  python3 scripts/make_random_dspark.py models/qwen2.5-coder-1.5b.gguf /tmp/dspark-1.5b
  python3 scripts/make_random_dspark.py models/qwen2.5-coder-1.5b.gguf /tmp/dspark-1.5b-shared \
      --no-copies
  build/tests/spec/dspark_ref_tool --bench models/qwen2.5-coder-1.5b.gguf /tmp/dspark-1.5b
"""
import argparse
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_tiny_models import write_safetensors  # noqa: E402


def target_geometry(reader):
    """The target's hyper-parameters from GGUF metadata and tensor shapes."""
    def field(key, default=None):
        f = reader.fields.get(key)
        if f is None:
            if default is None:
                sys.exit(f"{key} missing from the GGUF")
            return default
        return f.contents()

    arch = field("general.architecture")
    d = int(field(f"{arch}.embedding_length"))
    n_heads = int(field(f"{arch}.attention.head_count"))
    embd = next(t for t in reader.tensors if t.name == "token_embd.weight")
    return {
        "arch": arch,
        "d_model": d,
        "n_layers": int(field(f"{arch}.block_count")),
        "n_heads": n_heads,
        "n_kv": int(field(f"{arch}.attention.head_count_kv", n_heads)),
        "head_dim": int(field(f"{arch}.attention.key_length", d // n_heads)),
        "d_ff": int(field(f"{arch}.feed_forward_length")),
        "vocab": int(embd.shape[1]),  # GGUF shapes are [cols, rows]
        "theta": float(field(f"{arch}.rope.freq_base", 10000.0)),
        "eps": float(field(f"{arch}.attention.layer_norm_rms_epsilon", 1e-6)),
    }


def dequantized(reader, name):
    """[rows, cols] float32 of a GGUF tensor (the output head falls back on the embedding)."""
    from gguf import quants
    by_name = {t.name: t for t in reader.tensors}
    t = by_name.get(name) or by_name["token_embd.weight"]
    rows, cols = int(t.shape[1]), int(t.shape[0])
    return quants.dequantize(t.data, t.tensor_type).reshape(rows, cols).astype(np.float32)


def random_tensors(g, args, rng):
    """Every drafter tensor but the embedding / head copies."""
    d, hd, V, r = g["d_model"], g["head_dim"], g["vocab"], args.markov_rank
    m = len(args.layer_ids)

    def mat(rows, cols, gain=1.0):
        return rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(
            gain / math.sqrt(cols))

    def norm(n):
        return (1.0 + 0.2 * rng.standard_normal(n, dtype=np.float32)).astype(np.float32)

    w = {
        "fc.weight": mat(d, m * d),
        "hidden_norm.weight": norm(d),
        "norm.weight": norm(d),
        "markov_head.markov_w1.weight": rng.standard_normal((V, r), dtype=np.float32),
        "markov_head.markov_w2.weight": mat(V, r),
        "confidence_head.proj.weight": mat(1, d + r),
        "confidence_head.proj.bias": np.array([0.5], dtype=np.float32),
    }
    for i in range(args.layers):
        p = f"layers.{i}."
        w[p + "input_layernorm.weight"] = norm(d)
        w[p + "post_attention_layernorm.weight"] = norm(d)
        w[p + "self_attn.q_proj.weight"] = mat(g["n_heads"] * hd, d)
        w[p + "self_attn.k_proj.weight"] = mat(g["n_kv"] * hd, d)
        w[p + "self_attn.v_proj.weight"] = mat(g["n_kv"] * hd, d)
        w[p + "self_attn.o_proj.weight"] = mat(d, g["n_heads"] * hd, 0.5)
        w[p + "self_attn.q_norm.weight"] = norm(hd)
        w[p + "self_attn.k_norm.weight"] = norm(hd)
        w[p + "mlp.gate_proj.weight"] = mat(g["d_ff"], d)
        w[p + "mlp.up_proj.weight"] = mat(g["d_ff"], d)
        w[p + "mlp.down_proj.weight"] = mat(d, g["d_ff"], 0.5)
    return w


def config(g, args):
    return {
        "architectures": ["Qwen3DSparkModel"],
        "model_type": "qwen3",
        "hidden_size": g["d_model"],
        "intermediate_size": g["d_ff"],
        "num_hidden_layers": args.layers,
        "num_attention_heads": g["n_heads"],
        "num_key_value_heads": g["n_kv"],
        "head_dim": g["head_dim"],
        "rms_norm_eps": g["eps"],
        "rope_theta": g["theta"],
        "vocab_size": g["vocab"],
        "num_target_layers": g["n_layers"],
        "block_size": args.block,
        "target_layer_ids": args.layer_ids,
        "mask_token_id": g["vocab"] - 1,
        "tie_word_embeddings": False,
        "attention_bias": False,
        "markov_rank": args.markov_rank,
        "markov_head_type": "vanilla",
        "enable_confidence_head": True,
        "confidence_head_with_markov": True,
        "torch_dtype": "bfloat16",
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("target", help="target GGUF file")
    ap.add_argument("out_dir")
    ap.add_argument("--no-copies", action="store_true",
                    help="leave out embed_tokens / lm_head (dspark uses the target's own)")
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--block", type=int, default=7)
    ap.add_argument("--markov-rank", type=int, default=64)
    ap.add_argument("--target-layers", default="",
                    help="comma-separated capture ids; default 5 evenly spaced in [1, n - 3]")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from gguf import GGUFReader

    reader = GGUFReader(args.target)
    g = target_geometry(reader)
    if args.target_layers:
        args.layer_ids = [int(x) for x in args.target_layers.split(",")]
    else:
        args.layer_ids = sorted({int(round(x)) for x in np.linspace(1, g["n_layers"] - 3, 5)})
    w = random_tensors(g, args, np.random.default_rng(args.seed))
    if not args.no_copies:
        w["embed_tokens.weight"] = dequantized(reader, "token_embd.weight")
        w["lm_head.weight"] = dequantized(reader, "output.weight")
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "config.json"), "w") as f:
        json.dump(config(g, args), f, indent=2)
    size = write_safetensors(os.path.join(args.out_dir, "model.safetensors"), w, "BF16")
    print(f"wrote {args.out_dir}: {size / 1e6:.1f} MB of BF16 tensors, geometry {g}, "
          f"target_layer_ids {args.layer_ids}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
