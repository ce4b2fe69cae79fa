// OpenAI response objects and stream chunks.
#include "response_format.h"

#include <cmath>
#include <random>

#include "json_text.h"

namespace dspark::server {

namespace {

using json = nlohmann::json;

// JSON has no infinity: a token the model gives no mass (-inf) reports vLLM's floor instead.
double finite_logprob(float lp) {
  return std::isfinite(lp) ? double(lp) : -9999.0;
}

bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80             ? 0
                     : (c & 0xe0) == 0xc0 ? 1
                     : (c & 0xf0) == 0xe0 ? 2
                     : (c & 0xf8) == 0xf0 ? 3
                                          : 4;
    if (n == 4 || (n > 0 && i + n >= s.size())) return false;
    for (size_t k = 1; k <= n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    }
    i += n + 1;
  }
  return true;
}

// A token's text for logprobs. A token holding part of a UTF-8 character is spelled
// "bytes:\xe2\x80" as OpenAI does, so distinct partial tokens stay distinct (the raw bytes are
// in "bytes" for chat).
std::string token_string(const std::string& s) {
  if (valid_utf8(s)) return s;
  static const char* hex = "0123456789abcdef";
  std::string out = "bytes:";
  for (unsigned char c : s) {
    out += "\\x";
    out += hex[c >> 4];
    out += hex[c & 15];
  }
  return out;
}

json bytes_of(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(int(c));
  return b;
}

json chunk_base(const ResponseMeta& meta, bool include_usage) {
  json c = {
      {"id", meta.id},
      {"object", meta.endpoint == Endpoint::kChat ? "chat.completion.chunk" : "text_completion"},
      {"created", meta.created},
      {"model", meta.model}};
  if (!meta.fingerprint.empty()) c["system_fingerprint"] = meta.fingerprint;
  // With include_usage, OpenAI sends "usage": null on every chunk before the usage chunk.
  if (include_usage) c["usage"] = nullptr;
  return c;
}

// OpenAI's tool call object; arguments are the JSON text.
json tool_call_json(const ToolCall& call) {
  return {{"id", call.id},
          {"type", "function"},
          {"function", {{"name", call.name}, {"arguments", call.arguments}}}};
}

json stream_choice(const ResponseMeta& meta, int32_t index, json delta_or_text, json logprobs,
                   json finish) {
  json choice = {{"index", index}};
  if (meta.endpoint == Endpoint::kChat) {
    choice["delta"] = std::move(delta_or_text);
  } else {
    choice["text"] = std::move(delta_or_text);
  }
  choice["logprobs"] = std::move(logprobs);
  choice["finish_reason"] = std::move(finish);
  return choice;
}

}  // namespace

std::string new_response_id(Endpoint endpoint) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  std::string id = endpoint == Endpoint::kChat ? "chatcmpl-" : "cmpl-";
  for (int i = 0; i < 24; ++i) id += hex[rng() & 15];
  return id;
}

json usage_json(const Usage& usage) {
  return {{"prompt_tokens", usage.prompt_tokens},
          {"completion_tokens", usage.completion_tokens},
          {"total_tokens", usage.prompt_tokens + usage.completion_tokens}};
}

double mean_accepted_length(const engine::SpecStats& spec) {
  if (spec.n_rounds <= 0) return 1.0;
  return double(spec.n_accepted + spec.n_rounds) / double(spec.n_rounds);
}

json spec_json(const engine::SpecStats& spec) {
  return {{"drafted", spec.n_drafted},
          {"accepted", spec.n_accepted},
          {"mean_accepted_length", mean_accepted_length(spec)}};
}

void add_spec(const engine::SpecStats& from, engine::SpecStats* into) {
  into->n_rounds += from.n_rounds;
  into->n_drafted += from.n_drafted;
  into->n_verified += from.n_verified;
  into->n_accepted += from.n_accepted;
  auto add_vec = [](const std::vector<int64_t>& a, std::vector<int64_t>* b) {
    if (b->size() < a.size()) b->resize(a.size(), 0);
    for (size_t i = 0; i < a.size(); ++i) (*b)[i] += a[i];
  };
  add_vec(from.verified_at, &into->verified_at);
  add_vec(from.accepted_at, &into->accepted_at);
}

const char* finish_reason(const engine::FinalRecord& final, bool called_tools) {
  if (called_tools && final.reason == engine::FinishReason::kStop) return "tool_calls";
  return engine::finish_reason_name(final.reason);
}

