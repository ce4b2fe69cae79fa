"""Hold-out evaluation of a drafter and sequential temperature scaling of its confidence head.

Rounds are simulated from a capture: at a random anchor s of a held-out sequence the drafter
sees the target's features at positions < s (teacher-forced context) and drafts B tokens
greedily with its OWN drafts as the Markov/confidence prev, as at inference. Greedy
verification accepts draft k when it equals the target's argmax at position s+k and all
earlier drafts were accepted.

Approximation: the capture stores the target's top-1 only along the recorded answer path. It is
the right verifier while the accepted drafts equal the recorded tokens, which always holds when
the answers were generated greedily by the target itself (accepted draft = argmax = next
recorded token). With sampled answers an accepted draft can leave the recorded path; such a
block is dropped from the statistics (counted as "off-path"). Anchors are taken only where all
B slots fall inside the answer, so no block is cut by the end of the answer.

Confidence metrics (spec section 5): for each block and position k, survival a_k = prod_{i<=k}
c_i against y_k = 1[drafts 0..k all accepted]; 20-bin ECE, AUROC (rank statistic), Brier.
Sequential temperature scaling: for k = 0..B-1 in order, grid-search T_k (log-spaced
[0.25, 8], 200 points) for c'_k = sigmoid(z_k / T_k) minimizing the ECE of position k's
survival, with T_<k fixed.
"""
import numpy as np
import torch


def collect_rounds(model, cap, seq_ids, n_anchors, rng, device="cpu", seqs_per_batch=4):
    """z [N, B] confidence logits and acc [N, B] bool (draft k accepted under greedy
    verification, i.e. with all earlier ones) over the held-out rounds; plus the off-path count."""
    B = model.B
    zs, accs, off_path = [], [], 0
    seq_ids = [g for g in seq_ids if len(_full_anchors(cap, g, B))]
    for i in range(0, len(seq_ids), seqs_per_batch):
        group = seq_ids[i:i + seqs_per_batch]
        picks = []
        for g in group:
            cand = _full_anchors(cap, g, B)
            picks.append(np.sort(rng.choice(cand, size=min(n_anchors, len(cand)), replace=False)))
        A = max(len(p) for p in picks)
        n_ctx = max(int(p.max()) for p in picks)
        feats = np.zeros((len(group), n_ctx, cap.m * cap.d), dtype=np.float32)
        starts = np.ones((len(group), A), dtype=np.int64)
        anchors = np.zeros((len(group), A), dtype=np.int64)
        for j, (g, p) in enumerate(zip(group, picks)):
            feats[j, :int(p.max())] = cap.features(g, int(p.max()))
            starts[j, :len(p)] = p
            anchors[j, :len(p)] = cap.tokens(g)[p]
        with torch.no_grad():
            ctx = model.context(torch.from_numpy(feats).to(device))
            h = model.backbone(ctx, torch.from_numpy(starts).to(device),
                               torch.from_numpy(anchors).to(device))
        for j, (g, p) in enumerate(zip(group, picks)):
            hj = h[j, :len(p)].float()
            drafts, z, _ = model.greedy_chain(hj, torch.from_numpy(anchors[j, :len(p)]).to(device))
            drafts, z = drafts.cpu().numpy(), z.cpu().numpy()
            tok = cap.tokens(g)
            top1 = cap.topk(g)[0][:, 0]
            pos = p[:, None] + np.arange(B)  # row predicting slot k = s + k
            hit = drafts == top1[pos]
            on_path = drafts == tok[pos + 1]
            acc = np.cumprod(hit, axis=1).astype(bool)
            # A block whose accepted drafts leave the recorded path cannot be judged further.
            bad = (acc & ~on_path)[:, :-1].any(1)
            off_path += int(bad.sum())
            zs.append(z[~bad])
            accs.append(acc[~bad])
    if not zs:
        raise ValueError("no held-out anchors with a full block inside the answer: use more "
                         "sequences or a larger --holdout-frac")
    return np.concatenate(zs), np.concatenate(accs), off_path


def _full_anchors(cap, g, B):
    """Anchors whose B predicted positions s+1..s+B are all answer tokens."""
    mask = cap.mask(g)
    s = cap.anchors(g)
    n = len(mask)
    ok = [x for x in s if x + B < n and mask[x + 1:x + B + 1].all()]
    return np.array(ok, dtype=np.int64)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def ece(prob, label, bins=20):
    """Expected calibration error with equal-width bins."""
    idx = np.minimum((prob * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        sel = idx == b
        if sel.any():
            total += sel.sum() * abs(prob[sel].mean() - label[sel].mean())
    return total / max(len(prob), 1)


def auroc(score, label):
    """Probability that a positive outranks a negative (ties count half); nan if one class."""
    pos, neg = label.sum(), (~label).sum()
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    s = score[order]
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1
        i = j + 1
    return float((ranks[label].sum() - pos * (pos + 1) / 2) / (pos * neg))


def survival(z, temps):
    """a [N, B] = cumulative product of sigmoid(z_k / T_k)."""
    return np.cumprod(sigmoid(z / np.asarray(temps)[None, :]), axis=1)


def confidence_metrics(z, acc, temps):
    """Per position and pooled ECE, AUROC, Brier of survival vs the accepted-prefix label."""
    a = survival(z, temps)
    rows = []
    for k in range(z.shape[1]):
        rows.append({"ece": ece(a[:, k], acc[:, k]), "auroc": auroc(a[:, k], acc[:, k]),
                     "brier": float(np.mean((a[:, k] - acc[:, k]) ** 2))})
    flat_a, flat_y = a.ravel(), acc.ravel()
    pooled = {"ece": ece(flat_a, flat_y), "auroc": auroc(flat_a, flat_y),
              "brier": float(np.mean((flat_a - flat_y) ** 2))}
    return rows, pooled


def fit_temperatures(z, acc, grid=None):
    """Sequential temperature scaling: T_k minimizing position k's survival ECE, T_<k fixed."""
    grid = np.geomspace(0.25, 8.0, 200) if grid is None else grid
    B = z.shape[1]
    temps, prefix = [], np.ones(z.shape[0])
    for k in range(B):
        best = min(grid, key=lambda T: ece(prefix * sigmoid(z[:, k] / T), acc[:, k]))
        temps.append(float(best))
        prefix = prefix * sigmoid(z[:, k] / best)
    return temps


def acceptance_summary(acc):
    """Prefix acceptance per position, conditional acceptance, and tau (incl. bonus)."""
    prefix = acc.mean(0)
    cond = [float(prefix[0])] + [float(prefix[k] / prefix[k - 1]) if prefix[k - 1] > 0
                                 else float("nan") for k in range(1, acc.shape[1])]
    tau = float(acc.sum(1).mean() + 1.0)
    return prefix.tolist(), cond, tau


def format_table(prefix, cond, raw, cal, temps):
    """A text table: one row per draft position."""
    lines = [f"{'k':>2} {'P(1..k acc)':>11} {'P(k|<k)':>8} {'ECE raw':>8} {'ECE cal':>8} "
             f"{'AUROC':>6} {'Brier raw':>9} {'Brier cal':>9} {'T_k':>6}"]
    for k in range(len(prefix)):
        lines.append(f"{k + 1:>2} {prefix[k]:>11.3f} {cond[k]:>8.3f} {raw[k]['ece']:>8.4f} "
                     f"{cal[k]['ece']:>8.4f} {cal[k]['auroc']:>6.3f} {raw[k]['brier']:>9.4f} "
                     f"{cal[k]['brier']:>9.4f} {temps[k]:>6.3f}")
    return "\n".join(lines)
