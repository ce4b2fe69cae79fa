"""The Prometheus text format that /metrics serves: its samples, and one value by name. Shared
by the serving benchmarks and the server tests."""
import re

_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def samples(text):
    """(name, {label: value}, value) for every sample line; comments and other lines are
    skipped, and so is a sample whose value is not a number."""
    out = []
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if not m:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        out.append((m.group(1), dict(_LABEL.findall(m.group(2) or "")), value))
    return out


def metric(text, name, label=""):
    """The value of the first sample of `name` whose line contains `label` (any labels when
    empty), or None."""
    for line in text.splitlines():
        if (line.startswith(name + "{") or line.startswith(name + " ")) and label in line:
            return float(line.rsplit(" ", 1)[1])
    return None