json logprobs_json(Endpoint endpoint, const std::vector<TokenLogprobs>& logprobs,
                   const Tokenizer& tokenizer, int64_t* offset) {
  if (endpoint == Endpoint::kChat) {
    json content = json::array();
    for (const TokenLogprobs& t : logprobs) {
      const std::string s = tokenizer.token_bytes(t.token, true);
      json top = json::array();
      for (const auto& [id, lp] : t.top) {
        const std::string ts = tokenizer.token_bytes(id, true);
        top.push_back({{"token", token_string(ts)},
                       {"logprob", finite_logprob(lp)},
                       {"bytes", bytes_of(ts)}});
      }
      content.push_back({{"token", token_string(s)},
                         {"logprob", finite_logprob(t.logprob)},
                         {"bytes", bytes_of(s)},
                         {"top_logprobs", std::move(top)}});
    }
    return {{"content", std::move(content)}};
  }
  json tokens = json::array(), token_logprobs = json::array(), tops = json::array(),
       offsets = json::array();
  for (const TokenLogprobs& t : logprobs) {
    const std::string s = tokenizer.token_bytes(t.token, true);
    tokens.push_back(token_string(s));
    token_logprobs.push_back(finite_logprob(t.logprob));
    json top = json::object();
    for (const auto& [id, lp] : t.top) {
      top[token_string(tokenizer.token_bytes(id, true))] = finite_logprob(lp);
    }
    tops.push_back(std::move(top));
    offsets.push_back(*offset);
    *offset += int64_t(s.size());
  }
  return {{"tokens", std::move(tokens)},
          {"token_logprobs", std::move(token_logprobs)},
          {"top_logprobs", std::move(tops)},
          {"text_offset", std::move(offsets)}};
}

std::string full_response(const ResponseMeta& meta, const std::vector<ChoiceResult>& choices,
                          bool with_logprobs, const Usage& usage, const Tokenizer& tokenizer) {
  const bool chat = meta.endpoint == Endpoint::kChat;
  json out = {{"id", meta.id},
              {"object", chat ? "chat.completion" : "text_completion"},
              {"created", meta.created},
              {"model", meta.model}};
  if (!meta.fingerprint.empty()) out["system_fingerprint"] = meta.fingerprint;
  json list = json::array();
  engine::SpecStats spec;
  for (const ChoiceResult& c : choices) {
    json choice = {{"index", c.index}};
    if (chat) {
      choice["message"] = {{"role", "assistant"}, {"content", c.text}};
      if (!c.tool_calls.empty()) {
        if (c.text.empty()) choice["message"]["content"] = nullptr;
        json calls = json::array();
        for (const ToolCall& call : c.tool_calls) calls.push_back(tool_call_json(call));
        choice["message"]["tool_calls"] = std::move(calls);
      }
    } else {
      choice["text"] = c.text;
    }
    if (with_logprobs) {
      // Completions offsets count from the start of the returned text (echo included).
      int64_t offset = c.echo_bytes;
      choice["logprobs"] = logprobs_json(meta.endpoint, c.logprobs, tokenizer, &offset);
    } else {
      choice["logprobs"] = nullptr;
    }
    choice["finish_reason"] = finish_reason(c.final, !c.tool_calls.empty());
    if (c.prompt_ids) {
      // vLLM's places: one prompt per chat response, one per completions choice.
      if (chat) {
        out["prompt_token_ids"] = *c.prompt_ids;
      } else {
        choice["prompt_token_ids"] = *c.prompt_ids;
      }
    }
    list.push_back(std::move(choice));
    add_spec(c.final.spec, &spec);
  }
  out["choices"] = std::move(list);
  out["usage"] = usage_json(usage);
  out["dspark"] = spec_json(spec);
  return to_text(out);
}

std::string sse(const json& chunk) {
  return "data: " + to_text(chunk) + "\n\n";
}

std::string sse_done() {
  return "data: [DONE]\n\n";
}

std::string role_chunk(const ResponseMeta& meta, int32_t index, bool include_usage) {
  json c = chunk_base(meta, include_usage);
  c["choices"] = json::array(
      {stream_choice(meta, index, {{"role", "assistant"}, {"content", ""}}, nullptr, nullptr)});
  return sse(c);
}

std::string text_chunk(const ResponseMeta& meta, int32_t index, const std::string& text,
                       const json& logprobs, bool include_usage) {
  json c = chunk_base(meta, include_usage);
  json delta = meta.endpoint == Endpoint::kChat ? json{{"content", text}} : json(text);
  c["choices"] = json::array({stream_choice(meta, index, std::move(delta), logprobs, nullptr)});
  return sse(c);
}

std::string tool_call_chunk(const ResponseMeta& meta, int32_t index, int32_t call_index,
                            const ToolCall& call, bool include_usage) {
  json c = chunk_base(meta, include_usage);
  json entry = tool_call_json(call);
  entry["index"] = call_index;
  json delta = {{"tool_calls", json::array({std::move(entry)})}};
  c["choices"] = json::array({stream_choice(meta, index, std::move(delta), nullptr, nullptr)});
  return sse(c);
}

std::string finish_chunk(const ResponseMeta& meta, int32_t index, const engine::FinalRecord& final,
                         bool include_usage, bool called_tools) {
  json c = chunk_base(meta, include_usage);
  json delta = meta.endpoint == Endpoint::kChat ? json::object() : json("");
  c["choices"] = json::array(
      {stream_choice(meta, index, std::move(delta), nullptr, finish_reason(final, called_tools))});
  c["dspark"] = spec_json(final.spec);
  return sse(c);
}

std::string usage_chunk(const ResponseMeta& meta, const Usage& usage,
                        const engine::SpecStats& spec) {
  json c = chunk_base(meta, false);
  c["choices"] = json::array();
  c["usage"] = usage_json(usage);
  c["dspark"] = spec_json(spec);
  return sse(c);
}

std::string error_chunk(const ApiError& error) {
  return "data: " + error_body(error) + "\n\n";
}

}  // namespace dspark::server
