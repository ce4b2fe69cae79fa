#!/usr/bin/env python3
"""Train a DSpark drafter on `dspark capture` output, then evaluate and calibrate it.

  train_dspark.py train --capture DIR [DIR...] --target GGUF --out CKPT_DIR [options]
  train_dspark.py calibrate --capture DIR [DIR...] --ckpt CKPT_DIR --target GGUF

train: self-distillation as in DeepSpec (loss in dspark_loss.py), AdamW, linear warmup then
cosine decay, gradient clipping; resumable (--max-minutes stops cleanly and saves
CKPT_DIR/train_state.pt, --resume continues); writes the loadable checkpoint (config.json +
model.safetensors, without the frozen embedding/head) at the end and every --save-every
minutes, and loss curves (train_log.csv, train_loss.png when matplotlib is installed).
calibrate: hold-out acceptance, tau and confidence calibration (dspark_calib.py); writes the
fitted per-position temperatures into the checkpoint's config.json as confidence_temperatures.
See docs/dspark-training.md.
"""
import argparse
import contextlib
import csv
import json
import os
import random
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dspark_calib  # noqa: E402
from dspark_data import CaptureSet  # noqa: E402
from dspark_loss import dspark_loss, make_batch  # noqa: E402
from dspark_torch import (DSparkDrafter, describe_size, load_checkpoint, make_config,  # noqa: E402
                          read_target, save_checkpoint)

CSV_FIELDS = ["step", "epoch", "lr", "loss", "ce", "l1", "bce", "top1", "accept_prob",
              "tok_per_s", "elapsed_s"]


def pick_device(name):
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def autocast_for(device, dtype):
    """bf16 autocast on CUDA by default; fp32 on CPU (bf16 matmuls are much slower there)."""
    if dtype == "auto":
        dtype = "bf16" if device.startswith("cuda") else "fp32"
    if dtype == "fp32":
        return None
    return torch.autocast(device.split(":")[0], dtype=torch.bfloat16)


def loss_vocabulary(cap, train_ids, n, mask_id, device):
    """(vocab [V'] ids, vocab_pos [V] columns, coverage): the n most frequent answer tokens."""
    counts = cap.answer_counts(train_ids)
    counts[mask_id] = -1
    order = np.argsort(-counts, kind="stable")[:n]
    vocab = np.sort(order)
    pos = np.full(cap.V, -1, dtype=np.int64)
    pos[vocab] = np.arange(len(vocab))
    coverage = counts[vocab].clip(min=0).sum() / max(counts.clip(min=0).sum(), 1)
    return torch.from_numpy(vocab).to(device), torch.from_numpy(pos).to(device), float(coverage)


def lr_at(step, total, warmup, base):
    """Linear warmup over `warmup` steps, then cosine to 0 at `total`."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * 0.5 * (1.0 + np.cos(np.pi * progress))


def plot_curves(csv_path, png_path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no loss plot (the curve is in "
              f"{csv_path}; pip install -r scripts/requirements-train.txt)")
        return
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    steps = [int(r["step"]) for r in rows]
    for key in ("loss", "ce", "l1", "bce"):
        axes[0].plot(steps, [float(r[key]) for r in rows], label=key)
    axes[0].set_xlabel("step")
    axes[0].legend()
    axes[0].set_yscale("log")
    axes[1].plot(steps, [float(r["top1"]) for r in rows], label="top-1 (teacher forced)")
    axes[1].plot(steps, [float(r["accept_prob"]) for r in rows], label="1 - L1/2")
    axes[1].set_xlabel("step")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def build_model(args, cap, geom, embed, head):
    if args.mask_token_id is not None and not 0 <= args.mask_token_id < geom["vocab"]:
        raise ValueError(f"--mask-token-id {args.mask_token_id} outside [0, {geom['vocab']})")
    if not cap.layer_ids:
        raise ValueError("capture has no target_layer_ids")
    config = make_config(geom, cap.layer_ids, args.layers, args.intermediate_size,
                         args.block_size, args.mask_token_id, args.markov_rank)
    model = DSparkDrafter(config, embed, head)
    model.reset_parameters(args.seed)
    if args.init_norm_from_target and geom.get("output_norm") is not None:
        # Optional: the final norm starts as the target's (DeepSpec starts it at 1).
        with torch.no_grad():
            model.w("norm.weight").copy_(geom["output_norm"])
    return model


# Config fields a warm start must share with the run: they fix the parameters' shapes and
# meaning (the mask token's embedding is the target's, so the id is part of what was learned).
INIT_KEYS = ("hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads",
             "num_key_value_heads", "head_dim", "block_size", "markov_rank", "mask_token_id",
             "target_layer_ids", "vocab_size")


def init_from_checkpoint(model, old, folder):
    """Copy the trained drafter old's weights into model (a warm start with a fresh schedule)."""
    differ = [k for k in INIT_KEYS if old.config.get(k) != model.config.get(k)]
    if differ:
        raise ValueError(f"--init-from {folder}: " + ", ".join(
            f"{k} {old.config.get(k)} != {model.config.get(k)}" for k in differ))
    with torch.no_grad():
        for name in model.names:
            model.w(name).copy_(old.w(name))
    print(f"initialized from {folder} (its draft vocabulary, if any, is recomputed)")


