#!/usr/bin/env python3
"""Reference test: dspark's chat template interpreter against Python jinja2.

Every template is rendered by jinja2 the way Hugging Face's apply_chat_template renders it
(ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks and loop controls; tojson with
ensure_ascii=False and unsorted keys; raise_exception and strftime_now as globals) and by
tests/chat_template/chat_template_tool on the same contexts; the strings must be identical. When
jinja2 raises, dspark must fail too, with the same message for raise_exception.

Templates: the hand-written family templates in tests/chat_template/chat_templates (no model
needed), random expressions over a fixed context (seeded), then the template inside every GGUF
in the models folder (DSPARK_MODELS_DIR, default <source-dir>/models), which must also be what
find_chat_template returns.

Exit 0: pass, 1: fail, 77: skip (jinja2 or the models missing, unless DSPARK_REQUIRE_MODELS=1;
the hand-written templates are still checked, and a failure there exits 1).
"""
import copy
import glob
import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import py_util  # noqa: E402

try:
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment
except ImportError as e:
    py_util.skip(f"python package missing: {e}")


class RaisedByTemplate(Exception):
    """raise_exception(message) from a template."""


def make_env():
    def raise_exception(message):
        raise RaisedByTemplate(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def msg(role, content, **extra):
    return dict(role=role, content=content, **extra)


CONVERSATIONS = [
    [msg("user", "Hello!")],
    [msg("system", "You are a pirate."), msg("user", "What is 2+2?")],
    [msg("user", "Hi"), msg("assistant", "Hello! How can I help?"),
     msg("user", "Tell me a joke."), msg("assistant", "Why did the chicken cross the road?"),
     msg("user", "Why?")],
    [msg("system", "  Système : réponds en français.  "),
     msg("user", "Ünïcödé ✓ 😀 中文 עברית? Ελληνικά ΣΊΣΥΦΟΣ Привет"),
     msg("assistant", "D'accord — «oui»."), msg("user", "Encore\tune\nfois\n")],
    [msg("user", "")],
    [msg("system", ""), msg("user", "  leading and trailing spaces  "), msg("assistant", ""),
     msg("user", "quotes ' \" \\ backslash {{ not a tag }} {% neither %}")],
    [msg("user", "Think first."),
     msg("assistant", "<think>\nSome reasoning.\n</think>\n\nThe answer is 4."),
     msg("user", "And then?")],
    [msg("user", "a"), msg("user", "b")],
    [msg("assistant", "I speak first.")],
    [],
]

TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather for a city — «quoted» ✓",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"},
                           "unit": {"type": "string", "enum": ["c", "f"]},
                           "days": {"type": "integer", "minimum": 1, "default": 1.5}},
            "required": ["city"],
        },
    },
}, {
    "type": "function",
    "function": {"name": "noop", "description": "", "parameters": {}},
}]


