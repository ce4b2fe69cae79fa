#!/usr/bin/env python3
"""Prompts for DSpark drafter training, made offline from what ships on this machine.

  python3 scripts/dspark_prompts.py --out data/dspark/prompts --code 3000 --chat 3000

Code prompts come from the Python standard library: each public function or method that has a
docstring and a short body becomes a task (implement it from its docstring, explain it, add type
hints, write tests, refactor it, review it). Chat prompts pair seed topics with question forms.
`--self-questions URL` also asks a running `dspark serve` to write questions about the topics
itself (the target's own phrasing, as DeepSpec regenerates data with the target).

Writes PREFIX.train.jsonl and PREFIX.holdout.jsonl (one {"id", "kind", "messages"} per line);
the holdout split is chosen by a hash of the prompt text, so it is stable across runs. No prompt
overlaps the benchmark prompts (scripts/bench_spec.py, scripts/bench_serving.py): prompts that
contain any of their key phrases are dropped, and the count is printed.
"""
import argparse
import hashlib
import importlib
import inspect
import json
import os
import random
import sys
import textwrap
import urllib.request

# Pure-Python standard library modules with readable sources.
CODE_MODULES = [
    "argparse", "ast", "base64", "bisect", "calendar", "cmd", "codecs", "collections",
    "colorsys", "configparser", "contextlib", "copy", "csv", "dataclasses", "datetime",
    "decimal", "difflib", "dis", "email.utils", "enum", "filecmp", "fnmatch", "fractions",
    "ftplib", "functools", "genericpath", "getopt", "gettext", "glob", "graphlib", "gzip",
    "heapq", "hmac", "html", "html.parser", "http.cookiejar", "http.cookies", "imaplib",
    "inspect", "ipaddress", "json.decoder", "json.encoder", "keyword", "linecache", "locale",
    "logging", "logging.handlers", "mailbox", "mimetypes", "netrc", "ntpath", "numbers",
    "operator", "optparse", "pathlib", "pickletools", "pkgutil", "platform", "plistlib",
    "posixpath", "pprint", "pydoc", "queue", "quopri", "random", "reprlib", "sched", "secrets",
    "selectors", "shlex", "shutil", "smtplib", "socketserver", "statistics", "string",
    "subprocess", "tarfile", "tempfile", "textwrap", "threading", "timeit", "tokenize", "trace",
    "traceback", "types", "typing", "urllib.parse", "urllib.request", "uuid", "warnings",
    "wave", "weakref", "xml.dom.minidom", "zipfile", "zipimport",
]

CODE_TASKS = [
    "Write a Python function `{name}{sig}` that does the following: {doc}",
    "Implement `{name}{sig}` in Python. Its documentation says: {doc}",
    "Explain what this Python code does, step by step:\n\n```python\n{src}```",
    "Add type hints to this function and return the whole function:\n\n```python\n{src}```",
    "Write pytest unit tests for this function:\n\n```python\n{src}```",
    "Refactor this function to make it easier to read, and explain your changes:\n\n"
    "```python\n{src}```",
    "Review this code: what edge cases or bugs do you see?\n\n```python\n{src}```",
    "Rewrite this function in idiomatic modern Python:\n\n```python\n{src}```",
]

CODE_SYSTEMS = [None, "You are a helpful coding assistant.", "You are an expert Python programmer."]
CHAT_SYSTEMS = [None, "You are a helpful assistant."]