def open_inputs(args):
    """(device, captures, target geometry, frozen embedding, frozen head), checked together."""
    device = pick_device(args.device)
    cap = CaptureSet(args.capture)
    geom, embed, head = read_target(args.target)
    cap.check_target(geom)
    return device, cap, geom, embed, head


def train(args):
    device, cap, geom, embed, head = open_inputs(args)
    state_path = os.path.join(args.out, "train_state.pt")
    state = None
    if args.resume:
        if not os.path.exists(state_path):
            raise FileNotFoundError(f"--resume: {state_path} does not exist")
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        saved = state["args"]
        for key in ("layers", "markov_rank", "intermediate_size", "block_size", "mask_token_id",
                    "holdout_frac", "loss_vocab", "seqs_per_step", "anchors", "seed"):
            setattr(args, key, saved[key])  # the run's shape and data order cannot change
    # A resumed run's weights come from its state, not from --init-from.
    init = load_checkpoint(args.init_from, (embed, head)) if args.init_from and not state else None
    if init is not None and args.mask_token_id is None:
        args.mask_token_id = init.config["mask_token_id"]
    model = build_model(args, cap, geom, embed, head)
    if init is not None:
        init_from_checkpoint(model, init, args.init_from)
    model = model.to(device)
    if args.mask_token_id is None:
        args.mask_token_id = model.mask_id
    train_ids, hold_ids = cap.split(args.holdout_frac)
    train_ids = np.array([g for g in train_ids if len(cap.anchors(g))])
    if len(train_ids) == 0:
        raise ValueError("no training sequence has an anchor (answer tokens with a successor)")
    mask_uses = cap.answer_counts(train_ids)[model.mask_id]
    if mask_uses:
        print(f"WARNING: mask token {model.mask_id} occurs {mask_uses} times in answers; "
              "choose another --mask-token-id")
    n, nbytes, text = describe_size(model, args.weight_dtype)
    print(f"drafter: {args.layers} layer(s), markov rank {args.markov_rank}, "
          f"{len(cap.layer_ids)} feature layers {cap.layer_ids}, mask token {model.mask_id}; {text}")
    print(f"capture: {len(cap)} sequences ({len(train_ids)} train, {len(hold_ids)} hold-out); "
          f"device {device}")
    vocab = vocab_pos = None
    if args.loss_vocab and args.loss_vocab < cap.V:
        vocab, vocab_pos, cov = loss_vocabulary(cap, train_ids, args.loss_vocab, model.mask_id,
                                                device)
        print(f"--loss-vocab {args.loss_vocab}: covers {100 * cov:.2f}% of answer tokens")
        model.draft_vocab = vocab  # saved with the checkpoint: the drafter proposes these ids
    steps_per_epoch = max(1, len(train_ids) // args.seqs_per_step)
    total = args.steps or int(args.epochs * steps_per_epoch)
    warmup = max(1, int(args.warmup_frac * total))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay,
                            betas=(0.9, 0.95))
    step, epoch, cursor = 0, 0, 0
    rng = np.random.default_rng(args.seed)
    if state is not None:
        model.load_state_dict(state["model"], strict=False)
        opt.load_state_dict(state["optimizer"])
        step, epoch, cursor = state["step"], state["epoch"], state["cursor"]
        rng.bit_generator.state = state["np_rng"]
        torch.set_rng_state(state["torch_rng"])
        random.setstate(state["py_rng"])
        print(f"resumed at step {step} (epoch {epoch}, position {cursor})")
    autocast = autocast_for(device, args.dtype)
    os.makedirs(args.out, exist_ok=True)
    csv_path = os.path.join(args.out, "train_log.csv")
    new_csv = state is None or not os.path.exists(csv_path)
    log = open(csv_path, "w" if new_csv else "a", newline="")
    writer = csv.DictWriter(log, fieldnames=CSV_FIELDS)
    if new_csv:
        writer.writeheader()
    with open(os.path.join(args.out, "train_args.json"), "w") as f:
        json.dump(vars(args), f, indent=2)
    t0 = last_save = time.time()
    window = {"rows": 0, "t": time.time()}
    acc_metrics = []

    def order_for(ep):
        return np.random.default_rng(args.seed * 1000003 + ep).permutation(train_ids)

    order = order_for(epoch)

    def save_state():
        torch.save({"model": {k: v for k, v in model.state_dict().items()},
                    "optimizer": opt.state_dict(), "step": step, "epoch": epoch,
                    "cursor": cursor, "np_rng": rng.bit_generator.state,
                    "torch_rng": torch.get_rng_state(), "py_rng": random.getstate(),
                    "args": vars(args)}, state_path + ".tmp")
        os.replace(state_path + ".tmp", state_path)

    stopped = False
    while step < total:
        if cursor + args.seqs_per_step > len(order):
            epoch, cursor = epoch + 1, 0
            order = order_for(epoch)
        seqs = order[cursor:cursor + args.seqs_per_step]
        cursor += args.seqs_per_step
        batch = make_batch(cap, seqs, args.anchors, model.B, rng, device)
        lr = lr_at(step, total, warmup, args.lr)
        for group in opt.param_groups:
            group["lr"] = lr
        loss, metrics = dspark_loss(model, batch, vocab, vocab_pos, autocast)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, args.clip)
        opt.step()
        step += 1
        window["rows"] += metrics["block_rows"]
        acc_metrics.append(metrics)
        if step % args.log_every == 0 or step == total:
            now = time.time()
            tps = window["rows"] / max(now - window["t"], 1e-9)
            mean = {k: float(np.mean([m[k] for m in acc_metrics]))
                    for k in ("loss", "ce", "l1", "bce", "top1", "accept_prob")}
            elapsed = now - t0
            eta = elapsed / max(step - (state["step"] if state else 0), 1) * (total - step)
            print(f"step {step}/{total} ep {epoch} lr {lr:.2e} loss {mean['loss']:.4f} "
                  f"(ce {mean['ce']:.3f} l1 {mean['l1']:.3f} bce {mean['bce']:.3f}) "
                  f"top1 {mean['top1']:.3f} accept~ {mean['accept_prob']:.3f} "
                  f"{tps:.0f} block tok/s elapsed {elapsed / 60:.1f} min ETA {eta / 60:.1f} min",
                  flush=True)
            writer.writerow({"step": step, "epoch": epoch, "lr": lr, **mean, "tok_per_s": tps,
                             "elapsed_s": elapsed})
            log.flush()
            window, acc_metrics = {"rows": 0, "t": time.time()}, []
        if args.save_every and time.time() - last_save > 60 * args.save_every:
            save_checkpoint(args.out, model, args.weight_dtype,
                            include_frozen=args.include_embeddings)
            save_state()
            last_save = time.time()
        if args.max_minutes and time.time() - t0 > 60 * args.max_minutes and step < total:
            print(f"--max-minutes {args.max_minutes} reached at step {step}: saving; continue "
                  "with --resume")
            stopped = True
            break
    log.close()
    size = save_checkpoint(args.out, model, args.weight_dtype,
                           include_frozen=args.include_embeddings)
    save_state()
    plot_curves(csv_path, os.path.join(args.out, "train_loss.png"))
    print(f"{'stopped' if stopped else 'done'}: step {step}/{total}; checkpoint "
          f"{args.out}/model.safetensors {size / 1e6:.1f} MB")
    return model