def tool_conversation(content_for_calls):
    return [
        msg("system", "Use tools when helpful."),
        msg("user", "Weather in Paris and Zürich?"),
        msg("assistant", content_for_calls, tool_calls=[
            {"type": "function", "id": "call_0001",
             "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}},
            {"type": "function", "id": "call_0002",
             "function": {"name": "get_weather", "arguments": {"city": "Zürich"}}}]),
        msg("tool", "{\"temp\": 22}", tool_call_id="call_0001"),
        msg("tool", "18°C", tool_call_id="call_0002"),
        msg("assistant", "Paris: 22°C, Zürich: 18°C."),
        msg("user", "<tool_response>fake</tool_response>"),
    ]


def single_tool_call():
    return [
        msg("user", "What's the weather?"),
        msg("assistant", "", tool_calls=[
            {"type": "function", "id": "call_0003",
             "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]),
        msg("tool", "cold", tool_call_id="call_0003"),
    ]


def base_contexts():
    out = []
    for conv in CONVERSATIONS:
        for gen in (True, False):
            out.append({"messages": conv, "tools": None, "documents": None,
                        "add_generation_prompt": gen, "bos_token": "<s>", "eos_token": "</s>"})
    return out


def extra_contexts():
    out = []
    for conv in (tool_conversation(""), tool_conversation(None), single_tool_call()):
        for tools in (None, TOOLS):
            out.append({"messages": conv, "tools": tools, "add_generation_prompt": True,
                        "bos_token": "<s>", "eos_token": "</s>"})
    think = [msg("user", "Q1"), msg("assistant", "A1", reasoning_content="R1 ✓"), msg("user", "Q2")]
    for flag in (True, False):
        out.append({"messages": think, "enable_thinking": flag, "add_generation_prompt": True})
    parts = [msg("system", [{"type": "text", "text": "Sys from parts"}]),
             msg("user", [{"type": "image"}, {"type": "text", "text": "  Describe it.  "}]),
             msg("assistant", "A cat.")]
    out.append({"messages": parts, "add_generation_prompt": True, "bos_token": "<bos>"})
    out.append({"messages": [msg("user", "x")], "add_generation_prompt": True,
                "date_string": "01 Jan 2025", "builtin_tools": ["code_interpreter", "search"],
                "tools_in_user_message": False, "tools": TOOLS})
    out.append({"messages": [msg("system", "S"), msg("user", "u")], "custom_tools": TOOLS})
    return out


def run_tool(tool, template, contexts, command=("render",)):
    """chat_template_tool's answers (one JSON object per context) for `tool *command template
    contexts.jsonl`: command is ("render",) or ("encode", tokenizer)."""
    with tempfile.TemporaryDirectory() as tmp:
        tpath = os.path.join(tmp, "t.jinja")
        cpath = os.path.join(tmp, "c.jsonl")
        with open(tpath, "w", encoding="utf-8") as f:
            f.write(template)
        with open(cpath, "w", encoding="utf-8") as f:
            for c in contexts:
                f.write(json.dumps(c, ensure_ascii=False) + "\n")
        res = subprocess.run([tool, *command, tpath, cpath], capture_output=True, timeout=600)
    if res.returncode != 0:
        raise RuntimeError(f"chat_template_tool failed: {res.stderr.decode(errors='replace')}")
    return [json.loads(line) for line in res.stdout.decode("utf-8").splitlines()]


def reference(env, template, context):
    try:
        return ("ok", env.from_string(template).render(**copy.deepcopy(context)))
    except RaisedByTemplate as e:
        return ("raised", str(e))
    except Exception as e:  # noqa: BLE001 - any jinja2 failure must be a dspark failure too
        return ("error", f"{type(e).__name__}: {e}")


def check_template(env, tool, name, template, contexts):
    got = run_tool(tool, template, contexts)
    if len(got) != len(contexts):
        print(f"FAIL {name}: tool answered {len(got)} of {len(contexts)} contexts")
        return 1
    failures = 0
    counts = {"ok": 0, "raised": 0, "error": 0}
    for i, (ctx, out) in enumerate(zip(contexts, got)):
        kind, ref = reference(env, template, ctx)
        counts[kind] += 1
        problem = None
        if kind == "ok" and out.get("text") != ref:
            text = out.get("text")
            if text is None:
                problem = f"jinja2 rendered but dspark failed: {out}"
            else:
                at = next((j for j, (a, b) in enumerate(zip(ref, text)) if a != b),
                          min(len(ref), len(text)))
                problem = (f"first difference at {at}: expected {ref[max(0, at - 80):at + 80]!r}"
                           f"\n     got {text[max(0, at - 80):at + 80]!r}")
        elif kind == "raised" and out.get("error") != ref:
            problem = f"expected raise_exception {ref!r}, got {out!r}"
        elif kind == "error" and out.get("ok", True):
            problem = f"jinja2 failed ({ref}) but dspark rendered {out!r}"
        if problem:
            failures += 1
            if failures <= 5:
                print(f"FAIL {name} context {i}: {json.dumps(ctx, ensure_ascii=False)[:300]}\n"
                      f"     {problem}")
    status = "ok" if failures == 0 else f"{failures} FAILED"
    print(f"{name}: {len(contexts)} contexts ({counts['ok']} rendered, {counts['raised']} "
          f"raise_exception, {counts['error']} errors) {status}")
    return failures


# Random expressions over a fixed context, compared like the templates. Lazy jinja2 filters
# (map, select, unique, items, reverse) and dict views are always consumed with "| list":
# jinja2 prints them as generator/view objects and reports their errors only when consumed,
# where dspark builds them at once. "%" on strings (Python's printf formatting) and the escape
# filter (whose Markup result prints differently inside lists) are left out.
EXPR_CONTEXT = {
    "s": "Héllo World ✓", "e": "", "n": 7, "m": -3, "f": 2.5, "z": 0, "b": True,
    "l": [3, 1, 2], "ls": ["b", "A", "c", "a"], "d": {"k": "v", "a": 1}, "nn": None,
    "ms": [{"role": "user", "content": " hi "}, {"role": "assistant", "content": "yo"}],
}
EXPR_LEAVES = [
    "1", "0", "-2", "2.5", "0.1", "1e3", "'a'", "'x y'", "\"é\"", "''", "none", "true", "false",
    "[1, 2]", "[]", "{'p': 1}", "(1, 'a')", "' pad '", "n % 3", "m % 2", "f % 2", "s", "e", "n",
    "m", "f", "z", "b", "l", "ls", "d", "nn", "ms", "u", "ms[0]", "ms[-1].content", "d.k",
    "d['a']", "l[1:]", "s[::2]", "ls[-2:]", "s[-1]", "l[5]",
]
EXPR_FILTERS = [
    "length", "upper", "lower", "trim", "first", "last", "list", "join", "join(', ')", "tojson",
    "string", "default('D')", "default('D', true)", "int", "float", "round", "round(1)", "abs",
    "sort", "sort(reverse=true)", "unique | list", "reverse | list", "items | list", "dictsort",
    "replace('l', 'L')", "title", "capitalize", "sum", "max", "min", "count",
    "map(attribute='role') | list", "selectattr('role', 'equalto', 'user') | list",
    "select('odd') | list", "reject('even') | list", "map('upper') | list", "tojson(indent=1)",
    "indent(2)", "trim('H✓')",
]
EXPR_TESTS = [
    "defined", "undefined", "none", "string", "number", "integer", "float", "mapping",
    "iterable", "sequence", "odd", "even", "divisibleby 2", "eq 1", "in [1, 2, 'a']", "true",
    "false", "boolean", "upper", "lower", "gt 1", "lt 3", "sameas none",
]
EXPR_METHODS = [
    "upper()", "lower()", "strip()", "split()", "split('l')", "split('l', 1)", "startswith('H')",
    "endswith('✓')", "title()", "replace('o', '0')", "find('l')", "count('l')", "lstrip('H')",
    "rstrip('✓ ')", "rsplit(' ', 1)", "get('k')", "get('q', 5)", "keys() | list",
    "values() | list", "items() | list", "index(1)", "splitlines()", "capitalize()",
]
EXPR_OPS = ["+", "-", "*", "/", "//", "~", "==", "!=", "<", ">", "<=", ">=", "in", "not in",
            "and", "or", "**"]


def random_expression(rng, depth):
    r = rng.random()
    if depth <= 0 or r < 0.25:
        return rng.choice(EXPR_LEAVES)
    sub = lambda: random_expression(rng, depth - 1)  # noqa: E731
    if r < 0.45:
        return f"{sub()} {rng.choice(EXPR_OPS)} {sub()}"
    if r < 0.6:
        return f"({sub()}) | {rng.choice(EXPR_FILTERS)}"
    if r < 0.7:
        return f"({sub()}) is {rng.choice(['', 'not '])}{rng.choice(EXPR_TESTS)}"
    if r < 0.8:
        return f"({sub()}).{rng.choice(EXPR_METHODS)}"
    if r < 0.87:
        return f"{sub()} if {sub()} else {sub()}"
    if r < 0.93:
        return f"not {sub()}"
    return f"[{sub()}, {sub()}][{rng.choice(['0', '-1', '1:', '::-1'])}]"


def check_expressions(env, tool, count, seed):
    import random
    rng = random.Random(seed)
    templates = ["{{ " + random_expression(rng, 3) + " }}" for _ in range(count)]
    with tempfile.TemporaryDirectory() as tmp:
        tpath = os.path.join(tmp, "t.jsonl")
        cpath = os.path.join(tmp, "c.json")
        with open(tpath, "w", encoding="utf-8") as f:
            for t in templates:
                f.write(json.dumps(t, ensure_ascii=False) + "\n")
        with open(cpath, "w", encoding="utf-8") as f:
            json.dump(EXPR_CONTEXT, f, ensure_ascii=False)
        res = subprocess.run([tool, "render_each", tpath, cpath], capture_output=True,
                             timeout=600)
    got = [json.loads(line) for line in res.stdout.decode("utf-8").splitlines()]
    if res.returncode != 0 or len(got) != len(templates):
        print(f"FAIL random expressions: tool failed: {res.stderr.decode(errors='replace')}")
        return 1
    failures = 0
    rendered = 0
    for tmpl, out in zip(templates, got):
        kind, ref = reference(env, tmpl, EXPR_CONTEXT)
        rendered += kind == "ok"
        bad = (kind == "ok" and out.get("text") != ref) or (kind != "ok" and out.get("ok"))
        if bad:
            failures += 1
            if failures <= 10:
                print(f"FAIL expression {tmpl}\n     jinja2 ({kind}): {ref!r}\n     dspark: {out}")
    status = "ok" if failures == 0 else f"{failures} FAILED"
    print(f"random expressions: {count} ({rendered} rendered by jinja2) {status}")
    return failures


def gguf_template(path):
    import gguf
    reader = gguf.GGUFReader(path)
    field = reader.fields.get("tokenizer.chat_template")
    if field is None:
        return None
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def main():
    args = py_util.parse_args()
    tool = py_util.built(args, "tests/chat_template/chat_template_tool")
    env = make_env()
    contexts = base_contexts() + extra_contexts()
    failures = 0

    tdir = os.path.join(args.source_dir, "tests", "chat_template", "chat_templates")
    for path in sorted(glob.glob(os.path.join(tdir, "*.jinja"))):
        with open(path, encoding="utf-8") as f:
            template = f.read()
        failures += check_template(env, tool, os.path.basename(path), template, contexts)

    failures += check_expressions(env, tool, 600, seed=20261129)

    models_dir = py_util.models_dir(args)
    models = sorted(glob.glob(os.path.join(models_dir, "*.gguf")))
    try:
        import gguf  # noqa: F401
    except ImportError:
        models = []
    for path in models:
        template = gguf_template(path)
        found = subprocess.run([tool, "find", path], capture_output=True, timeout=600)
        answer = json.loads(found.stdout.decode("utf-8").splitlines()[0])
        if answer.get("template") != template:
            print(f"FAIL {os.path.basename(path)}: find_chat_template gave {str(answer)[:200]}")
            failures += 1
        if template is None:
            print(f"{os.path.basename(path)}: no chat template")
            continue
        failures += check_template(env, tool, os.path.basename(path), template, contexts)

    if failures:
        print(f"FAIL: {failures} mismatches")
        return 1
    if not models:
        py_util.skip("hand-written templates pass; no GGUF models (or gguf package) in "
                     + models_dir)
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
