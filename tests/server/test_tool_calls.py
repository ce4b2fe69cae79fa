#!/usr/bin/env python3
"""End to end: tool calling on /v1/chat/completions through the official openai client.

On the tiny model (whose ChatML template has no tools): tools are a 400 naming `tools` (with any
tool_choice), as are bad tool definitions (structured outputs: test_structured_outputs.py).

On Qwen2.5-Coder-0.5B (skipped when absent): a conversation with tools, an assistant message with
tool_calls and a tool result is accepted, and the prompt the engine gets (/tokenize, then
/detokenize) is the model's template rendered by Python jinja2 as Hugging Face renders it (the
tools printed with tojson in the client's key order, the call's arguments as an object, the tool
result in <tool_response>), control tokens aside. Then a weather-style round trip, whole and
streamed: whatever the model answers, the response has OpenAI's shape (tool calls with call_ ids
and JSON arguments, finish_reason "tool_calls"), and the streamed deltas add up to the whole
response. The parsing of <tool_call> output itself is covered by tests/server/tool_calls_test.cpp,
since a real model cannot be made to call a tool on demand.

Exit 0: pass, 1: fail, 77: skip (packages or the tiny model missing); the real model, when
absent, is skipped unless DSPARK_REQUIRE_MODELS=1. tool_choice "required" and a named function
force one get_weather call even for a question that needs none, its arguments following the
function's parameters.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_util as su  # noqa: E402

QWEN = "qwen2.5-coder-0.5b.gguf"
# Keys deliberately out of alphabetical order: the template must print them as sent.
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city — «quoted» \"escaped\"",
        "parameters": {
            "type": "object",
            "properties": {"unit": {"type": "string", "enum": ["c", "f"]},
                           "city": {"type": "string", "description": "The city"}},
            "required": ["city"],
        },
    },
}
HISTORY = [
    {"role": "system", "content": "You are a helpful assistant with tools."},
    {"role": "user", "content": "What's the weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_abc", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"unit": "c", "city": "Paris"}'}}]},
    {"role": "tool", "tool_call_id": "call_abc", "content": "22 °C, sunny"},
]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"  FAIL: {what}")


def expect_400(client, name, param, what, **kwargs):
    import openai
    try:
        client.chat.completions.create(model=name, max_tokens=1, **kwargs)
        check(False, f"{what}: 400 expected")
    except openai.BadRequestError as e:
        err = e.body if isinstance(e.body, dict) else {}
        check(err.get("param") == param, f"{what}: the 400 names {param}: {e.body}")
        return err.get("message", "")
    return ""


def test_refusals(client, name):
    user = [{"role": "user", "content": "hi"}]
    msg = expect_400(client, name, "tools", "tools on a template without tools",
                     messages=user, tools=[WEATHER])
    check("does not support tools" in msg, f"the message says why: {msg!r}")
    expect_400(client, name, "tools", "tool_choice required on a template without tools",
               messages=user, tools=[WEATHER], tool_choice="required")
    expect_400(client, name, "tool_choice", "a tool_choice naming an unknown function",
               messages=user, tools=[WEATHER],
               tool_choice={"type": "function", "function": {"name": "nope"}})
    bad = json.loads(json.dumps(WEATHER))
    bad["function"]["name"] = "get weather"
    expect_400(client, name, "tools[1].function.name", "a bad tool name",
               messages=user, tools=[WEATHER, bad])
    expect_400(client, name, "tools[1].function.name", "a repeated tool name",
               messages=user, tools=[WEATHER, WEATHER])
    expect_400(client, name, "messages[2].tool_calls[0].function.arguments",
               "tool-call arguments that are not JSON",
               messages=HISTORY[:2] + [dict(HISTORY[2], tool_calls=[
                   {"id": "c", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{city: Paris"}}])])
    ok = client.chat.completions.create(model=name, max_tokens=2, messages=user,
                                        response_format={"type": "text"}, tools=[WEATHER],
                                        tool_choice="none")
    check(ok.choices[0].message.tool_calls is None, "tool_choice none on the tiny model: served")


def reference_prompt(template, messages, tools):
    """The template rendered by jinja2 as Hugging Face renders it (vLLM's arguments as objects,
    null content as ""), or None without jinja2."""
    try:
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:
        return None
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = lambda x, indent=None: json.dumps(x, ensure_ascii=False,
                                                              indent=indent)
    msgs = []
    for m in messages:
        m = json.loads(json.dumps(m))
        m["content"] = m.get("content") or ""
        for call in m.get("tool_calls") or []:
            call["function"]["arguments"] = json.loads(call["function"]["arguments"])
        msgs.append(m)
    return env.from_string(template).render(messages=msgs, tools=tools, documents=None,
                                            add_generation_prompt=True, bos_token="",
                                            eos_token="<|im_end|>")


def gguf_template(path):
    try:
        import gguf
    except ImportError:
        return None
    field = gguf.GGUFReader(path).fields.get("tokenizer.chat_template")
    return bytes(field.parts[field.data[0]]).decode("utf-8") if field else None


def test_prompt(base, path):
    import httpx
    got = httpx.post(base + "/tokenize", json={"messages": HISTORY, "tools": [WEATHER]})
    check(got.status_code == 200, f"/tokenize with tools: {got.status_code} {got.text[:200]}")
    if got.status_code != 200:
        return
    ids = got.json()["tokens"]
    text = httpx.post(base + "/detokenize", json={"tokens": ids}).json()["prompt"]
    tool_json = json.dumps(WEATHER, ensure_ascii=False)
    check(tool_json in text, "the tool definition, in its key order, is in the prompt")
    check('<tool_call>\n{"name": "get_weather", "arguments": {"unit": "c", "city": "Paris"}}'
          '\n</tool_call>' in text, "the assistant's tool call is in the prompt")
    check("<tool_response>\n22 °C, sunny\n</tool_response>" in text,
          "the tool result is in the prompt")
    template = gguf_template(path)
    reference = reference_prompt(template, HISTORY, [WEATHER]) if template else None
    if reference is None:
        print("  (jinja2 or gguf missing: the exact comparison is skipped)")
    else:
        for special in ("<|im_start|>", "<|im_end|>", "<|endoftext|>"):
            reference = reference.replace(special, "")
        check(text == reference, f"the prompt is jinja2's rendering:\n{text!r}\nvs\n{reference!r}")
    none = httpx.post(base + "/tokenize",
                      json={"messages": HISTORY, "tools": [WEATHER], "tool_choice": "none"})
    none_text = httpx.post(base + "/detokenize", json={"tokens": none.json()["tokens"]}).json()
    check(tool_json not in none_text["prompt"], "tool_choice none: no tools in the prompt")


def check_response_shape(resp, what):
    choice = resp.choices[0]
    calls = choice.message.tool_calls or []
    for call in calls:
        check(call.id.startswith("call_") and len(call.id) == 29, f"{what}: call id {call.id}")
        check(call.type == "function", f"{what}: call type")
        try:
            json.loads(call.function.arguments)
        except ValueError:
            check(False, f"{what}: arguments are JSON: {call.function.arguments!r}")
    if calls:
        check(choice.finish_reason == "tool_calls", f"{what}: finish_reason {choice.finish_reason}")
    else:
        check(isinstance(choice.message.content, str), f"{what}: content without calls")
        check(choice.finish_reason in ("stop", "length"), f"{what}: finish {choice.finish_reason}")
    return calls


def streamed(client, name, **kwargs):
    """(content, [(name, arguments)], finish_reason) from a streamed request."""
    content, calls, finish = "", {}, None
    for chunk in client.chat.completions.create(model=name, stream=True, **kwargs):
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        content += delta.content or ""
        for call in delta.tool_calls or []:
            entry = calls.setdefault(call.index, {"name": "", "arguments": "", "id": call.id})
            entry["name"] += call.function.name or ""
            entry["arguments"] += call.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    return content, [(c["name"], c["arguments"]) for _, c in sorted(calls.items())], finish


def test_round_trip(client, name):
    question = [{"role": "user", "content": "What is the weather like in Paris today? Use the "
                                            "get_weather tool."}]
    kwargs = dict(messages=question, tools=[WEATHER], max_tokens=64, temperature=0)
    whole = client.chat.completions.create(model=name, **kwargs)
    calls = check_response_shape(whole, "first turn")
    content, stream_calls, finish = streamed(client, name, **kwargs)
    check(finish == whole.choices[0].finish_reason,
          f"streamed finish {finish} == {whole.choices[0].finish_reason}")
    check(stream_calls == [(c.function.name, c.function.arguments) for c in calls],
          f"streamed calls {stream_calls} == whole calls")
    check(content.strip() == (whole.choices[0].message.content or "").strip(),
          f"streamed content {content!r} == {whole.choices[0].message.content!r}")
    print(f"  first turn: {len(calls)} tool call(s) "
          f"{[(c.function.name, c.function.arguments) for c in calls]}, "
          f"content {whole.choices[0].message.content!r}")
    # The result goes back: the model's own call when it made one, else the scripted one.
    if calls:
        assistant = {"role": "assistant", "content": whole.choices[0].message.content,
                     "tool_calls": [c.model_dump() for c in calls]}
        results = [{"role": "tool", "tool_call_id": c.id, "content": "22 °C, sunny"}
                   for c in calls]
        history = question + [assistant] + results
    else:
        history = HISTORY
    final = client.chat.completions.create(model=name, messages=history, tools=[WEATHER],
                                           max_tokens=32, temperature=0)
    check_response_shape(final, "after the tool result")
    print(f"  after the tool result: {final.choices[0].message.content!r} "
          f"({final.choices[0].finish_reason})")


def test_forced_call(client, name):
    """tool_choice required and named: the model must call get_weather (one call, arguments that
    validate against its parameters), whole and streamed, at temperature 0 and 1."""
    question = [{"role": "user", "content": "Tell me a joke about cats."}]
    for choice in ("required", {"type": "function", "function": {"name": "get_weather"}}):
        for temperature, seed in ((0.0, None), (1.0, 4)):
            what = f"tool_choice {choice} T={temperature}"
            kwargs = dict(messages=question, tools=[WEATHER], max_tokens=96,
                          temperature=temperature, seed=seed, tool_choice=choice)
            whole = client.chat.completions.create(model=name, **kwargs)
            calls = check_response_shape(whole, what)
            ok = len(calls) == 1 and calls[0].function.name == "get_weather"
            check(ok, f"{what}: one get_weather call: {whole.choices[0].message}")
            if not ok:
                continue
            args = json.loads(calls[0].function.arguments)
            check(isinstance(args.get("city"), str), f"{what}: a city: {args}")
            check(set(args) <= {"city", "unit"} and args.get("unit", "c") in ("c", "f"),
                  f"{what}: arguments follow the parameters: {args}")
            if temperature == 0.0:
                _, stream_calls, finish = streamed(client, name, **kwargs)
                check(finish == "tool_calls" and stream_calls == [
                    (calls[0].function.name, calls[0].function.arguments)],
                      f"{what}: streamed {stream_calls} ({finish})")
            print(f"  {what}: {calls[0].function.arguments}")


def main():
    args = su.parse_args()
    su.require_packages()
    import openai
    tiny = su.tiny_model(args)
    print("tiny model")
    with su.Server(args, tiny, "--kv-cache-mem", "256", name="tiny") as s:
        client = openai.OpenAI(base_url=s.base + "/v1", api_key="none", max_retries=0)
        test_refusals(client, "tiny")
        su.wait_idle(s.base)
        check(s.terminate() == 0, "tiny: exit 0")
    print(QWEN)
    path = su.real_model(args, failures, QWEN)
    if path:
        with su.Server(args, path, "--kv-cache-mem", "256", name="qwen") as s:
            client = openai.OpenAI(base_url=s.base + "/v1", api_key="none", max_retries=0)
            test_prompt(s.base, path)
            test_round_trip(client, "qwen")
            test_forced_call(client, "qwen")
            su.wait_idle(s.base)
            check(s.terminate() == 0, "qwen: exit 0")
    return su.report(failures)


if __name__ == "__main__":
    sys.exit(main())
