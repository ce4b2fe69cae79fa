#!/usr/bin/env python3
"""The DSpark drafter against an independent NumPy reference (dspark-spec.md sections 2-5).

For each (target, drafter) pair of PAIRS, dspark_ref_tool runs the tiny target over four prompts (context of 1, 6, 15 and 28
positions, paged block tables), commits the captured features to the drafter and proposes for
all four in one call, greedily and sampled (T = 0.7), dumping the features it committed, the
drafts, confidences, q and the base logits U. This script reads the checkpoint itself
(config.json and the BF16 safetensors) and recomputes, in float64 from the same features:
context ctx = RMSNorm(fc . features), each draft layer's context K/V, the non-causal block pass
over [anchor, MASK x 3], U = lm_head(RMSNorm(x)), the Markov-corrected logits L_k (previous
token = the drafter's own draft, so one near tie cannot derail the rest of the chain), the
confidence sigmoid(w . [h_k ; W1[prev]] + b) and, for sampled drafts, q = the top 64 of
softmax(L_k / T) renormalised.

The pairs: the qwen3 target with dspark-qwen3 (BF16); the llama GGUF target, whose q/k rows are
permuted for the interleaved RoPE, with dspark-llama (F32): the draft layers must still rotate
halves as Hugging Face does (the reference always does); and the same target with
dspark-llama-shared, which lacks embed_tokens / lm_head, so the drafter must use the target's
own (the reference reads them from the target's Hugging Face twin, llama-hf-f32).

dspark keeps K/V in fp16 and sums in fp32; the reference rounds K/V to fp16 too. Tolerances
(printed each run; measured on this machine in brackets): U max |diff| <= 1e-4 * (1 + max |U|)
[4.7e-6]; confidences <= 2e-5 [1.2e-6]; q probabilities <= 1e-4 [1.3e-5] with the same ids;
greedy tokens equal the reference argmax of L_k exactly unless its top-2 margin is below
TIE = 1e-3 (counted as near ties; measured 0); chains are one path of min(B, budget) = 4 nodes.
Exit 0 pass, 1 fail, 77 skip (numpy missing) unless DSPARK_REQUIRE_MODELS=1.
"""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "model"))
import py_util  # noqa: E402

TIE = 1e-3
TOP_Q = 64
# (target model, drafter checkpoint, Hugging Face folder holding the target's embedding and head
# when the checkpoint has none)
PAIRS = [
    ("qwen3-f16.gguf", "dspark-qwen3", None),
    ("llama-f32.gguf", "dspark-llama", None),
    ("llama-f32.gguf", "dspark-llama-shared", "llama-hf-f32"),
]