TOPICS = [
    "photosynthesis", "black holes", "the Roman Empire", "volcanoes", "the human heart",
    "machine learning", "climate change", "the printing press", "electric cars", "vaccines",
    "the stock market", "coffee", "honeybees", "the Great Wall of China", "jazz music",
    "the moon landing", "earthquakes", "sleep", "meditation", "recycling", "inflation",
    "the immune system", "DNA", "the Renaissance", "chess", "origami", "the Internet",
    "solar panels", "rainforests", "the Olympic Games", "dinosaurs", "plate tectonics",
    "antibiotics", "the ancient Egyptians", "bread baking", "learning a new language",
    "public speaking", "time management", "budgeting", "running a marathon", "gardening",
    "composting", "bird migration", "the Pacific Ocean", "glaciers", "wind turbines",
    "nuclear power", "the periodic table", "Shakespeare", "poetry", "the violin",
    "photography", "the camera obscura", "bicycles", "trains", "airplanes", "submarines",
    "the Silk Road", "the Vikings", "democracy", "the United Nations", "supply and demand",
    "small businesses", "job interviews", "writing a resume", "friendship", "dogs", "cats",
    "houseplants", "chocolate", "cheese making", "fermentation", "the metric system",
    "prime numbers", "probability", "the Pythagorean theorem", "fractals", "infinity",
    "quantum computing", "robots", "3D printing", "smartphones", "video games",
    "social media", "online privacy", "passwords", "open source software", "databases",
    "cloud computing", "spreadsheets", "electricity", "magnets", "rainbows", "tides",
    "the seasons", "deserts", "coral reefs", "whales", "octopuses", "ants", "mushrooms",
    "tea", "the Mediterranean diet", "vitamins", "exercise", "stretching", "yoga",
    "the Industrial Revolution", "the Cold War", "ancient Greece", "mythology", "castles",
    "architecture", "bridges", "skyscrapers", "city planning", "public transport", "maps",
    "astronomy", "Mars", "comets", "telescopes", "the speed of light", "gravity",
    "sound waves", "music theory", "the piano", "film making", "animation", "theatre",
    "novels", "libraries", "museums", "volunteering", "negotiation", "leadership",
    "teamwork", "habits", "creativity", "memory", "emotions", "stress", "happiness",
]

CHAT_FORMS = [
    "Explain {t} in simple terms.",
    "What are the most interesting facts about {t}?",
    "Give me a short introduction to {t}.",
    "What are common misconceptions about {t}?",
    "Write a short story that involves {t}.",
    "Write a poem about {t}.",
    "What are the pros and cons of {t}?",
    "How would you explain {t} to a child?",
    "Give me five tips related to {t}.",
    "What is the history of {t}?",
    "Why does {t} matter today?",
    "Write a short blog post about {t}.",
    "What questions should a beginner ask about {t}?",
    "Summarize what experts know about {t} in a few paragraphs.",
    "Create a quiz with three questions about {t}, with answers.",
    "Compare {t} with something from everyday life.",
]

# Key phrases of the benchmark prompts: a prompt containing any of them is never trained on.
BENCH_PHRASES = [
    "merge_intervals", "total_covered", "sky is blue", "sky blue", "sunset", "hash table",
    "tcp and udp", "french revolution", "palindrome", "water cycle", "technical documentation",
    "process and a thread", "weather is lovely", "tomato soup", "gradient descent", "haiku",
    "autumn leaves", "public-key cryptography", "merge sort", "quicksort", "hiking",
    "lighthouse keeper",
]


def overlaps_bench(text):
    low = text.lower()
    return any(p in low for p in BENCH_PHRASES)


def first_paragraph(doc):
    para = inspect.cleandoc(doc).split("\n\n")[0]
    return " ".join(para.split())


def stdlib_functions():
    """(qualified name, signature text, docstring paragraph, source) of short documented
    functions and methods, in a deterministic order."""
    seen, out = set(), []
    for mod_name in CODE_MODULES:
        try:
            mod = importlib.import_module(mod_name)
        except Exception:  # a module this Python lacks: skip it
            continue
        members = []
        for name, obj in sorted(vars(mod).items()):
            if name.startswith("_"):
                continue
            if inspect.isfunction(obj) and obj.__module__ == mod.__name__:
                members.append((name, obj))
            elif inspect.isclass(obj) and obj.__module__ == mod.__name__:
                for mname, meth in sorted(vars(obj).items()):
                    if inspect.isfunction(meth) and not mname.startswith("_"):
                        members.append((f"{name}.{mname}", meth))
        for qual, fn in members:
            doc = inspect.getdoc(fn)
            if not doc or len(doc) < 20:
                continue
            try:
                src = textwrap.dedent(inspect.getsource(fn))
                sig = str(inspect.signature(fn))
            except (OSError, TypeError, ValueError):
                continue
            if not 3 <= src.count("\n") <= 40 or len(src) > 1600 or src in seen:
                continue
            seen.add(src)
            out.append((f"{mod_name}.{qual}", fn.__name__, sig, first_paragraph(doc), src))
    return out


