// OpenAiServer: routing, authentication, and the small endpoints (health, models, metrics,
// version, tokenize, detokenize). Generation lives in generation.cpp.
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>

#include "chat_prompt.h"
#include "generation.h"
#include "json_text.h"
#include "response_format.h"
#include "server_state.h"

namespace dspark::server {

namespace {

using json = nlohmann::json;

http::Response json_response(int status, const json& body) {
  http::Response r;
  r.status = status;
  r.body = to_text(body);
  return r;
}

// Compares in time that depends only on the lengths, so the key leaks no prefix to timing.
bool constant_time_equal(const std::string& a, const std::string& b) {
  const size_t n = std::max(a.size(), b.size());
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= unsigned(x ^ y);
  }
  return diff == 0;
}

bool authorized(const State& state, const http::Request& request) {
  const std::string* auth = request.header("authorization");
  const std::string prefix = "Bearer ";
  if (!auth || auth->size() < prefix.size()) return false;
  // The scheme is case-insensitive (RFC 7235).
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>((*auth)[i])) !=
        std::tolower(static_cast<unsigned char>(prefix[i]))) {
      return false;
    }
  }
  return constant_time_equal(auth->substr(prefix.size()), state.options.api_key);
}

json model_object(const State& state, const ServedModel* model) {
  json m = {{"id", state.options.served_model_name},
            {"object", "model"},
            {"created", state.started_unix},
            {"owned_by", "dspark"}};
  if (model) m["max_model_len"] = model->context;
  return m;
}

http::Response health(const State& state) {
  if (state.shutting_down) return json_response(503, {{"status", "shutting down"}});
  if (state.engine_dead) return json_response(503, {{"status", "engine stopped"}});
  if (!state.served()) return json_response(503, {{"status", "loading"}});
  return json_response(200, {{"status", "ok"}});
}

http::Response metrics(const State& state) {
  engine::EngineStats stats;
  int64_t queued = 0;
  if (auto model = state.served()) {
    stats = model->engine->stats();
    queued = std::max<int64_t>(0, state.live_engine_requests() - stats.sched.n_running);
  }
  http::Response r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = state.metrics.render(stats, queued, state.options.served_model_name);
  return r;
}

// Parses a body that must be a JSON object.
std::optional<ApiError> parse_object(const State& state, const std::string& body, json* out) {
  if (!json_depth_within(body, state.limits.max_json_depth)) {
    return bad_request("the JSON body nests too deeply");
  }
  *out = json::parse(body, nullptr, false);
  if (out->is_discarded()) return bad_request("the request body is not valid JSON");
  if (!out->is_object()) return bad_request("the request body must be a JSON object");
  return std::nullopt;
}

std::optional<ApiError> check_model_field(const State& state, const json& body) {
  auto it = body.find("model");
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) return bad_request("'model' must be a string", "model");
  return check_model_name(it->get<std::string>(), state.options.served_model_name);
}

std::optional<ApiError> tokenize(const State& state, const ServedModel& model,
                                 const std::string& body, json* out) {
  json req;
  if (auto e = parse_object(state, body, &req)) return e;
  if (auto e = check_model_field(state, req)) return e;
  const bool has_prompt = req.contains("prompt") && !req["prompt"].is_null();
  const bool has_messages = req.contains("messages") && !req["messages"].is_null();
  if (has_prompt == has_messages) {
    return bad_request("give exactly one of 'prompt' or 'messages'");
  }
  bool add_special = has_prompt;  // chat templates write their own special tokens
  if (req.contains("add_special") && !req["add_special"].is_null()) {
    if (!req["add_special"].is_boolean()) {
      return bad_request("'add_special' must be a boolean", "add_special");
    }
    add_special = req["add_special"].get<bool>();
  }
  std::vector<int32_t> tokens;
  if (has_prompt) {
    if (!req["prompt"].is_string()) return bad_request("'prompt' must be a string", "prompt");
    tokens = model.tokenizer->encode(req["prompt"].get<std::string>(), add_special, true);
  } else {
    // The body as a chat request (messages with their content parts and tool fields, tools,
    // tool_choice): the tokens are the ones such a request gives the engine.
    ParsedRequest parsed;
    if (auto e = parse_request(body, Endpoint::kChat, state.limits, &parsed)) return e;
    if (auto e = chat_prompt_tokens(model, parsed, add_special,
                                    state.options.allow_control_tokens_in_content, &tokens)) {
      return e;
    }
  }
  *out = {{"tokens", tokens}, {"count", tokens.size()}, {"max_model_len", model.context}};
  return std::nullopt;
}

