#!/usr/bin/env python3
"""The PyTorch DSpark drafter (scripts/dspark_torch.py) against the C++ drafter, and a smoke
test of the trainer (scripts/train_dspark.py).

Parity: dspark_ref_tool runs the tiny qwen3 target and the dspark-qwen3 drafter over four
prompts and dumps the features, greedy drafts, confidences and base logits U (see
dspark_ref.py). The torch drafter, in fp32, recomputes U and the confidences from the same
features with the C++ drafts as Markov/confidence prev (so one near tie cannot derail the
chain), rounding K/V to fp16 as the C++ cache does; tolerances as dspark_ref.py:
U max |diff| <= 1e-4 * (1 + max |U|), confidences <= 2e-5. Without the fp16 rounding (the
training math) U must agree within 2e-3 relative. Its own greedy chain must equal the C++
drafts up to the first near tie (top-2 margin < 1e-3).

Trainer: a synthetic capture of the tiny target's geometry; a few dozen steps must lower the
loss; the written checkpoint (no embedding/head) reloads with the target GGUF into identical
outputs and round-trips bit-exactly; calibrate writes B temperatures; and `dspark generate
--spec-method dspark` accepts the checkpoint (greedy output equal to plain decoding).

Exit 0 pass, 1 fail, 77 skip when a training package (torch, numpy, gguf) is missing, unless
DSPARK_REQUIRE_TORCH=1. PyTorch is optional (scripts/setup.sh --train), so DSPARK_REQUIRE_MODELS=1,
which CI sets for the models, does not turn its absence into a failure.
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import py_util  # noqa: E402

TIE = 1e-3


def require_packages():
    try:
        import numpy  # noqa: F401
        import torch  # noqa: F401
        import gguf  # noqa: F401
    except ImportError as e:
        if os.environ.get("DSPARK_REQUIRE_TORCH") == "1":
            print(f"FAIL: missing Python package: {e} (DSPARK_REQUIRE_TORCH=1)")
            sys.exit(1)
        print(f"SKIP: missing Python package: {e} (bash scripts/setup.sh --train)")
        sys.exit(py_util.SKIP)


def parity(args, tiny, failures):
    import numpy as np
    import torch
    from dspark_torch import load_checkpoint
    exe = py_util.built(args, os.path.join("tests", "spec", "dspark_ref_tool"))
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "drafts.json")
        subprocess.run([exe, out], check=True)
        with open(out) as f:
            dump = json.load(f)
    model = load_checkpoint(os.path.join(tiny, "dspark-qwen3"))
    m = len(dump["feature_layers"])
    stats = {"U": 0.0, "U_nofp16": 0.0, "conf": 0.0, "ties": 0}
    for case in dump["cases"]:
        tokens = case["tokens"]
        start, anchor = len(tokens) - 1, tokens[-1]
        feats = np.asarray(case["features"], dtype=np.float32).reshape(start, m * model.d)
        t = case["greedy"]
        n = len(t["tokens"])
        name = f"context {start}"
        prevs = torch.tensor([[anchor] + list(t["tokens"][:model.B - 1])
                              + [0] * max(0, model.B - n)])[:, :model.B]
        for fp16 in (True, False):
            model.kv_fp16 = fp16
            _, conf, U, _ = model.draft(feats, anchor, prevs=prevs)
            got = np.asarray(t["logits"]).reshape(n, -1)
            scale = 1.0 + np.abs(got).max()
            du = float(np.abs(got - U[:n].numpy()).max() / scale)
            key = "U" if fp16 else "U_nofp16"
            stats[key] = max(stats[key], du)
            if du > (1e-4 if fp16 else 2e-3):
                failures.append(f"{name}: U differs by {du:.2e} relative (kv fp16 {fp16})")
            if fp16:
                dc = float(np.abs(np.asarray(t["confidence"]) - conf[:n].numpy()).max())
                stats["conf"] = max(stats["conf"], dc)
                if dc > 2e-5:
                    failures.append(f"{name}: confidences {t['confidence']} vs "
                                    f"{conf[:n].tolist()}")
        model.kv_fp16 = True
        drafts, _, _, L = model.draft(feats, anchor)
        for k in range(n):
            if int(drafts[k]) != t["tokens"][k]:
                row = L[k]
                margin = float(row.max() - row[t["tokens"][k]])
                if margin >= TIE:
                    failures.append(f"{name}: greedy node {k} torch {int(drafts[k])} vs C++ "
                                    f"{t['tokens'][k]} (margin {margin:.2e})")
                else:
                    stats["ties"] += 1
                break  # the chains diverge after a tie
    print(f"parity: U max |diff| / (1 + max |U|) {stats['U']:.2e} (fp16 K/V), "
          f"{stats['U_nofp16']:.2e} (fp32 K/V); confidence {stats['conf']:.2e}; "
          f"near ties {stats['ties']}")


def trainer(args, tiny, failures):
    import numpy as np
    import torch
    import train_dspark
    from dspark_data import write_synthetic_capture
    from dspark_torch import load_checkpoint, read_target, save_checkpoint
    target = os.path.join(tiny, "qwen3-f16.gguf")
    geom, embed, head = read_target(target)
    with tempfile.TemporaryDirectory() as tmp:
        cap = os.path.join(tmp, "capture")
        write_synthetic_capture(cap, n_seqs=24, n_layers=geom["n_layers"], layer_ids=(-1, 0),
                                d=geom["d_model"], V=geom["vocab"], K=8,
                                mask_token=geom["mask_token"])
        ckpt = os.path.join(tmp, "ckpt")
        common = ["--capture", cap, "--target", target, "--out", ckpt, "--steps", "30",
                  "--log-every", "5", "--lr", "1e-2", "--holdout-frac", "0.25",
                  "--seqs-per-step", "2", "--anchors", "8", "--threads", "2",
                  "--loss-vocab", str(geom["vocab"] // 2)]
        # Half the steps, stop, resume: the state file carries the run across.
        train_dspark.main(["train"] + common + ["--max-minutes", "1e-9"])
        model = train_dspark.main(["train"] + common + ["--resume"])
        with open(os.path.join(ckpt, "train_log.csv")) as f:
            rows = [line.split(",") for line in f.read().split("\n")[1:] if line]
        first, last = float(rows[0][3]), float(rows[-1][3])
        print(f"trainer: loss {first:.4f} -> {last:.4f} over {rows[-1][0]} steps")
        if not last < first:
            failures.append(f"training did not lower the loss ({first} -> {last})")
        if int(rows[-1][0]) != 30:
            failures.append(f"resumed run ended at step {rows[-1][0]}, not 30")
        names = _tensor_names(os.path.join(ckpt, "model.safetensors"))
        if "embed_tokens.weight" in names or "lm_head.weight" in names:
            failures.append("checkpoint holds the frozen embedding/head")
        # --loss-vocab: the checkpoint lists the ids it drafts from, and drafts only those.
        if "draft_vocab_ids" not in names:
            failures.append("a --loss-vocab checkpoint has no draft_vocab_ids")
        # Reload (BF16) with the target GGUF; save again; files and outputs identical.
        a = load_checkpoint(ckpt, target)
        again = os.path.join(tmp, "again")
        save_checkpoint(again, a, "BF16")
        if open(os.path.join(ckpt, "model.safetensors"), "rb").read() != \
                open(os.path.join(again, "model.safetensors"), "rb").read():
            failures.append("BF16 checkpoint does not round-trip bit-exactly")
        b = load_checkpoint(again, (embed, head))
        f32 = os.path.join(tmp, "f32")
        save_checkpoint(f32, model, "F32")
        c = load_checkpoint(f32, target)
        feats = np.random.default_rng(1).standard_normal((9, 2 * geom["d_model"]))
        outs = [mdl.draft(feats.astype(np.float32), 5) for mdl in (a, b, model, c)]
        if not (torch.equal(outs[0][2], outs[1][2]) and torch.equal(outs[0][1], outs[1][1])):
            failures.append("reloaded BF16 checkpoint gives different outputs")
        if not (torch.equal(outs[2][2], outs[3][2]) and torch.equal(outs[2][1], outs[3][1])):
            failures.append("F32 checkpoint reload differs from the trained model")
        listed = set(a.draft_vocab.tolist()) if a.draft_vocab is not None else set()
        if len(listed) != geom["vocab"] // 2 or not set(outs[0][0].tolist()) <= listed or \
                outs[0][2].shape[-1] != len(listed):
            failures.append(f"draft vocabulary: {len(listed)} ids listed, drafts "
                            f"{outs[0][0].tolist()}, U over {outs[0][2].shape[-1]} columns")
        warm_start(train_dspark, common, ckpt, os.path.join(tmp, "warm"), a, failures)
        report = train_dspark.main(["calibrate", "--capture", cap, "--ckpt", ckpt, "--target",
                                    target, "--anchors", "8"])
        with open(os.path.join(ckpt, "config.json")) as f:
            temps = json.load(f).get("confidence_temperatures")
        if not temps or len(temps) != a.B or report["tau"] < 1.0:
            failures.append(f"calibrate wrote temperatures {temps}, tau {report['tau']}")
        cpp_generate(args, tiny, ckpt, failures)


def warm_start(train_dspark, common, ckpt, out, trained, failures):
    """--init-from starts from the trained weights (one step at a negligible rate changes
    nothing visible), and refuses a checkpoint of another shape."""
    args = [a if a != ckpt else out for a in common]
    steps = args.index("--steps")
    args[steps + 1] = "1"
    warm = train_dspark.main(["train"] + args + ["--init-from", ckpt, "--lr", "1e-12"])
    worst = max(float((warm.w(n) - trained.w(n)).detach().abs().max()) for n in trained.names)
    if worst > 1e-6:
        failures.append(f"--init-from: weights moved by {worst} after one step at lr 1e-12")
    try:
        train_dspark.main(["train"] + args + ["--init-from", ckpt, "--markov-rank", "3"])
        failures.append("--init-from accepted a checkpoint of another markov rank")
    except ValueError as e:
        if "markov_rank" not in str(e):
            failures.append(f"--init-from mismatch error does not name the field: {e}")


def _tensor_names(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return set(json.loads(f.read(n))) - {"__metadata__"}


def cpp_generate(args, tiny, ckpt, failures):
    """`dspark generate` with the trained checkpoint on its tiny target, greedy, compared with
    plain decoding (--compare-plain fails when the outputs differ)."""
    exe = os.path.join(args.build_dir, "dspark")
    if not os.path.exists(exe):
        failures.append(f"{exe} not built")
        return
    cmd = [exe, "generate", "-m", os.path.join(tiny, "qwen3-f16.gguf"), "--spec-method",
           "dspark", "--draft-model", ckpt, "-p", "The quick brown fox", "-n", "24", "--temp",
           "0", "-q", "--seed", "1", "--compare-plain"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if run.returncode != 0 and "missing tensor 'embed_tokens.weight'" in run.stderr:
        # This build's loader predates the fallback to the target's embedding/head: check the
        # rest of the format with a copy that carries them.
        from dspark_torch import load_checkpoint, save_checkpoint
        full = ckpt + "-with-embeddings"
        save_checkpoint(full, load_checkpoint(ckpt, os.path.join(tiny, "qwen3-f16.gguf")),
                        "BF16", include_frozen=True)
        print("NOTE: this dspark build needs embed_tokens/lm_head in the checkpoint (no "
              "fallback to the target's tensors yet); checking a copy that has them")
        cmd[cmd.index(ckpt)] = full
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if run.returncode != 0:
        failures.append(f"dspark generate rejected the trained checkpoint (rc "
                        f"{run.returncode}): {run.stderr.strip()[-500:]}")
    else:
        print("dspark generate accepted the checkpoint:", run.stdout.strip()[-200:])


def main():
    args = py_util.parse_args()
    require_packages()
    sys.path.insert(0, os.path.join(args.source_dir, "scripts"))
    tiny = os.path.join(args.build_dir, "tiny_models")
    subprocess.run([sys.executable, os.path.join(args.source_dir, "scripts",
                                                 "make_tiny_models.py"), tiny], check=True)
    failures = []
    parity(args, tiny, failures)
    trainer(args, tiny, failures)
    return py_util.report(failures)


if __name__ == "__main__":
    sys.exit(main())
