#!/usr/bin/env python3
"""End to end: structured outputs (response_format json_object / json_schema, vLLM's guided_json,
guided_regex, guided_choice, guided_grammar) through the official openai client.

Two servers on one model, one plain and one speculating (prompt lookup verifying every draft at
depth 4): every output of a schema-constrained request over a set of real-world schemas (nested
objects, arrays, enums, numbers and integers with bounds, required and optional properties,
$defs references, anyOf with null, a pattern) finishes with "stop", parses, and validates against
its schema with Python `jsonschema` (the independent check), at temperature 0 and 1, on both
servers, whole and streamed, on /v1/chat/completions and /v1/completions. At temperature 0 the
speculating server's output equals the plain one's, text for text. Regex and choice outputs
match. Bad schemas, unsupported schema features, bad regexes, two guides and an empty
guided_choice are 400s in OpenAI's error shape naming the field.

The model is SmolLM2-135M-Instruct when fetched, else the tiny generated one (whose output is
noise: there only what must hold for any model is checked, with bounded schemas).

Exit 0: pass, 1: fail, 77: skip (packages or the tiny model missing).
"""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_util as su  # noqa: E402

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"  FAIL: {what}")
    return cond


# Real-world shapes; strings and arrays are bounded so that every output ends within max_tokens.
SCHEMAS = {
    "person": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 40},
            "age": {"type": "integer", "minimum": 0, "maximum": 150},
            "email": {"type": "string", "maxLength": 60},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 20},
                     "maxItems": 4},
        },
        "required": ["name", "age"],
    },
    "order": {
        "$defs": {
            "item": {
                "type": "object",
                "properties": {
                    "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{3}$"},
                    "qty": {"type": "integer", "minimum": 1, "maximum": 99},
                    "price": {"type": "number", "minimum": 0, "maximum": 10000},
                },
                "required": ["sku", "qty", "price"],
            }
        },
        "type": "object",
        "properties": {
            "order_id": {"type": "string", "maxLength": 20},
            "items": {"type": "array", "items": {"$ref": "#/$defs/item"}, "minItems": 1,
                      "maxItems": 3},
            "status": {"enum": ["pending", "shipped", "delivered"]},
        },
        "required": ["order_id", "items", "status"],
    },
    "weather": {
        "type": "object",
        "properties": {
            "location": {
                "type": "object",
                "properties": {"city": {"type": "string", "maxLength": 30},
                               "country": {"type": "string", "maxLength": 30}},
                "required": ["city", "country"],
            },
            "temperature_c": {"type": "number", "minimum": -90, "maximum": 60},
            "conditions": {"type": "string", "enum": ["sunny", "cloudy", "rain", "snow"]},
            "forecast": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "day": {"enum": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]},
                        "high": {"type": "integer", "minimum": -50, "maximum": 60},
                    },
                    "required": ["day", "high"],
                },
                "maxItems": 3,
            },
        },
        "required": ["location", "temperature_c", "conditions"],
    },
    "status": {
        "type": "object",
        "properties": {
            "ok": {"type": "boolean"},
            "error": {"anyOf": [{"type": "string", "maxLength": 40}, {"type": "null"}]},
            "code": {"type": "integer", "minimum": 100, "maximum": 599},
        },
        "required": ["ok", "code"],
    },
    "digits": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 9},
               "minItems": 2, "maxItems": 5},
}
PROMPTS = {
    "person": "Describe a fictional person as JSON with name, age, email and tags.",
    "order": "Write a JSON order with an id, one to three items (sku, qty, price) and a status.",
    "weather": "Give the weather in Paris as JSON: location, temperature, conditions, forecast.",
    "status": "Report the result of an HTTP request as JSON with ok, error and code.",
    "digits": "List a few digits as a JSON array.",
}
MAX_TOKENS = 400


def validate(text, schema, what):
    import jsonschema
    try:
        value = json.loads(text)
    except ValueError as e:
        return check(False, f"{what}: not JSON ({e}): {text[:200]!r}")
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as e:
        return check(False, f"{what}: does not validate ({e.message}): {text[:200]!r}")
    if isinstance(value, dict) and "properties" in schema:
        order = list(schema["properties"])
        keys = [order.index(k) for k in value]
        check(keys == sorted(keys), f"{what}: properties out of the schema's order: {text!r}")
    return True