std::optional<ApiError> detokenize(const State& state, const ServedModel& model,
                                   const std::string& body, json* out) {
  json req;
  if (auto e = parse_object(state, body, &req)) return e;
  if (auto e = check_model_field(state, req)) return e;
  auto it = req.find("tokens");
  if (it == req.end() || !it->is_array()) {
    return bad_request("'tokens' must be a list of token ids", "tokens");
  }
  std::vector<int32_t> ids;
  const int64_t vocab = model.tokenizer->vocab_size();
  for (const json& t : *it) {
    if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= vocab) {
      return bad_request(
          "'tokens' must hold token ids in [0, " + std::to_string(vocab) + "), got " + to_text(t),
          "tokens");
    }
    ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  *out = {{"prompt", model.tokenizer->decode(ids, false)}};
  return std::nullopt;
}

enum class Route {
  kHealth,
  kMetrics,
  kVersion,
  kModels,
  kModel,
  kChat,
  kCompletion,
  kTokenize,
  kDetokenize,
  kNone
};

struct RouteInfo {
  Route route;
  const char* method;
  bool open;  // reachable without the API key unless --auth-all-endpoints
};

RouteInfo find_route(const std::string& path) {
  if (path == "/health") return {Route::kHealth, "GET", true};
  if (path == "/metrics") return {Route::kMetrics, "GET", true};
  if (path == "/version") return {Route::kVersion, "GET", true};
  if (path == "/v1/models") return {Route::kModels, "GET", false};
  if (path.rfind("/v1/models/", 0) == 0 && path.size() > std::string("/v1/models/").size()) {
    return {Route::kModel, "GET", false};
  }
  if (path == "/v1/chat/completions") return {Route::kChat, "POST", false};
  if (path == "/v1/completions") return {Route::kCompletion, "POST", false};
  if (path == "/tokenize") return {Route::kTokenize, "POST", false};
  if (path == "/detokenize") return {Route::kDetokenize, "POST", false};
  return {Route::kNone, "", false};
}

http::Reply dispatch(const std::shared_ptr<State>& state, const http::Request& request,
                     const std::shared_ptr<RequestLog>& log) {
  const RouteInfo info = find_route(request.path);
  if (info.route == Route::kNone) {
    return {error_response(
                ApiError{404, "no route for " + request.path, "not_found_error", "", "not_found"}),
            {}};
  }
  if (request.method != info.method) {
    http::Reply r{error_response(ApiError{405,
                                          "method " + request.method + " is not allowed on " +
                                              request.path + " (use " + info.method + ")",
                                          "invalid_request_error", "", "method_not_allowed"}),
                  {}};
    r.head.headers.emplace_back("Allow", info.method);
    return r;
  }
  if (!state->options.api_key.empty() && (!info.open || state->options.auth_all_endpoints) &&
      !authorized(*state, request)) {
    http::Reply r{error_response(ApiError{401,
                                          "missing or incorrect API key (send it as "
                                          "'Authorization: Bearer KEY')",
                                          "authentication_error", "", "invalid_api_key"}),
                  {}};
    r.head.headers.emplace_back("WWW-Authenticate", "Bearer");
    return r;
  }
  switch (info.route) {
    case Route::kHealth:
      return {health(*state), {}};
    case Route::kMetrics:
      return {metrics(*state), {}};
    case Route::kVersion:
      return {json_response(200, {{"version", state->options.version}}), {}};
    case Route::kModels: {
      auto model = state->served();
      return {json_response(200, {{"object", "list"},
                                  {"data", json::array({model_object(*state, model.get())})}}),
              {}};
    }
    case Route::kModel: {
      const std::string name = request.path.substr(std::string("/v1/models/").size());
      if (auto e = check_model_name(name, state->options.served_model_name)) {
        return {error_response(*e), {}};
      }
      auto model = state->served();
      return {json_response(200, model_object(*state, model.get())), {}};
    }
    case Route::kChat:
      return handle_generation(state, request, Endpoint::kChat, log);
    case Route::kCompletion:
      return handle_generation(state, request, Endpoint::kCompletion, log);
    case Route::kTokenize:
    case Route::kDetokenize: {
      auto model = state->served();
      if (!model) {
        return {error_response(
                    ApiError{503, "the model is still loading", "server_error", "", "loading"}),
                {}};
      }
      json out;
      auto e = info.route == Route::kTokenize ? tokenize(*state, *model, request.body, &out)
                                              : detokenize(*state, *model, request.body, &out);
      if (e) return {error_response(*e), {}};
      return {json_response(200, out), {}};
    }
    case Route::kNone:
      break;
  }
  return {error_response(
              ApiError{404, "no route for " + request.path, "not_found_error", "", "not_found"}),
          {}};
}

}  // namespace

