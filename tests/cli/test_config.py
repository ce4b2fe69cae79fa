#!/usr/bin/env python3
"""`dspark serve --config FILE` and DSPARK_* environment variables, through --check-config.

Checks that every example in configs/ is accepted (its model paths stood in for by empty files),
that configs/reference.yaml names every option of `dspark serve --help`, the precedence (command
line, then environment, then file, then default), flags as booleans, lists joined by commas, the
masked API key, and a clear error (exit 2 and a message naming the key, variable or line) for
unknown keys, nested mappings, empty values, non-boolean flags, malformed YAML, bad values, a
missing file and a missing model. Needs no model and no package beyond the standard library.
"""
import glob
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import py_util  # noqa: E402

args = py_util.parse_args()
dspark = os.path.abspath(py_util.built(args, "dspark"))
failures = []
work = tempfile.mkdtemp(prefix="dspark-config-")
MODEL = "model.gguf"
open(os.path.join(work, MODEL), "wb").close()  # --check-config only checks that paths exist


def check(ok, what):
    if not ok:
        failures.append(what)


def run(config_text=None, flags=(), env=None, cwd=work, config_path=None):
    """(exit code, stdout, stderr) of `dspark serve [--config F] --check-config flags`."""
    cmd = [dspark, "serve", "--check-config"]
    if config_text is not None:
        config_path = os.path.join(work, "test.yaml")
        with open(config_path, "w") as f:
            f.write(config_text)
    if config_path is not None:
        cmd += ["--config", config_path]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DSPARK_")}
    clean.update(env or {})
    p = subprocess.run(cmd + list(flags), capture_output=True, text=True, env=clean, cwd=cwd,
                       timeout=60)
    return p.returncode, p.stdout, p.stderr


def effective(stdout):
    """{option: (value, source)} from --check-config's output."""
    out = {}
    for line in stdout.splitlines():
        m = re.match(r"^([a-z-]+): (.*?)  # (.*)$", line)
        if m:
            out[m.group(1)] = (m.group(2).strip("'"), m.group(3))
    return out


def expect_error(config_text, needles, what, flags=(), env=None):
    rc, _, err = run(config_text, flags, env)
    check(rc == 2, f"{what}: exit {rc}, expected 2 ({err.strip()})")
    for n in needles:
        check(n in err, f"{what}: the message does not name {n!r}: {err.strip()}")


# Every example in configs/, with its paths stood in for by empty files and folders.
examples = sorted(glob.glob(os.path.join(os.path.abspath(args.source_dir), "configs", "*.yaml")))
check(len(examples) >= 4, f"configs/ holds {len(examples)} examples, expected at least 4")
for path in examples:
    name = os.path.basename(path)
    sandbox = tempfile.mkdtemp(prefix="dspark-example-", dir=work)
    text = open(path).read()
    for key in ("model", "draft-model"):
        m = re.search(rf"^{key}: (\S+)", text, re.M)
        if m:
            target = os.path.join(sandbox, m.group(1))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if key == "draft-model" and "dspark" in text and not m.group(1).endswith(".gguf"):
                os.makedirs(target, exist_ok=True)
            else:
                open(target, "wb").close()
    rc, out, err = run(config_path=path, cwd=sandbox)
    check(rc == 0, f"{name}: exit {rc}: {err.strip()}")
    got = effective(out)
    for key in re.findall(r"^([a-z-]+):", text, re.M):
        check(key in got or key == "cors-origin", f"{name}: {key} missing from --check-config")
        if key in got:
            check(got[key][1] == "config file", f"{name}: {key} came from {got[key][1]}")

# The reference names every option of `dspark serve --help`.
options = py_util.serve_options(dspark) - {"help", "config", "check-config"}
check(len(options) >= 25, f"only {len(options)} options parsed from --help")
reference = open(os.path.join(args.source_dir, "configs", "reference.yaml")).read()
for option in sorted(options):
    check(re.search(rf"^(# )?{option}:", reference, re.M) is not None,
          f"configs/reference.yaml does not mention {option}")

# Precedence: command line, then environment, then file, then default.
file_text = f"model: {MODEL}\nport: 9001\nmax-n: 3\n"
rc, out, err = run(file_text, ["--port", "9003"], {"DSPARK_PORT": "9002"})
got = effective(out)
check(rc == 0 and got.get("port") == ("9003", "command line"),
      f"flag over env and file: {got.get('port')} {err}")