def chat(client, name, prompt, temperature, seed, **kwargs):
    return client.chat.completions.create(
        model=name, messages=[{"role": "user", "content": prompt}], max_tokens=MAX_TOKENS,
        temperature=temperature, seed=seed, **kwargs)


def streamed_text(client, name, prompt, temperature, seed, **kwargs):
    text, finish = "", None
    for chunk in client.chat.completions.create(
            model=name, messages=[{"role": "user", "content": prompt}], max_tokens=MAX_TOKENS,
            temperature=temperature, seed=seed, stream=True, **kwargs):
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    return text, finish


def run_schemas(clients, label):
    """Every schema at temperature 0 and 1 on both servers; returns the greedy texts per server."""
    greedy = {}
    drafted = 0
    for server, (client, name) in clients.items():
        for key, schema in SCHEMAS.items():
            fmt = {"type": "json_schema",
                   "json_schema": {"name": key, "schema": schema, "strict": True}}
            for temperature, seed in ((0.0, None), (1.0, 11), (1.0, 12)):
                what = f"{label}/{server} {key} T={temperature}"
                r = chat(client, name, PROMPTS[key], temperature, seed, response_format=fmt)
                c = r.choices[0]
                check(c.finish_reason == "stop", f"{what}: finish_reason {c.finish_reason}")
                validate(c.message.content, schema, what)
                if temperature == 0.0:
                    greedy[(server, key)] = c.message.content
                extra = getattr(r, "dspark", None) or (r.model_extra or {}).get("dspark") or {}
                drafted += int(extra.get("drafted", 0))
            # Streamed: the deltas add up to a valid document too, and at temperature 0 to the
            # whole response's.
            text, finish = streamed_text(client, name, PROMPTS[key], 0.0, None,
                                         response_format=fmt)
            check(finish == "stop", f"{label}/{server} {key} streamed: finish {finish}")
            if validate(text, schema, f"{label}/{server} {key} streamed"):
                check(text == greedy[(server, key)],
                      f"{label}/{server} {key}: streamed {text!r} != whole "
                      f"{greedy[(server, key)]!r}")
    check(drafted > 0, f"{label}: the speculating server drafted nothing")
    print(f"  {label}: the speculating server drafted {drafted} tokens")
    for key in SCHEMAS:
        print(f"  {label} {key} greedy: {greedy[('plain', key)]}")
        check(greedy[("plain", key)] == greedy[("spec", key)],
              f"{label} {key}: greedy with speculation {greedy[('spec', key)]!r} != without "
              f"{greedy[('plain', key)]!r}")


def run_guides(clients, label):
    for server, (client, name) in clients.items():
        what = f"{label}/{server}"
        r = chat(client, name, "Is the sky blue? Answer yes or no.", 0.0, None,
                 extra_body={"guided_choice": ["yes", "no", "it depends"]})
        check(r.choices[0].message.content in ("yes", "no", "it depends"),
              f"{what} guided_choice: {r.choices[0].message.content!r}")
        check(r.choices[0].finish_reason == "stop", f"{what} guided_choice finish")
        r = chat(client, name, "Give a phone number.", 1.0, 5,
                 extra_body={"guided_regex": r"\(\d{3}\) \d{3}-\d{4}"})
        check(re.fullmatch(r"\(\d{3}\) \d{3}-\d{4}", r.choices[0].message.content) is not None,
              f"{what} guided_regex: {r.choices[0].message.content!r}")
        r = chat(client, name, "Say hi.", 0.0, None,
                 extra_body={"guided_grammar": 'root ::= "hi" " there"? "!"'})
        check(r.choices[0].message.content in ("hi!", "hi there!"),
              f"{what} guided_grammar: {r.choices[0].message.content!r}")
        r = chat(client, name, "Give any JSON object.", 1.0, 3,
                 response_format={"type": "json_object"})
        if r.choices[0].finish_reason == "stop":
            try:
                check(isinstance(json.loads(r.choices[0].message.content), dict),
                      f"{what} json_object: not an object")
            except ValueError:
                check(False, f"{what} json_object: not JSON: {r.choices[0].message.content!r}")
        # /v1/completions shares the parser: guided_json there, n = 2 choices.
        schema = SCHEMAS["status"]
        c = client.completions.create(model=name, prompt="HTTP result as JSON: ",
                                      max_tokens=MAX_TOKENS, temperature=1.0, seed=9, n=2,
                                      extra_body={"guided_json": schema})
        for i, choice in enumerate(c.choices):
            check(choice.finish_reason == "stop", f"{what} completions {i}: finish")
            validate(choice.text, schema, f"{what} completions choice {i}")


