// The completion endpoints over EngineRequests.
#include "generation.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <random>

#include "chat_prompt.h"
#include "engine_requests.h"
#include "response_format.h"
#include "tool_calls.h"

namespace dspark::server {

namespace {

using Clock = std::chrono::steady_clock;

// A request ready to submit.
struct Prepared {
  ParsedRequest req;
  std::vector<std::vector<int32_t>> prompts;  // [n_prompts][n_prompt_tokens]
  std::vector<std::string> echo;              // [n_prompts] prompt text when echo is asked
  std::vector<int32_t> max_tokens;            // [n_prompts]
  ResponseMeta meta;
  int64_t prompt_tokens = 0;                       // usage: each prompt counted once, whatever n is
  bool parse_tools = false;                        // each choice's output is parsed for tool calls
  std::shared_ptr<const CompiledGrammar> grammar;  // structured outputs: what the output matches
  size_t max_tool_calls = std::numeric_limits<size_t>::max();  // 1 without parallel_tool_calls
};

ApiError context_error(int64_t context, int64_t n_prompt, int64_t max_tokens, bool given) {
  if (!given) {
    return bad_request("the prompt has " + std::to_string(n_prompt) +
                           " tokens, which leaves no room to generate in this model's context "
                           "of " +
                           std::to_string(context) + " tokens",
                       "messages", "context_length_exceeded");
  }
  return bad_request("this model's maximum context length is " + std::to_string(context) +
                         " tokens, but the request asks for " + std::to_string(n_prompt) +
                         " prompt tokens + " + std::to_string(max_tokens) +
                         " max_tokens = " + std::to_string(n_prompt + max_tokens) + " tokens",
                     "max_tokens", "context_length_exceeded");
}

// The request's grammar compiled for the model (cached by the compiler): a 400 naming the field
// when the schema, regex or grammar is invalid or uses what the grammar engine cannot enforce.
std::optional<ApiError> compile_grammar(const ServedModel& model, const ParsedRequest& r,
                                        std::shared_ptr<const CompiledGrammar>* out) {
  if (!model.grammar) {
    return bad_request(
        "structured outputs are not available for this model: " + model.grammar_error,
        r.grammar_param);
  }
  auto compiled = model.grammar->compile(*r.grammar);
  if (!compiled.ok()) {
    const std::string& why = compiled.error().message;
    const bool unsupported = why.find("unsupported") != std::string::npos;
    return bad_request("'" + r.grammar_param + "' cannot be used: " + why, r.grammar_param,
                       unsupported ? "unsupported_feature" : "invalid_grammar");
  }
  *out = std::move(compiled).value();
  return std::nullopt;
}

std::optional<ApiError> prepare(const State& state, const ServedModel& model,
                                const http::Request& request, Endpoint endpoint, Prepared* out) {
  ParsedRequest& r = out->req;
  if (auto e = parse_request(request.body, endpoint, state.limits, &r)) return e;
  if (auto e = check_model_name(r.model, state.options.served_model_name)) return e;
  const Tokenizer& tok = *model.tokenizer;
  if (endpoint == Endpoint::kChat) {
    // The template writes any BOS itself; message content never becomes control tokens.
    std::vector<int32_t> prompt;
    if (auto e = chat_prompt_tokens(model, r, false, state.options.allow_control_tokens_in_content,
                                    &prompt)) {
      return e;
    }
    out->prompts.push_back(std::move(prompt));
    out->parse_tools = r.tools_enabled() && model.chat.tool_calls == ToolCallFormat::kHermes;
    if (!r.parallel_tool_calls) out->max_tool_calls = 1;
  } else {
    // A raw prompt is the caller's own text: its control tokens are parsed, as peers do.
    for (const PromptInput& p : r.prompts) {
      out->prompts.push_back(p.is_tokens ? p.tokens : tok.encode(p.text, true, true));
      if (r.echo) out->echo.push_back(p.is_tokens ? tok.decode(p.tokens, false) : p.text);
    }
  }
  if (r.grammar) {
    if (auto e = compile_grammar(model, r, &out->grammar)) return e;
  }
  for (const std::vector<int32_t>& prompt : out->prompts) {
    const int64_t n_prompt = int64_t(prompt.size());
    if (n_prompt == 0) {
      return bad_request("the prompt is empty after tokenization",
                         endpoint == Endpoint::kChat ? "messages" : "prompt");
    }
    int64_t max_tokens = 0;
    if (r.max_tokens) {
      max_tokens = *r.max_tokens;
      if (n_prompt + max_tokens > model.context) {
        return context_error(model.context, n_prompt, max_tokens, true);
      }
    } else {
      if (n_prompt >= model.context) return context_error(model.context, n_prompt, 0, false);
      // Chat: up to the context; completions: OpenAI's legacy default of 16.
      max_tokens = model.context - n_prompt;
      if (endpoint == Endpoint::kCompletion) max_tokens = std::min<int64_t>(max_tokens, 16);
    }
    if (r.sampling.min_tokens > max_tokens) {
      return bad_request("'min_tokens' (" + std::to_string(r.sampling.min_tokens) +
                             ") exceeds max_tokens (" + std::to_string(max_tokens) + ")",
                         "min_tokens");
    }
    out->max_tokens.push_back(int32_t(max_tokens));
    out->prompt_tokens += n_prompt;
  }
  out->meta.endpoint = endpoint;
  out->meta.id = new_response_id(endpoint);
  out->meta.created = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  out->meta.model = state.options.served_model_name;
  out->meta.fingerprint = "dspark-" + state.options.version;
  return std::nullopt;
}

// Submits n completions per prompt (one engine group each, computing the prompt once), choice
// index = prompt * n + i, in that order; choice c samples with seed + c when a seed is given.
std::optional<ApiError> submit_all(State& state, const ServedModel& model, const Prepared& p,
                                   EngineRequests* requests) {
  std::lock_guard<std::mutex> lock(state.admission_mu);
  // Requests running at the end of the engine's last step (published, never waits for a step).
  const int64_t queued = state.live_engine_requests() - int64_t(model.engine->n_running());
  if (queued >= state.options.max_queued_requests) {
    return ApiError{429,
                    "the server is busy: " + std::to_string(queued) +
                        " requests are already waiting (--max-queued-requests " +
                        std::to_string(state.options.max_queued_requests) + "); retry later",
                    "rate_limit_error", "", "queue_full"};
  }
  thread_local std::mt19937_64 rng{std::random_device{}()};
  for (size_t prompt = 0; prompt < p.prompts.size(); ++prompt) {
    const uint64_t first_choice = uint64_t(prompt) * uint64_t(p.req.n);
    engine::Request er;
    er.prompt = p.prompts[prompt];
    er.params = p.req.sampling;
    er.speculate = p.req.speculate;
    er.grammar = p.grammar;
    er.params.max_tokens = p.max_tokens[prompt];
    // The engine gives member i the seed + i.
    er.params.seed = p.req.seed ? *p.req.seed + first_choice : rng();
    er.params.logprobs = p.req.logprobs;
    er.params.top_logprobs = p.req.top_logprobs;
    Status s = requests->submit_n(std::move(er), p.req.n);
    if (s.ok()) continue;
    if (s.message().find("engine: stopped") != std::string::npos) {
      if (!state.shutting_down) state.engine_dead = true;
      return ApiError{503, "the engine has stopped", "server_error", "", "engine_stopped"};
    }
    return bad_request(s.message());
  }
  return std::nullopt;
}

// Fills the log from the finished choices.
void log_results(const std::vector<ChoiceResult>& results, const Prepared& p, RequestLog* log) {
  engine::SpecStats spec;
  log->prompt_tokens = p.prompt_tokens;
  log->completion_tokens = 0;
  for (const ChoiceResult& c : results) {
    log->completion_tokens += c.final.n_completion_tokens;
    if (c.final.n_completion_tokens > 0 &&
        (log->ttft_s == 0.0 || c.final.timings.ttft_s < log->ttft_s)) {
      log->ttft_s = c.final.timings.ttft_s;
    }
    add_spec(c.final.spec, &spec);
  }
  log->accepted_length = mean_accepted_length(spec);
}

ApiError engine_failure(const std::vector<ChoiceResult>& results) {
  for (const ChoiceResult& c : results) {
    if (c.final.reason == engine::FinishReason::kError) {
      return ApiError{500, "generation failed: " + c.final.message, "server_error", "",
                      "engine_error"};
    }
  }
  return ApiError{500, "generation failed", "server_error", "", "engine_error"};
}

bool any_error(const std::vector<ChoiceResult>& results) {
  return std::any_of(results.begin(), results.end(), [](const ChoiceResult& c) {
    return c.final.reason == engine::FinishReason::kError;
  });
}

http::Reply whole_reply(const ServedModel& model, const http::Request& request, const Prepared& p,
                        EngineRequests& requests, RequestLog* log) {
  std::vector<ChoiceResult> results(requests.size());
  const int32_t n = p.req.n;
  for (size_t i = 0; i < results.size(); ++i) {
    results[i].index = int32_t(i);
    if (p.req.return_token_ids) results[i].prompt_ids = &p.prompts[i / size_t(n)];
    if (p.req.echo) {
      results[i].text = p.echo[i / size_t(n)];
      results[i].echo_bytes = int64_t(results[i].text.size());
    }
  }
  while (!requests.finished()) {
    if (request.disconnected && request.disconnected()) {
      requests.abort_and_drain();
      log_results(results, p, log);
      log->status = 499;  // nginx's "client closed request": nobody reads this reply
      return http::Reply{
          error_response(ApiError{499, "client disconnected", "client_disconnected", "", ""}), {}};
    }
    auto next = requests.next(std::chrono::milliseconds(50));
    if (!next) continue;
    auto& [i, event] = *next;
    results[i].text += event.text;
    results[i].logprobs.insert(results[i].logprobs.end(), event.logprobs.begin(),
                               event.logprobs.end());
    if (event.final) results[i].final = *event.final;
  }
  log_results(results, p, log);
  if (any_error(results)) {
    const ApiError e = engine_failure(results);
    log->status = e.status;
    return http::Reply{error_response(e), {}};
  }
  if (p.parse_tools) {
    for (ChoiceResult& c : results) {
      ParsedOutput parsed = parse_tool_calls(c.text, p.max_tool_calls);
      if (parsed.calls.empty()) continue;
      c.text = std::move(parsed.content);
      c.tool_calls = std::move(parsed.calls);
    }
  }
  Usage usage{p.prompt_tokens, log->completion_tokens};
  http::Reply reply;
  reply.head.body = full_response(p.meta, results, p.req.logprobs, usage, *model.tokenizer);
  return reply;
}

// Writes the stream of chunks; returns false once the client is gone.
class ChunkWriter {
 public:
  explicit ChunkWriter(http::StreamWriter& writer) : writer_(writer) {}
  bool write(const std::string& data) {
    if (gone_) return false;
    if (!writer_.write(data)) gone_ = true;
    return !gone_;
  }
  bool gone() {
    if (!gone_ && writer_.disconnected()) gone_ = true;
    return gone_;
  }