rc, out, _ = run(file_text, [], {"DSPARK_PORT": "9002"})
got = effective(out)
check(got.get("port") == ("9002", "environment (DSPARK_PORT)"), f"env over file: {got.get('port')}")
check(got.get("max-n") == ("3", "config file"), f"file over default: {got.get('max-n')}")
check(got.get("max-body-mb") == ("8", "default"), f"default: {got.get('max-body-mb')}")
rc, out, _ = run(file_text, [], {"DSPARK_PORT": ""})
check(effective(out).get("port") == ("9001", "config file"), "an empty variable counts as unset")

# DSPARK_CONFIG names the file (containers), and a file cannot name another.
with open(os.path.join(work, "env.yaml"), "w") as f:
    f.write(f"model: {MODEL}\nmax-n: 5\n")
rc, out, err = run(env={"DSPARK_CONFIG": os.path.join(work, "env.yaml")})
check(rc == 0 and effective(out).get("max-n") == ("5", "config file"),
      f"DSPARK_CONFIG: {rc} {effective(out).get('max-n')} {err}")

# Flags and lists.
rc, out, err = run(f"model: {MODEL}\nno-prefix-caching: true\nauth-all-endpoints: no\n"
                   "cors-origin: [https://a.example, https://b.example]\n")
got = effective(out)
check(rc == 0, f"flags and lists: exit {rc}: {err}")
check(got.get("no-prefix-caching") == ("true", "config file"),
      f"flag true: {got.get('no-prefix-caching')}")
check(got.get("auth-all-endpoints") == ("false", "config file"),
      f"flag false: {got.get('auth-all-endpoints')}")
check(got.get("cors-origin", ("",))[0] == "https://a.example,https://b.example",
      f"list joined: {got.get('cors-origin')}")
rc, out, _ = run(f"model: {MODEL}\n", [], {"DSPARK_NO_PREFIX_CACHING": "yes"})
check(effective(out).get("no-prefix-caching", ("",))[0] == "true", "an env flag")
rc, out, _ = run(f"model: {MODEL}\nno-prefix-caching: true\n", [], {"DSPARK_NO_PREFIX_CACHING": "0"})
check(effective(out).get("no-prefix-caching") == ("false", "environment (DSPARK_NO_PREFIX_CACHING)"),
      f"an env flag off over the file's on: {effective(out).get('no-prefix-caching')}")

# The API key is never printed.
rc, out, _ = run(f"model: {MODEL}\n", [], {"DSPARK_API_KEY": "sk-very-secret"})
check(rc == 0 and "sk-very-secret" not in out and "api-key: '(set, not shown)'" in out,
      f"api key masked: {out}")

# Errors: exit 2, the message names what is wrong.
expect_error(f"model: {MODEL}\nportt: 1\n", ["portt", "test.yaml", "unknown option"], "unknown key")
expect_error(f"model: {MODEL}\nconfig: other.yaml\n", ["config", "unknown option"], "reserved key")
expect_error(f"model: {MODEL}\nport: 1\nthreads: 2\nport: 2\n", ["port", "given twice", "line 4"],
             "repeated key")
expect_error(f"model: {MODEL}\nport:\n  value: 1\n", ["port", "mapping"], "nested mapping")
expect_error(f"model: {MODEL}\nport:\n", ["port", "no value"], "empty value")
expect_error(f"model: {MODEL}\nno-prefix-caching: maybe\n", ["no-prefix-caching", "maybe"],
             "non-boolean flag")
expect_error(f"model: {MODEL}\nport: [1, 2\n", ["not valid YAML", "line"], "malformed YAML")
expect_error("- model\n- port\n", ["must be a mapping"], "a list at the top")
expect_error(f"model: {MODEL}\nport: abc\n", ["--port", "abc"], "bad value")
expect_error(f"model: {MODEL}\nspec-method: magic\n", ["magic"], "bad engine value")
expect_error("model: nowhere.gguf\n", ["nowhere.gguf", "does not exist"], "missing model")
expect_error(f"model: {MODEL}\n", ["DSPARK_NO_PREFIX_CACHING", "maybe"], "bad env flag",
             env={"DSPARK_NO_PREFIX_CACHING": "maybe"})
rc, _, err = run(config_path=os.path.join(work, "absent.yaml"))
check(rc == 2 and "absent.yaml" in err and "cannot be read" in err, f"missing file: {rc} {err}")
rc, _, err = run("", [f"--model={MODEL}"])
check(rc == 0, f"an empty file is no options: {rc} {err}")

sys.exit(py_util.report(failures))