def expect_400(client, name, param, what, needle=None, **kwargs):
    import openai
    try:
        client.chat.completions.create(model=name, max_tokens=4,
                                       messages=[{"role": "user", "content": "hi"}], **kwargs)
        check(False, f"{what}: 400 expected")
    except openai.BadRequestError as e:
        err = e.body if isinstance(e.body, dict) else {}
        check(su.is_openai_error({"error": err}), f"{what}: OpenAI's error shape: {e.body}")
        check(err.get("param") == param, f"{what}: the 400 names {param}: {e.body}")
        if needle:
            check(needle in err.get("message", ""), f"{what}: the message names {needle!r}")


def run_refusals(client, name):
    rf = "response_format.json_schema.schema"

    def schema_fmt(schema):
        return {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}

    expect_400(client, name, rf, "unsupported keyword 'not'", "not",
               response_format=schema_fmt({"type": "object", "not": {"required": ["a"]}}))
    expect_400(client, name, "guided_json", "unsupported keyword 'uniqueItems'", "uniqueItems",
               extra_body={"guided_json": {"type": "array", "uniqueItems": True}})
    expect_400(client, name, rf, "a bad schema",
               response_format=schema_fmt({"type": "object", "properties": {"a": {"type": 5}}}))
    expect_400(client, name, rf, "a dangling $ref",
               response_format=schema_fmt({"$ref": "#/$defs/missing"}))
    expect_400(client, name, "guided_regex", "a bad regex", extra_body={"guided_regex": "(a"})
    expect_400(client, name, "guided_grammar", "a bad grammar",
               extra_body={"guided_grammar": "root ::= undefined_rule"})
    expect_400(client, name, "guided_choice", "an empty guided_choice", "at least one",
               extra_body={"guided_choice": []})
    expect_400(client, name, "guided_regex", "two guides", "at most one",
               response_format={"type": "json_object"}, extra_body={"guided_regex": "a+"})
    expect_400(client, name, "response_format.type", "an unknown response_format type",
               response_format={"type": "xml"})


def serve_and_run(args, model, label, real):
    import openai
    with su.Server(args, model, "--kv-cache-mem", "256", name=label) as plain, \
            su.Server(args, model, "--kv-cache-mem", "256", "--spec-method", "ngram",
                      "--spec-fixed-depth", "4", name=label) as spec:
        clients = {}
        for server, s in (("plain", plain), ("spec", spec)):
            clients[server] = (openai.OpenAI(base_url=s.base + "/v1", api_key="none",
                                             max_retries=0, timeout=600), label)
        run_refusals(clients["plain"][0], label)
        run_guides(clients, label)
        if real:
            run_schemas(clients, label)
        else:
            # The tiny model's output is noise: greedy equality and validity where it ends.
            for key in ("status", "digits"):
                fmt = {"type": "json_schema", "json_schema": {"name": key,
                                                              "schema": SCHEMAS[key]}}
                texts = {}
                for server, (client, name) in clients.items():
                    r = chat(client, name, PROMPTS[key], 0.0, None, response_format=fmt)
                    texts[server] = r.choices[0].message.content
                    if r.choices[0].finish_reason == "stop":
                        validate(texts[server], SCHEMAS[key], f"{label}/{server} {key}")
                check(texts["plain"] == texts["spec"], f"{label} {key}: spec != plain greedy")
        for s in (plain, spec):
            su.wait_idle(s.base)
            check(s.terminate() == 0, f"{label}: exit 0")


def main():
    args = su.parse_args()
    su.require_packages()
    try:
        import jsonschema  # noqa: F401
    except ImportError:
        su.skip("python package missing: jsonschema (pip install -r scripts/requirements.txt)")
    path = su.real_model(args, failures)
    if path:
        print(su.REAL_MODEL)
        serve_and_run(args, path, "smollm2", True)
    else:
        print("tiny model")
        serve_and_run(args, su.tiny_model(args), "tiny", False)
    return su.report(failures)


if __name__ == "__main__":
    sys.exit(main())
