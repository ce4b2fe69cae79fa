"""Shared helpers of the server tests: a `dspark serve` process, requests, streams, metrics
and the end-of-run checks. Arguments and skipping (exit 77 unless DSPARK_REQUIRE_MODELS=1) are
tests/py_util.py's, re-exported here so that a server test imports this module only.
"""
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import py_util  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "scripts"))
from prom_text import metric  # noqa: E402,F401  (a Prometheus value by name, for the tests)

parse_args = py_util.parse_args
skip = py_util.skip
TINY_MODEL = "llama-q8_0.gguf"
REAL_MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"
ERROR_FIELDS = {"message", "type", "param", "code"}  # of an OpenAI error object


def require_packages():
    try:
        import httpx  # noqa: F401
        import openai  # noqa: F401
    except ImportError as e:
        skip(f"python package missing: {e.name} (pip install -r scripts/requirements.txt)")


def tiny_model(args):
    path = os.path.join(args.build_dir, "tiny_models", TINY_MODEL)
    if not os.path.exists(path):
        skip(f"tiny model {path} missing (run the model_tiny_models_setup test)")
    return path


def real_model(args, errors, name=REAL_MODEL):
    """The path of a fetched model (SmolLM2 by default), or None when absent: then an error in
    errors under DSPARK_REQUIRE_MODELS=1, else a note that its part is skipped."""
    path = os.path.join(py_util.models_dir(args), name)
    if os.path.exists(path):
        return path
    if os.environ.get("DSPARK_REQUIRE_MODELS") == "1":
        errors.append(f"{name} missing (DSPARK_REQUIRE_MODELS=1)")
        print(f"  FAIL: {name} missing (DSPARK_REQUIRE_MODELS=1)")
    else:
        print(f"  ({name} not found: skipped)")
    return None


class Server:
    """`dspark serve` on a free port; stdout/stderr are kept for failure reports."""

    def __init__(self, args, model, *extra, name="tiny", ready_timeout=180):
        binary = os.path.join(args.build_dir, "dspark")
        if not os.path.exists(binary):
            raise RuntimeError(f"{binary} not built")
        cmd = [binary, "serve", "-m", model, "--port", "0", "--threads", "1",
               "--served-model-name", name, "--log-level", "warn", *extra]
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, errors="replace")
        self.stderr_lines = []
        self._stderr_thread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._stderr_thread.start()
        self.port = None
        self.saw_loading = False
        line = self.proc.stdout.readline()
        m = re.search(r"http://[^:]+:(\d+)", line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"no listening line from {cmd}: {line!r} {self.stderr()}")
        self.port = int(m.group(1))
        self.base = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._drain_stdout, daemon=True).start()
        self._wait_ready(ready_timeout)

    def _drain_stderr(self):
        for line in self.proc.stderr:
            self.stderr_lines.append(line)

    def _drain_stdout(self):
        for _ in self.proc.stdout:
            pass

    def stderr(self):
        return "".join(self.stderr_lines[-40:])

    def _wait_ready(self, timeout):
        import httpx
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.stderr()}")
            try:
                r = httpx.get(self.base + "/health", timeout=5)
                if r.status_code == 200:
                    return
                if r.status_code == 503:
                    self.saw_loading = True
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server not ready after {timeout} s: {self.stderr()}")

    def alive(self):
        return self.proc.poll() is None

    def terminate(self, timeout=60):
        """SIGTERM and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def wait_idle(base, timeout=20, headers=None):
    """Polls /metrics until nothing runs or waits and no KV block is in use; returns the text."""
    import httpx
    deadline = time.time() + timeout
    text = ""
    while time.time() < deadline:
        text = httpx.get(base + "/metrics", headers=headers or {}, timeout=10).text
        if (metric(text, "dspark:num_requests_running") == 0
                and metric(text, "dspark:num_requests_waiting") == 0
                and metric(text, "dspark:kv_cache_usage_perc") == 0):
            return text
        time.sleep(0.1)
    raise AssertionError("server not idle: running %s, waiting %s, kv %s" % (
        metric(text, "dspark:num_requests_running"), metric(text, "dspark:num_requests_waiting"),
        metric(text, "dspark:kv_cache_usage_perc")))


def parse_sse(body):
    """(list of JSON chunks, saw [DONE] last); asserts the framing."""
    import json
    chunks, done = [], False
    assert body.endswith("\n\n"), f"stream does not end with a blank line: {body[-80:]!r}"
    for frame in body.split("\n\n")[:-1]:
        assert frame.startswith("data: "), f"bad frame {frame[:80]!r}"
        assert not done, "a frame after [DONE]"
        payload = frame[len("data: "):]
        if payload == "[DONE]":
            done = True
        else:
            chunks.append(json.loads(payload))
    return chunks, done


def is_openai_error(body):
    """Whether a parsed JSON body is {"error": {message, type, param, code}}."""
    err = body.get("error") if isinstance(body, dict) else None
    return isinstance(err, dict) and set(err) == ERROR_FIELDS


def post_stream(client, url, body, hang_up_after=None, on_piece=None):
    """POSTs a streaming request with an httpx client and returns the whole event-stream text;
    asserts status 200 and the content type. on_piece() runs after every piece received; with
    hang_up_after=n the client closes the connection after piece n and None is returned."""
    with client.stream("POST", url, json=body) as r:
        assert r.status_code == 200, f"status {r.status_code}: {r.read()[:200]!r}"
        assert r.headers["content-type"].startswith("text/event-stream")
        data = ""
        for n, piece in enumerate(r.iter_text()):
            data += piece
            if on_piece:
                on_piece()
            if hang_up_after is not None and n >= hang_up_after:
                return None  # leaving the block closes the connection mid-stream
    return data


def check_end_state(s, errors, idle_timeout=20):
    """After a stress run: the server is alive, goes idle (nothing running or waiting, no KV
    block in use), /health answers 200 and SIGTERM exits 0. Failures are appended to errors.
    Returns the idle /metrics text, "" when the server never got there."""
    import httpx
    if not s.alive():
        errors.append("the server died: " + s.stderr())
        return ""
    text = ""
    try:
        text = wait_idle(s.base, timeout=idle_timeout)
    except AssertionError as e:
        errors.append(str(e))
    if httpx.get(s.base + "/health").status_code != 200:
        errors.append("/health not ok after the run")
    code = s.terminate()
    if code != 0:
        errors.append(f"exit code {code}")
    return text


def report(errors):
    """Prints the first 20 errors and PASS or FAIL; returns the exit code."""
    for e in errors[:20]:
        print("  FAIL:", e)
    if errors:
        print(f"FAIL: {len(errors)} errors")
        return 1
    print("PASS")
    return 0
