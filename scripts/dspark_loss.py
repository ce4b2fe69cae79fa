"""Training blocks and the DSpark loss (DeepSpec's recipe, see docs/dspark-training.md).

A batch holds S sequences with A random anchors each. Anchor s (an answer token with an answer
token after it) gets the block [s, MASK x (B-1)] at positions s..s+B-1; slot k predicts token
s+k+1. Slot k is supervised while s+k+1 exists and tokens s+1..s+k+1 are all answer tokens (a
contiguous prefix, as DeepSpec's eval mask). Teacher forcing: prev_0 = the anchor, prev_k =
token s+k. The target's distribution for slot k is the captured top-K at row s+k.

Loss = 0.1 CE + 0.9 L1 + 1.0 BCE, each a mean weighted by exp(-k / 4) over supervised slots:
  CE  = -log softmax(L_k)[token s+k+1]
  L1  = ||q_k - p_k||_1, q_k = softmax(L_k) (DeepSpec uses the full L1 distance, not half)
  BCE = BCE(sigmoid(z_k), c*_k), c*_k = clamp(1 - L1/2, 0, 1) detached (expected acceptance)
"""
import numpy as np
import torch
import torch.nn.functional as F

CE_ALPHA, L1_ALPHA, CONF_ALPHA, DECAY_GAMMA = 0.1, 0.9, 1.0, 4.0


def make_batch(cap, seq_ids, n_anchors, B, rng, device="cpu"):
    """Tensors of S = len(seq_ids) sequences x n_anchors blocks (fewer anchors: padded, masked).

    feats [S, n, m*d] (n = the largest anchor position: context rows < s are all a block sees),
    starts/anchors/keep [S, A], labels/prev [S, A, B], valid [S, A, B], topk ids/probs
    [S, A, B, K]."""
    S, A = len(seq_ids), n_anchors
    rows = []
    for g in seq_ids:
        cand = cap.anchors(g)
        pick = np.sort(rng.choice(cand, size=min(A, len(cand)), replace=False))
        rows.append((g, pick))
    n_ctx = max(int(p.max()) for _, p in rows)
    feats = np.zeros((S, n_ctx, cap.m * cap.d), dtype=np.float32)
    starts = np.ones((S, A), dtype=np.int64)
    keep = np.zeros((S, A), dtype=bool)
    labels = np.zeros((S, A, B), dtype=np.int64)
    prev = np.zeros((S, A, B), dtype=np.int64)
    valid = np.zeros((S, A, B), dtype=bool)
    tk_ids = np.zeros((S, A, B, cap.K), dtype=np.int64)
    tk_p = np.zeros((S, A, B, cap.K), dtype=np.float32)
    for i, (g, pick) in enumerate(rows):
        tok, mask = cap.tokens(g), cap.mask(g)
        ids, probs = cap.topk(g)
        n = len(tok)
        upto = int(pick.max())
        feats[i, :upto] = cap.features(g, upto)
        a = len(pick)
        starts[i, :a], keep[i, :a] = pick, True
        lab_pos = pick[:, None] + 1 + np.arange(B)  # [a, B] position each slot predicts
        ok = lab_pos < n
        safe = np.minimum(lab_pos, n - 1)
        ok &= mask[safe]
        valid[i, :a] = np.cumprod(ok, axis=1).astype(bool)
        labels[i, :a] = tok[safe]
        prev[i, :a] = tok[np.minimum(lab_pos - 1, n - 1)]  # prev_k = token s+k (prev_0 = anchor)
        tk_ids[i, :a] = ids[safe - 1]
        tk_p[i, :a] = probs[safe - 1]
    t = lambda x: torch.from_numpy(x).to(device)  # noqa: E731
    return {"feats": t(feats), "starts": t(starts), "anchors": t(prev[:, :, 0].copy()),
            "keep": t(keep), "labels": t(labels), "prev": t(prev), "valid": t(valid),
            "topk_ids": t(tk_ids), "topk_probs": t(tk_p)}


def topk_l1(logq, ids_pos, probs):
    """||q - p||_1 per row from log q [R, V'] and the target's top-K (ids_pos [R, K] = column of
    each id in logq, -1 when outside the evaluated vocabulary; probs [R, K]).

    Only p's top K is known. Inside it the distance is exact; outside, q has mass
    Q_out = 1 - sum q(top K) and p has its residual rho = 1 - sum p(top K), spread unknown. We
    count |Q_out - rho|: exact when p's residual is spread like q's mass there, a lower bound
    otherwise (rho is ~0 when the capture's K covers the distribution)."""
    inside = ids_pos >= 0
    q_top = torch.exp(logq.gather(1, ids_pos.clamp(min=0))) * inside
    p_top = probs * inside
    q_out = (1.0 - q_top.sum(1)).clamp(min=0.0)
    rho = (1.0 - p_top.sum(1)).clamp(min=0.0)
    return (q_top - p_top).abs().sum(1) + (q_out - rho).abs()


def dspark_loss(model, batch, vocab=None, vocab_pos=None, autocast=None):
    """(total loss, metrics dict). vocab [V'] restricts logits to those ids (--loss-vocab) and
    vocab_pos [V] maps a token id to its column there (-1 outside); None = full vocabulary."""
    B = model.B
    ctx_mgr = autocast if autocast is not None else torch.autocast("cpu", enabled=False)
    with ctx_mgr:
        ctx = model.context(batch["feats"])
        h = model.backbone(ctx, batch["starts"], batch["anchors"])  # [S, A, B, d]
    valid = batch["valid"]
    h = h[valid].float()  # [R, d]: only supervised slots do vocabulary-sized work
    prev, labels = batch["prev"][valid], batch["labels"][valid]
    slot = torch.arange(B, device=h.device).expand(valid.shape)[valid]
    weight = torch.exp(-slot.float() / DECAY_GAMMA)
    ids, probs = batch["topk_ids"][valid], batch["topk_probs"][valid]
    if vocab is not None:
        lab_col, ids_col = vocab_pos[labels], vocab_pos[ids]
    else:
        lab_col, ids_col = labels, ids
    L = model.corrected_logits(h, prev, vocab)  # [R, V']
    logq = F.log_softmax(L.float(), dim=-1)
    ce_ok = lab_col >= 0
    ce_tok = -logq.gather(1, lab_col.clamp(min=0)[:, None]).squeeze(1)
    w_ce = weight * ce_ok
    ce = (ce_tok * w_ce).sum() / (w_ce.sum() + 1e-6)
    l1_tok = topk_l1(logq, ids_col, probs)
    l1 = (l1_tok * weight).sum() / (weight.sum() + 1e-6)
    target = (1.0 - 0.5 * l1_tok).clamp(0.0, 1.0).detach()
    z = model.confidence_logit(h, prev)
    bce_tok = F.binary_cross_entropy_with_logits(z.float(), target, reduction="none")
    bce = (bce_tok * weight).sum() / (weight.sum() + 1e-6)
    total = CE_ALPHA * ce + L1_ALPHA * l1 + CONF_ALPHA * bce
    with torch.no_grad():
        hit = (L.argmax(-1) == lab_col) & ce_ok
        per_slot = [float(hit[slot == k].float().mean()) if bool((slot == k).any()) else float("nan")
                    for k in range(B)]
        metrics = {"loss": float(total), "ce": float(ce), "l1": float(l1), "bce": float(bce),
                   "top1": float(hit.float().mean()), "top1_slot": per_slot,
                   "accept_prob": float(target.mean()), "label_coverage": float(ce_ok.float().mean()),
                   "slots": int(valid.sum()), "block_rows": int(batch["keep"].sum()) * B}
    return total, metrics