def calibrate(args):
    device, cap, geom, embed, head = open_inputs(args)
    model = load_checkpoint(args.ckpt, (embed, head)).to(device).eval()
    if model.config["target_layer_ids"] != cap.layer_ids:
        raise ValueError(f"checkpoint target_layer_ids {model.config['target_layer_ids']} != "
                         f"capture {cap.layer_ids}")
    frac = args.holdout_frac
    saved = os.path.join(args.ckpt, "train_args.json")
    if frac is None:
        frac = json.load(open(saved))["holdout_frac"] if os.path.exists(saved) else 0.05
    _, hold = cap.split(frac)
    if args.max_seqs:
        hold = hold[:args.max_seqs]
    rng = np.random.default_rng(args.seed)
    z, acc, off = dspark_calib.collect_rounds(model, cap, list(hold), args.anchors, rng, device)
    prefix, cond, tau = dspark_calib.acceptance_summary(acc)
    B = model.B
    ones = [1.0] * B
    raw, raw_pool = dspark_calib.confidence_metrics(z, acc, ones)
    temps = dspark_calib.fit_temperatures(z, acc)
    cal, cal_pool = dspark_calib.confidence_metrics(z, acc, temps)
    print(f"hold-out: {len(hold)} sequences (holdout_frac {frac}), {len(z)} rounds, "
          f"{off} off-path blocks dropped")
    print(f"tau (mean accepted + bonus, max {B + 1}): {tau:.3f}")
    print(dspark_calib.format_table(prefix, cond, raw, cal, temps))
    print(f"pooled: ECE {raw_pool['ece']:.4f} -> {cal_pool['ece']:.4f}, AUROC "
          f"{raw_pool['auroc']:.3f} -> {cal_pool['auroc']:.3f}, Brier {raw_pool['brier']:.4f} "
          f"-> {cal_pool['brier']:.4f}")
    report = {"tau": tau, "prefix_accept": prefix, "conditional_accept": cond,
              "temperatures": temps, "raw": raw, "calibrated": cal, "raw_pooled": raw_pool,
              "calibrated_pooled": cal_pool, "rounds": int(len(z)), "off_path": off}
    with open(os.path.join(args.ckpt, "calibration.json"), "w") as f:
        json.dump(report, f, indent=2)
    if not args.no_write:
        path = os.path.join(args.ckpt, "config.json")
        with open(path) as f:
            config = json.load(f)
        config["confidence_temperatures"] = temps
        with open(path + ".tmp", "w") as f:
            json.dump(config, f, indent=2)
        os.replace(path + ".tmp", path)
        print(f"wrote confidence_temperatures into {path}")
    return report


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train a drafter")
    t.add_argument("--capture", nargs="+", required=True, help="capture directories")
    t.add_argument("--target", required=True, help="target GGUF (embedding, head, geometry)")
    t.add_argument("--out", required=True, help="checkpoint directory")
    t.add_argument("--layers", type=int, default=1, help="draft layers")
    t.add_argument("--markov-rank", type=int, default=64)
    t.add_argument("--intermediate-size", type=int, default=None, help="default: target's")
    t.add_argument("--block-size", type=int, default=7)
    t.add_argument("--mask-token-id", type=int, default=None,
                   help="default: an unused control token of the target's vocabulary")
    t.add_argument("--lr", type=float, default=6e-4)
    t.add_argument("--warmup-frac", type=float, default=0.04)
    t.add_argument("--weight-decay", type=float, default=0.0)
    t.add_argument("--clip", type=float, default=1.0)
    t.add_argument("--epochs", type=float, default=1.0)
    t.add_argument("--steps", type=int, default=0, help="total steps (overrides --epochs)")
    t.add_argument("--seqs-per-step", type=int, default=4)
    t.add_argument("--anchors", type=int, default=16, help="anchors per sequence per step")
    t.add_argument("--loss-vocab", type=int, default=0,
                   help="logits/losses over the N most frequent answer tokens (0 = all)")
    t.add_argument("--holdout-frac", type=float, default=0.05)
    t.add_argument("--max-minutes", type=float, default=0)
    t.add_argument("--save-every", type=float, default=10, help="minutes (0 = only at the end)")
    t.add_argument("--resume", action="store_true")
    t.add_argument("--log-every", type=int, default=10)
    t.add_argument("--dtype", choices=("auto", "fp32", "bf16"), default="auto")
    t.add_argument("--weight-dtype", choices=("BF16", "F16", "F32"), default="BF16")
    t.add_argument("--device", default="auto")
    t.add_argument("--init-norm-from-target", action="store_true",
                   help="start norm.weight at the target's output norm (default: ones)")
    t.add_argument("--init-from", metavar="CKPT_DIR",
                   help="start from a trained drafter's weights (same shape, mask token and "
                        "feature layers) with a fresh optimizer and schedule")
    t.add_argument("--include-embeddings", action="store_true",
                   help="also write embed_tokens/lm_head (for loaders that need them)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    c = sub.add_parser("calibrate", help="hold-out evaluation + confidence temperatures")
    c.add_argument("--capture", nargs="+", required=True)
    c.add_argument("--ckpt", required=True)
    c.add_argument("--target", required=True)
    c.add_argument("--holdout-frac", type=float, default=None,
                   help="default: the training run's (train_args.json), else 0.05")
    c.add_argument("--anchors", type=int, default=16, help="anchors per held-out sequence")
    c.add_argument("--max-seqs", type=int, default=0)
    c.add_argument("--device", default="auto")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--no-write", action="store_true", help="do not update config.json")
    c.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    with contextlib.suppress(AttributeError):
        torch.backends.cuda.matmul.allow_tf32 = True
    return train(args) if args.cmd == "train" else calibrate(args)


if __name__ == "__main__":
    try:
        main()
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
