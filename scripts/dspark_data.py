"""Reader of `dspark capture` directories (and a writer of synthetic ones for tests).

A capture directory holds meta.json and, per shard NAME, raw little-endian arrays:
  NAME.tokens.i32 [N]      NAME.offsets.i64 [S+1] (sequence starts, offsets[S] = N)
  NAME.mask.u8 [N]         1 = answer token
  NAME.features.f16 [N, m, d]   target hidden states after each of target_layer_ids
  NAME.topk_ids.i32 [N, K], NAME.topk_probs.f16 [N, K]   target's top-K distribution at
                                position t, i.e. over token t+1 (T = 1)
Everything is np.memmap'ed; a sequence is addressed by its global index over all directories
and shards, in order. The hold-out split hashes that index, so it is deterministic.
"""
import json
import os

import numpy as np


class CaptureSet:
    """One or more capture directories of the same target and feature layers."""

    def __init__(self, dirs):
        self.meta, self.seqs, self.shards = None, [], []
        for folder in dirs:
            path = os.path.join(folder, "meta.json")
            if not os.path.exists(path):
                raise FileNotFoundError(f"{path}: not a capture directory (no meta.json)")
            with open(path) as f:
                meta = json.load(f)
            if meta.get("version") != 1 or meta.get("feature_dtype", "f16") != "f16":
                raise ValueError(f"{path}: unsupported version {meta.get('version')} / "
                                 f"feature_dtype {meta.get('feature_dtype')}")
            keys = ("n_layers", "d_model", "vocab_size", "target_layer_ids", "top_k")
            if self.meta is None:
                self.meta = meta
            elif any(meta[k] != self.meta[k] for k in keys):
                raise ValueError(f"{folder}: {[(k, meta[k]) for k in keys]} differs from "
                                 f"{dirs[0]}: {[(k, self.meta[k]) for k in keys]}")
            for shard in meta["shards"]:
                self._open(folder, shard)
        if self.meta is None or not self.seqs:
            raise ValueError(f"no sequences in {dirs}")
        self.layer_ids = list(self.meta["target_layer_ids"])
        self.m, self.d = len(self.layer_ids), self.meta["d_model"]
        self.V, self.K = self.meta["vocab_size"], self.meta["top_k"]

    def _open(self, folder, shard):
        m, d, K = len(self.meta["target_layer_ids"]), self.meta["d_model"], self.meta["top_k"]
        S, N = shard["n_seqs"], shard["n_tokens"]
        base = os.path.join(folder, shard["name"])

        def mm(suffix, dtype, shape):
            path = f"{base}.{suffix}"
            if not os.path.exists(path):
                raise FileNotFoundError(f"{path}: missing capture array")
            want = int(np.prod(shape)) * np.dtype(dtype).itemsize
            if os.path.getsize(path) != want:
                raise ValueError(f"{path}: {os.path.getsize(path)} bytes, expected {want} "
                                 f"for shape {shape}")
            return np.memmap(path, dtype=dtype, mode="r", shape=shape)
        arr = {"tokens": mm("tokens.i32", "<i4", (N,)), "offsets": mm("offsets.i64", "<i8", (S + 1,)),
               "mask": mm("mask.u8", "u1", (N,)), "features": mm("features.f16", "<f2", (N, m, d)),
               "topk_ids": mm("topk_ids.i32", "<i4", (N, K)),
               "topk_probs": mm("topk_probs.f16", "<f2", (N, K))}
        off = np.asarray(arr["offsets"])
        if off[0] != 0 or off[-1] != N or np.any(np.diff(off) < 0):
            raise ValueError(f"{base}.offsets.i64: not increasing from 0 to {N}")
        idx = len(self.shards)
        self.shards.append(arr)
        self.seqs += [(idx, int(off[i]), int(off[i + 1])) for i in range(S)]

    def check_target(self, geom):
        """Raises when the capture was not made with this target (geometry from read_target)."""
        bad = [(k, self.meta[k], geom[g]) for k, g in (("d_model", "d_model"),
               ("vocab_size", "vocab"), ("n_layers", "n_layers")) if self.meta[k] != geom[g]]
        if bad:
            raise ValueError("capture and target differ: " + ", ".join(
                f"{k} {a} (capture) vs {b} (target)" for k, a, b in bad))

    def __len__(self):
        return len(self.seqs)

    def split(self, holdout_frac):
        """(train indices, hold-out indices): a fixed hash of the global sequence index."""
        idx = np.arange(len(self.seqs), dtype=np.uint64)
        h = (idx * np.uint64(2654435761) + np.uint64(12345)) % np.uint64(1 << 32)
        hold = h.astype(np.float64) / float(1 << 32) < holdout_frac
        return np.nonzero(~hold)[0], np.nonzero(hold)[0]

    def _slice(self, g, key, end=None):
        shard, begin, stop = self.seqs[g]
        return self.shards[shard][key][begin:stop if end is None else begin + end]

    def length(self, g):
        return self.seqs[g][2] - self.seqs[g][1]

    def tokens(self, g):
        return np.asarray(self._slice(g, "tokens"), dtype=np.int64)

    def mask(self, g):
        return np.asarray(self._slice(g, "mask"), dtype=bool)

    def features(self, g, n):
        """float32 [n, m*d] of the first n positions."""
        return np.asarray(self._slice(g, "features", n), dtype=np.float32).reshape(n, -1)

    def topk(self, g):
        """(ids int64 [n, K], probs float32 [n, K])."""
        return (np.asarray(self._slice(g, "topk_ids"), dtype=np.int64),
                np.asarray(self._slice(g, "topk_probs"), dtype=np.float32))

    def anchors(self, g):
        """Valid anchor positions s: s >= 1, tokens s and s+1 both answer tokens (the anchor is
        a committed answer token, as at inference; slot 0 has a label)."""
        mask = self.mask(g)
        s = np.nonzero(mask[1:-1] & mask[2:])[0] + 1
        return s

    def answer_counts(self, indices):
        """Counts [V] of answer tokens over the given sequences (for --loss-vocab)."""
        counts = np.zeros(self.V, dtype=np.int64)
        for g in indices:
            t = self.tokens(g)[self.mask(g)]
            counts += np.bincount(t, minlength=self.V)[:self.V]
        return counts


