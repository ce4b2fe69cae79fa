// The structured-output fields of a completion request: OpenAI's response_format (text,
// json_object, json_schema) and vLLM's extensions guided_json, guided_regex, guided_choice,
// guided_grammar and structured_outputs {json | regex | choice | grammar | json_object}. At most
// one of them may constrain a request; each error is a 400 naming the field. Whether a schema,
// regex or grammar compiles (and uses only what the grammar engine enforces) is decided when it
// is compiled for the model (generation.cpp), which names the same field. JSON output has the
// compact layout ({"a": 1, "b": [2, 3]}); json_schema's strict (default true) forbids
// properties the schema does not name, so the output always validates against the schema.
#pragma once

#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>

#include "api_error.h"
#include "request_parse.h"

namespace dspark::server {

// Sets out->grammar (and out->grammar_param) from the body, whose JSON text is `text` (schemas
// are read from it again in key order: the output's properties come in the schema's order);
// nothing when no field constrains it.
std::optional<ApiError> parse_structured_outputs(const nlohmann::json& body, std::string_view text,
                                                 const RequestLimits& limits, ParsedRequest* out);

// tool_choice "required" or a named function (after parse_tools): the output is one call in the
// Hermes form the tool-call parser reads, "<tool_call>\n{"name": ..., "arguments": ...}\n
// </tool_call>", of one of the tools (the named one), its arguments constrained by the
// function's parameters schema (an object when it has none). Sets out->grammar (param
// "tool_choice"); a 400 when another field constrains the output too.
std::optional<ApiError> tool_choice_grammar(ParsedRequest* out);

}  // namespace dspark::server