def code_prompts(n, rng):
    funcs = stdlib_functions()
    rng.shuffle(funcs)
    prompts = []
    for i in range(n):
        _, name, sig, doc, src = funcs[i % len(funcs)]
        # A second pass over the functions takes another task for each.
        task = CODE_TASKS[(rng.randrange(len(CODE_TASKS)) + i // len(funcs)) % len(CODE_TASKS)]
        text = task.format(name=name, sig=sig, doc=doc, src=src)
        prompts.append(("code", rng.choice(CODE_SYSTEMS), text))
    return prompts, len(funcs)


def chat_prompts(n, rng):
    pairs = [(t, f) for t in TOPICS for f in CHAT_FORMS]
    rng.shuffle(pairs)
    return [("chat", rng.choice(CHAT_SYSTEMS), f.format(t=t)) for t, f in pairs[:n]]


def self_questions(url, n, rng, model):
    """Questions the target writes itself about random topics (one request each)."""
    out = []
    for i in range(n):
        topic = TOPICS[rng.randrange(len(TOPICS))]
        body = {"model": model, "temperature": 0.9, "max_tokens": 60, "seed": i,
                "messages": [{"role": "user", "content":
                              f"Write one question a curious person might ask about {topic}. "
                              "Reply with the question only."}]}
        req = urllib.request.Request(url.rstrip("/") + "/v1/chat/completions",
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as resp:
            text = json.load(resp)["choices"][0]["message"]["content"].strip()
        if 10 <= len(text) <= 300:
            out.append(("chat", rng.choice(CHAT_SYSTEMS), text))
        if (i + 1) % 50 == 0:
            print(f"self-questions: {i + 1}/{n}", file=sys.stderr, flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="data/dspark/prompts", help="output prefix")
    ap.add_argument("--code", type=int, default=3000, help="code prompts")
    ap.add_argument("--chat", type=int, default=2000, help="templated chat prompts (at most "
                    f"{len(TOPICS) * len(CHAT_FORMS)})")
    ap.add_argument("--self-questions", metavar="URL", help="a dspark serve base URL")
    ap.add_argument("--n-self", type=int, default=500, help="questions the target writes")
    ap.add_argument("--model", default="default", help="model name for --self-questions")
    ap.add_argument("--holdout-frac", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not 0.0 <= args.holdout_frac < 1.0:
        sys.exit("--holdout-frac must be in [0, 1)")

    rng = random.Random(args.seed)
    code, n_funcs = code_prompts(args.code, rng)
    prompts = code + chat_prompts(args.chat, rng)
    if args.self_questions:
        prompts += self_questions(args.self_questions, args.n_self, rng, args.model)

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    counts = {"train": 0, "holdout": 0, "bench_overlap": 0, "duplicate": 0}
    seen = set()
    with open(args.out + ".train.jsonl", "w") as train, \
            open(args.out + ".holdout.jsonl", "w") as holdout:
        for kind, system, text in prompts:
            if overlaps_bench(text):
                counts["bench_overlap"] += 1
                continue
            digest = hashlib.sha256(text.encode()).hexdigest()
            if digest in seen:
                counts["duplicate"] += 1
                continue
            seen.add(digest)
            messages = ([{"role": "system", "content": system}] if system else []) + \
                [{"role": "user", "content": text}]
            split = "holdout" if int(digest[:8], 16) / 2**32 < args.holdout_frac else "train"
            line = {"id": digest[:16], "kind": kind, "messages": messages}
            (holdout if split == "holdout" else train).write(json.dumps(line) + "\n")
            counts[split] += 1
    print(f"prompts: {counts['train']} train, {counts['holdout']} holdout "
          f"({len(code)} code from {n_funcs} stdlib functions; dropped "
          f"{counts['bench_overlap']} overlapping the benchmarks, {counts['duplicate']} "
          f"duplicates) -> {args.out}.{{train,holdout}}.jsonl")


if __name__ == "__main__":
    main()
