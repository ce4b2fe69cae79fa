"""Shared by the Python reference tests: their command line, the models folder, built helpers
and the skip rule.

ctest runs each script as `python3 <script> --build-dir B --source-dir S [options]`
(dspark_add_py_test in tests/CMakeLists.txt). Exit codes: 0 pass, 1 fail, 77 skip (a model or
package is missing), except that with DSPARK_REQUIRE_MODELS=1 a skip is a failure, so that a CI
with the models cannot pass by skipping. A script in a folder under tests/ imports this module
after putting tests/ on its path:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
"""
import argparse
import os
import sys

SKIP = 77


def skip(reason):
    """Exits 77, or 1 when DSPARK_REQUIRE_MODELS=1."""
    if os.environ.get("DSPARK_REQUIRE_MODELS") == "1":
        print(f"FAIL: {reason} (DSPARK_REQUIRE_MODELS=1)")
        sys.exit(1)
    print(f"SKIP: {reason}")
    sys.exit(SKIP)


def parse_args(extra=None):
    """--build-dir and --source-dir; extra(parser), when given, adds the script's own options."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--build-dir", required=True)
    parser.add_argument("--source-dir", required=True)
    if extra:
        extra(parser)
    return parser.parse_args()


def models_dir(args):
    """$DSPARK_MODELS_DIR, else <source-dir>/models."""
    return os.environ.get("DSPARK_MODELS_DIR") or os.path.join(args.source_dir, "models")


def report(failures):
    """Prints each failure and PASS or the count; returns the exit code (0 pass, 1 fail)."""
    for f in failures:
        print(f"FAIL: {f}")
    print("PASS" if not failures else f"{len(failures)} failure(s)")
    return 0 if not failures else 1


def built(args, relative):
    """<build-dir>/relative; exits 1 when it is not built (a broken build never skips)."""
    path = os.path.join(args.build_dir, relative)
    if not os.path.exists(path):
        print(f"FAIL: {path} not built")
        sys.exit(1)
    return path


def serve_options(dspark):
    """The long option names `dspark serve --help` lists (without the dashes)."""
    import re
    import subprocess
    text = subprocess.run([dspark, "serve", "--help"], capture_output=True, text=True).stdout
    return set(re.findall(r"^\s+(?:-\w, )?--([a-z-]+)", text, re.M))


def gguf_fields(path, keys):
    """{name: the field's contents, or default when the file lacks it} for a GGUF file and keys
    {name: (GGUF key, default)}; needs the `gguf` package."""
    import gguf
    reader = gguf.GGUFReader(path)
    out = {}
    for name, (key, default) in keys.items():
        f = reader.fields.get(key)
        out[name] = default if f is None else f.contents()
    return out
