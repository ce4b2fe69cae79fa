#!/usr/bin/env python3
"""The DSpark drafter shipped in the repository (configs/drafters/) on its real target.

A fresh clone serves DSpark with no training, so the committed checkpoint must load against the
model it was trained for and draft tokens the target accepts. For each drafter folder listed in
DRAFTERS, `dspark generate --compare-plain --temp 0` runs a code and a chat prompt with two
requests each: dspark itself fails when the speculative output differs from plain decoding in
any token, and this script also requires that drafts were verified and some accepted (a drafter
whose weights were lost or scrambled drafts nothing acceptable). Exit 77 (skip) when the target
model is not fetched, unless DSPARK_REQUIRE_MODELS=1.
"""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import py_util  # noqa: E402

# (drafter folder under configs/drafters, target file in the models folder)
DRAFTERS = [("SmolLM2-135M-Instruct-DSpark", "SmolLM2-135M-Instruct.Q4_1.gguf")]

PROMPTS = {
    "code": ("<|im_start|>user\nWrite a Python function that returns the n-th Fibonacci "
             "number, with a docstring.<|im_end|>\n<|im_start|>assistant\n"),
    "chat": ("<|im_start|>user\nWhat are some good ways to learn to play the guitar?"
             "<|im_end|>\n<|im_start|>assistant\n"),
}

SPEC = re.compile(r"spec \(dspark\): (\d+) rounds, drafted (\d+), verified (\d+), accepted (\d+)")


def main():
    args = py_util.parse_args()
    dspark = py_util.built(args, "dspark")
    failures = []
    for folder, target in DRAFTERS:
        drafter = os.path.join(args.source_dir, "configs", "drafters", folder)
        if not os.path.isfile(os.path.join(drafter, "model.safetensors")):
            failures.append(f"{drafter}: no model.safetensors in the repository")
            continue
        model = os.path.join(py_util.models_dir(args), target)
        if not os.path.exists(model):
            py_util.skip(f"{model} is not fetched (scripts/fetch_models.py --set test)")
        verified = accepted = 0
        for name, prompt in PROMPTS.items():
            with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
                f.write(prompt)
            cmd = [dspark, "generate", "-q", "-m", model, "-f", f.name, "--temp", "0", "-n", "48",
                   "--parallel", "2", "--threads", "2", "--spec-method", "dspark",
                   "--draft-model", drafter, "--spec-fixed-depth", "4", "--compare-plain"]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            os.unlink(f.name)
            if proc.returncode != 0:
                failures.append(f"{folder} {name}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
                continue
            if "outputs identical" not in proc.stderr:
                failures.append(f"{folder} {name}: no 'outputs identical' in\n{proc.stderr}")
            m = SPEC.search(proc.stderr)
            if not m:
                failures.append(f"{folder} {name}: no spec line in\n{proc.stderr}")
                continue
            verified += int(m.group(3))
            accepted += int(m.group(4))
            print(f"{folder} {name}: {m.group(0)}")
        if verified == 0 or accepted == 0:
            failures.append(f"{folder}: verified {verified}, accepted {accepted}: the shipped "
                            "drafter drafts nothing the target accepts")
    return py_util.report(failures)


if __name__ == "__main__":
    sys.exit(main())