State::HttpToken::HttpToken(std::shared_ptr<State> state) : state_(std::move(state)) {
  std::lock_guard<std::mutex> lock(state_->live_mu);
  ++state_->http_in_flight;
}

State::HttpToken::~HttpToken() {
  {
    std::lock_guard<std::mutex> lock(state_->live_mu);
    --state_->http_in_flight;
  }
  state_->idle_cv.notify_all();
}

void State::add_live(engine::RequestId id) {
  std::shared_ptr<const ServedModel> m = served();
  std::lock_guard<std::mutex> lock(live_mu);
  live[id] = m ? m->engine : nullptr;
}

void State::remove_live(engine::RequestId id) {
  std::lock_guard<std::mutex> lock(live_mu);
  live.erase(id);
}

int64_t State::live_engine_requests() const {
  std::lock_guard<std::mutex> lock(live_mu);
  return int64_t(live.size());
}

void State::abort_live() {
  std::map<engine::RequestId, std::shared_ptr<engine::Engine>> copy;
  {
    std::lock_guard<std::mutex> lock(live_mu);
    copy = live;
  }
  // Requests that finished meanwhile answer with an error; nothing to do about those.
  for (auto& [id, eng] : copy) {
    if (eng) (void)eng->abort(id);
  }
}

OpenAiServer::OpenAiServer(ServerOptions options) : state_(std::make_shared<State>()) {
  state_->options = std::move(options);
  state_->limits.max_n = state_->options.max_n;
  state_->limits.max_choices = state_->options.max_choices;
  state_->limits.max_stop = state_->options.max_stop;
  state_->limits.max_top_logprobs = state_->options.max_top_logprobs;
  state_->started_unix = std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
}

OpenAiServer::~OpenAiServer() {
  // Handlers still running keep the state alive; new requests are refused.
  state_->shutting_down = true;
}

http::Handler OpenAiServer::handler() {
  std::shared_ptr<State> state = state_;
  return [state](const http::Request& request) {
    static std::atomic<int64_t> counter{0};
    auto log = std::make_shared<RequestLog>();
    log->id = "req-" + std::to_string(++counter);
    log->method = request.method;
    log->path = request.path;
    log->remote = request.remote;
    http::Reply reply = dispatch(state, request, log);
    log->status = reply.head.status;
    state->metrics.record_http_status(reply.head.status);
    if (!reply.stream) log->emit();
    return reply;
  };
}

void OpenAiServer::set_model(ServedModel model) {
  state_->set_served(std::make_shared<const ServedModel>(std::move(model)));
}

void OpenAiServer::begin_shutdown() {
  state_->shutting_down = true;
}

bool OpenAiServer::wait_idle(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(state_->live_mu);
  return state_->idle_cv.wait_for(lock, timeout, [&] { return state_->http_in_flight == 0; });
}

void OpenAiServer::abort_all() {
  state_->abort_live();
}

int64_t OpenAiServer::requests_in_flight() const {
  std::lock_guard<std::mutex> lock(state_->live_mu);
  return state_->http_in_flight;
}

}  // namespace dspark::server