class Reference:
    def __init__(self, folder, target_hf=None):
        import numpy as np
        import reference_forward  # tests/model: the model references' safetensors/norm/RoPE
        self.rf = reference_forward
        with open(os.path.join(folder, "config.json")) as f:
            self.cfg = json.load(f)
        self.w = reference_forward.read_safetensors_file(
            os.path.join(folder, "model.safetensors"), np.float64)
        if target_hf is not None:  # the target's own embedding and head for the missing copies
            target = reference_forward.read_safetensors_file(
                os.path.join(target_hf, "model.safetensors"), np.float64)
            for name, source in (("embed_tokens.weight", "model.embed_tokens.weight"),
                                 ("lm_head.weight", "lm_head.weight")):
                if name not in self.w:
                    self.w[name] = target[source]
        c = self.cfg
        self.d = c["hidden_size"]
        self.n_heads = c["num_attention_heads"]
        self.n_kv = c["num_key_value_heads"]
        self.hd = c.get("head_dim", self.d // self.n_heads)
        self.eps = c["rms_norm_eps"]
        self.B = c["block_size"]
        self.mask = c["mask_token_id"]
        self.r = c["markov_rank"]
        self.n_layers = c["num_hidden_layers"]
        half = self.hd // 2
        self.inv_freq = c["rope_theta"] ** (-np.arange(half, dtype=np.float64) * 2.0 / self.hd)

    def rms(self, x, weight):
        return self.rf.rms_norm(x, weight, self.eps)

    def rope(self, x, positions):
        """x: [n, heads, hd], rotate-half (Hugging Face) layout."""
        import numpy as np
        return self.rf.apply_rope(x, np.asarray(positions), self.inv_freq, 1.0, self.hd, False)

    def kv(self, layer, x, positions):
        """K (normed, rotated) and V of rows x, rounded to fp16 as dspark stores them."""
        import numpy as np
        p = f"layers.{layer}.self_attn."
        n = x.shape[0]
        k = (x @ self.w[p + "k_proj.weight"].T).reshape(n, self.n_kv, self.hd)
        k = self.rope(self.rms(k, self.w[p + "k_norm.weight"]), positions)
        v = (x @ self.w[p + "v_proj.weight"].T).reshape(n, self.n_kv, self.hd)
        f16 = lambda a: a.astype(np.float16).astype(np.float64)  # noqa: E731
        return f16(k), f16(v)

    def block(self, features, anchor, start):
        """h [B, d] after the final norm and U [B, V] for one request."""
        import numpy as np
        ctx = features.reshape(start, -1) @ self.w["fc.weight"].T
        ctx = self.rms(ctx, self.w["hidden_norm.weight"])
        positions = np.arange(start, start + self.B)
        x = self.w["embed_tokens.weight"][[anchor] + [self.mask] * (self.B - 1)].copy()
        group = self.n_heads // self.n_kv
        for layer in range(self.n_layers):
            p = f"layers.{layer}."
            k_ctx, v_ctx = self.kv(layer, ctx, np.arange(start))
            xn = self.rms(x, self.w[p + "input_layernorm.weight"])
            q = (xn @ self.w[p + "self_attn.q_proj.weight"].T).reshape(self.B, self.n_heads,
                                                                        self.hd)
            q = self.rope(self.rms(q, self.w[p + "self_attn.q_norm.weight"]), positions)
            k_blk, v_blk = self.kv(layer, xn, positions)
            k = np.concatenate([k_ctx, k_blk])  # every query sees all of them: non-causal
            v = np.concatenate([v_ctx, v_blk])
            out = np.zeros((self.B, self.n_heads, self.hd))
            for head in range(self.n_heads):
                s = q[:, head, :] @ k[:, head // group, :].T / np.sqrt(self.hd)
                s = np.exp(s - s.max(axis=1, keepdims=True))
                out[:, head, :] = (s / s.sum(axis=1, keepdims=True)) @ v[:, head // group, :]
            x = x + out.reshape(self.B, -1) @ self.w[p + "self_attn.o_proj.weight"].T
            xn = self.rms(x, self.w[p + "post_attention_layernorm.weight"])
            gate = xn @ self.w[p + "mlp.gate_proj.weight"].T
            up = xn @ self.w[p + "mlp.up_proj.weight"].T
            x = x + (gate / (1 + np.exp(-gate)) * up) @ self.w[p + "mlp.down_proj.weight"].T
        h = self.rms(x, self.w["norm.weight"])
        return h, h @ self.w["lm_head.weight"].T

    def heads(self, h, U, anchor, drafts):
        """Markov-corrected logits L [n, V] and confidences [n], prev = anchor, then drafts."""
        import numpy as np
        w1, w2 = self.w["markov_head.markov_w1.weight"], self.w["markov_head.markov_w2.weight"]
        wc, bc = self.w["confidence_head.proj.weight"][0], self.w["confidence_head.proj.bias"][0]
        prevs = [anchor] + list(drafts[:-1])
        L = np.stack([U[k] + w2 @ w1[prev] for k, prev in enumerate(prevs)])
        z = np.array([wc @ np.concatenate([h[k], w1[prev]]) + bc for k, prev in enumerate(prevs)])
        return L, 1.0 / (1.0 + np.exp(-z))


def compare(ref, case, temperature, n_layers, stats, pair):
    import numpy as np
    failures = []
    tokens = case["tokens"]
    start, anchor = len(tokens) - 1, tokens[-1]
    features = np.asarray(case["features"], dtype=np.float64).reshape(start, n_layers, ref.d)
    h, U = ref.block(features, anchor, start)
    name = f"{pair} context {start}"
    for mode in ("greedy", "sampled"):
        t = case[mode]
        n = len(t["tokens"])
        if n != min(ref.B, 8) or t["parent"] != list(range(-1, n - 1)):
            failures.append(f"{name} {mode}: chain {t['parent']} of {n} nodes")
            continue
        got_u = np.asarray(t["logits"]).reshape(n, -1)
        L, conf = ref.heads(h, U, anchor, t["tokens"])
        scale = 1.0 + np.abs(U[:n]).max()
        du = np.abs(got_u - U[:n]).max() / scale
        stats["logits"] = max(stats["logits"], du)
        if du > 1e-4:
            failures.append(f"{name} {mode}: U differs by {du:.2e} (relative to {scale:.1f})")
        dc = np.abs(np.asarray(t["confidence"]) - conf).max()
        stats["confidence"] = max(stats["confidence"], dc)
        if dc > 2e-5:
            failures.append(f"{name} {mode}: confidences {t['confidence']} vs {conf.tolist()}")
        for k, tok in enumerate(t["tokens"]):
            row = L[k]
            if mode == "greedy":
                best = int(np.argmax(row))
                if tok != best:
                    margin = row[best] - row[tok]
                    if margin >= TIE:
                        failures.append(f"{name} greedy node {k}: drafted {tok}, reference "
                                        f"argmax {best} (margin {margin:.2e})")
                    else:
                        stats["near_ties"] += 1
                if t["q_index"][k] != -1:
                    failures.append(f"{name} greedy node {k}: q_index {t['q_index'][k]}")
                continue
            q = t["q"][t["q_index"][k]]
            scaled = row / temperature
            p = np.exp(scaled - scaled.max())
            top = np.argsort(-row, kind="stable")[:TOP_Q]
            want = p[top] / p[top].sum()
            if sorted(q["ids"]) != sorted(top.tolist()):
                failures.append(f"{name} sampled node {k}: q ids are not the reference's top "
                                f"{TOP_Q}")
                continue
            got = dict(zip(q["ids"], q["probs"]))
            dq = max(abs(got[int(i)] - w) for i, w in zip(top, want))
            stats["q"] = max(stats["q"], dq)
            if dq > 1e-4:
                failures.append(f"{name} sampled node {k}: q differs by {dq:.2e}")
            if tok not in got or got[tok] <= 0:
                failures.append(f"{name} sampled node {k}: token {tok} has no mass in q")
    return failures


def main():
    args = py_util.parse_args()
    try:
        import numpy  # noqa: F401
    except ImportError as e:
        py_util.skip(f"missing Python package: {e}")
    exe = py_util.built(args, os.path.join("tests", "spec", "dspark_ref_tool"))
    tiny = os.path.join(args.build_dir, "tiny_models")
    subprocess.run([sys.executable, os.path.join(args.source_dir, "scripts",
                                                 "make_tiny_models.py"), tiny], check=True)
    failures = []
    for target, drafter, target_hf in PAIRS:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "drafts.json")
            subprocess.run([exe, out, target, drafter], check=True)
            with open(out) as f:
                dump = json.load(f)
        ref = Reference(os.path.join(tiny, drafter),
                        os.path.join(tiny, target_hf) if target_hf else None)
        stats = {"logits": 0.0, "confidence": 0.0, "q": 0.0, "near_ties": 0}
        pair = f"{drafter} on {target}"
        for case in dump["cases"]:
            failures += compare(ref, case, dump["sample_temperature"],
                                len(dump["feature_layers"]), stats, pair)
        print(f"{pair}: U max |diff| / (1 + max |U|) {stats['logits']:.2e}, confidence "
              f"{stats['confidence']:.2e}, q {stats['q']:.2e}, near ties {stats['near_ties']}")
    return py_util.report(failures)


if __name__ == "__main__":
    sys.exit(main())