def write_synthetic_capture(folder, n_seqs=24, seq_len=(40, 90), n_layers=4, layer_ids=(-1, 1, 2),
                            d=32, V=64, K=8, n_shards=2, seed=0, prompt_frac=0.3, mask_token=None):
    """A capture directory with learnable structure: tokens follow a random sparse bigram chain,
    features at t encode tokens t and t+1 (plus noise), and the 'target' puts most of its top-K
    mass on the true next token. mask_token, when given, never occurs."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    m = len(layer_ids)
    succ = rng.integers(0, V, size=(V, 3))  # each token has 3 likely successors
    emb = rng.standard_normal((V, m, d)).astype(np.float32)
    emb2 = rng.standard_normal((V, m, d)).astype(np.float32)
    shards, per = [], [len(a) for a in np.array_split(np.arange(n_seqs), n_shards)]
    for s_i, S in enumerate(per):
        name = f"shard-{s_i:05d}"
        lens = rng.integers(seq_len[0], seq_len[1] + 1, size=S)
        toks, masks = [], []
        for n in lens:
            t = [int(rng.integers(0, V))]
            for _ in range(n - 1):
                t.append(int(succ[t[-1], rng.integers(0, 3)]) if rng.random() < 0.9
                         else int(rng.integers(0, V)))
            t = np.array(t)
            if mask_token is not None:
                t[t == mask_token] = (mask_token + 1) % V
            mk = np.zeros(n, dtype=np.uint8)
            mk[int(n * prompt_frac):] = 1
            toks.append(t)
            masks.append(mk)
        tokens = np.concatenate(toks).astype("<i4")
        N = len(tokens)
        offsets = np.concatenate([[0], np.cumsum(lens)]).astype("<i8")
        nxt = np.concatenate([np.append(t[1:], t[-1]) for t in toks])
        feats = emb[tokens] + 0.5 * emb2[nxt] + 0.1 * rng.standard_normal((N, m, d))
        ids = rng.integers(0, V, size=(N, K))
        ids[:, 0] = nxt
        for j in range(1, K):  # distinct ids per row
            dup = (ids[:, j:j + 1] == ids[:, :j]).any(1)
            ids[dup, j] = (nxt[dup] + j) % V
        probs = np.sort(rng.dirichlet(np.ones(K) * 0.3, size=N), axis=1)[:, ::-1] * 0.4
        probs[:, 0] += 0.55  # 95% of the mass in the top K
        arrays = {"tokens.i32": tokens, "offsets.i64": offsets,
                  "mask.u8": np.concatenate(masks).astype("u1"),
                  "features.f16": feats.astype("<f2"), "topk_ids.i32": ids.astype("<i4"),
                  "topk_probs.f16": probs.astype("<f2")}
        for suffix, a in arrays.items():
            np.ascontiguousarray(a).tofile(os.path.join(folder, f"{name}.{suffix}"))
        shards.append({"name": name, "n_seqs": int(S), "n_tokens": int(N)})
    meta = {"version": 1, "model": "synthetic", "n_layers": n_layers, "d_model": d,
            "vocab_size": V, "target_layer_ids": list(layer_ids), "top_k": K,
            "max_len": int(seq_len[1]), "feature_dtype": "f16", "samples_done": n_seqs,
            "shards": shards}
    with open(os.path.join(folder, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
    return meta