 private:
  http::StreamWriter& writer_;
  bool gone_ = false;
};

// An event's text as the client sees it: unchanged, or split into content and tool calls by the
// choice's parser (finished on the final event).
ToolCallParser::Delta event_delta(std::vector<ToolCallParser>* parsers, size_t i,
                                  const engine::Event& event) {
  if (parsers->empty()) return {event.text, {}};
  ToolCallParser& parser = (*parsers)[i];
  ToolCallParser::Delta delta = parser.feed(event.text);
  if (event.final) delta.append(parser.finish());
  return delta;
}

void stream_body(const std::shared_ptr<const ServedModel>& model, const Prepared& p,
                 EngineRequests& requests, RequestLog* log, http::StreamWriter& writer) {
  ChunkWriter out(writer);
  const ResponseMeta& meta = p.meta;
  const bool usage = p.req.include_usage;
  const bool chat = meta.endpoint == Endpoint::kChat;
  std::vector<ChoiceResult> results(requests.size());
  std::vector<int64_t> offsets(requests.size(), 0);  // completions logprobs text_offset
  std::vector<ToolCallParser> parsers;               // [n_choices] when parsing tool calls
  if (p.parse_tools) parsers.assign(requests.size(), ToolCallParser(p.max_tool_calls));
  std::vector<int32_t> n_calls(requests.size(), 0);  // tool calls sent per choice
  for (size_t i = 0; i < results.size(); ++i) {
    results[i].index = int32_t(i);
    if (chat) {
      out.write(role_chunk(meta, int32_t(i), usage));
    } else if (p.req.echo) {
      const std::string& echo = p.echo[i / size_t(p.req.n)];
      offsets[i] = int64_t(echo.size());
      out.write(text_chunk(meta, int32_t(i), echo, nullptr, usage));
    }
  }
  std::optional<ApiError> failure;
  while (!requests.finished() && !out.gone()) {
    auto next = requests.next(std::chrono::milliseconds(100));
    if (!next) continue;
    auto& [i, event] = *next;
    const int32_t index = int32_t(i);
    ToolCallParser::Delta delta = event_delta(&parsers, i, event);
    if (!delta.content.empty() || !event.logprobs.empty()) {
      nlohmann::json lp = nullptr;
      if (p.req.logprobs) {
        lp = logprobs_json(meta.endpoint, event.logprobs, *model->tokenizer, &offsets[i]);
      }
      out.write(text_chunk(meta, index, delta.content, lp, usage));
    }
    for (ToolCall& call : delta.calls) {
      call.id = new_tool_call_id();
      out.write(tool_call_chunk(meta, index, n_calls[i]++, call, usage));
    }
    if (!event.final) continue;
    results[i].final = *event.final;
    if (event.final->reason == engine::FinishReason::kError) {
      failure = ApiError{500, "generation failed: " + event.final->message, "server_error", "",
                         "engine_error"};
      break;
    }
    out.write(finish_chunk(meta, index, *event.final, usage, n_calls[i] > 0));
  }
  if (out.gone() || failure) requests.abort_and_drain();
  log_results(results, p, log);
  if (out.gone()) {
    log->status = 499;
    return;
  }
  if (failure) {
    out.write(error_chunk(*failure));
  } else if (usage) {
    engine::SpecStats spec;
    for (const ChoiceResult& c : results) add_spec(c.final.spec, &spec);
    out.write(usage_chunk(meta, Usage{p.prompt_tokens, log->completion_tokens}, spec));
  }
  out.write(sse_done());
}

}  // namespace

http::Reply handle_generation(const std::shared_ptr<State>& state, const http::Request& request,
                              Endpoint endpoint, const std::shared_ptr<RequestLog>& log) {
  auto fail = [&](const ApiError& e) {
    log->status = e.status;
    http::Reply reply{error_response(e), {}};
    if (e.status == 429) reply.head.headers.emplace_back("Retry-After", "1");
    return reply;
  };
  if (state->shutting_down) {
    return fail(ApiError{503, "the server is shutting down", "server_error", "", "shutting_down"});
  }
  std::shared_ptr<const ServedModel> model = state->served();
  if (!model) {
    return fail(ApiError{503, "the model is still loading", "server_error", "", "loading"});
  }
  auto token = std::make_shared<State::HttpToken>(state);
  auto prepared = std::make_shared<Prepared>();
  if (auto e = prepare(*state, *model, request, endpoint, prepared.get())) return fail(*e);
  log->id = prepared->meta.id;
  auto requests = std::make_shared<EngineRequests>(state, model);
  if (auto e = submit_all(*state, *model, *prepared, requests.get())) return fail(*e);

  if (!prepared->req.stream) {
    return whole_reply(*model, request, *prepared, *requests, log.get());
  }
  http::Reply reply;
  reply.head.content_type = "text/event-stream";
  reply.head.headers.emplace_back("Cache-Control", "no-cache");
  reply.head.headers.emplace_back("X-Accel-Buffering", "no");
  // The lambda owns everything the stream needs; if the transport drops it unrun, the engine
  // requests are aborted and drained by their destructor.
  reply.stream = [model, prepared, requests, log, token](http::StreamWriter& writer) {
    stream_body(model, *prepared, *requests, log.get(), writer);
    log->emit();
  };
  return reply;
}

}  // namespace dspark::server
