// The OpenAI-compatible API over an Engine: /v1/chat/completions, /v1/completions, /v1/models,
// /tokenize, /detokenize, /health, /metrics, /version. JSON lives only behind this header; the
// transport (http.h) hands requests to OpenAiServer::handler().
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "dspark/chat_template.h"
#include "dspark/engine.h"
#include "dspark/grammar.h"
#include "dspark/http.h"
#include "dspark/loader.h"
#include "dspark/status.h"
#include "dspark/tokenizer.h"

namespace dspark::server {

struct ServerOptions {
  std::string served_model_name = "dspark";  // the `model` clients must name
  std::string api_key;                       // empty: no authentication
  bool auth_all_endpoints = false;           // also require the key for /health, /metrics, /version
  int32_t max_queued_requests = 256;         // engine requests waiting to be scheduled; beyond: 429
  int32_t max_n = 16;                        // n per prompt
  int32_t max_choices = 64;                  // n times prompts per HTTP request
  int32_t max_stop = 16;                     // stop strings per request
  int32_t max_top_logprobs = 20;             // chat top_logprobs / completions logprobs
  // Parse control tokens (<|im_end|>, ...) in chat message content too, as the text of the whole
  // rendered prompt. Off by default: a client could then close its own turn and forge system,
  // assistant or tool turns. Only for trusted clients that send control text on purpose.
  bool allow_control_tokens_in_content = false;
  std::string version = "0";  // reported by /version
};

// How a model writes tool calls in its output.
enum class ToolCallFormat {
  kNone,    // unknown: requests with tools are refused
  kHermes,  // <tool_call>{"name": ..., "arguments": {...}}</tool_call> (Qwen2.5, Qwen3, Hermes)
};

// How chat messages become a prompt, and how tool calls come back out.
struct ChatFormat {
  std::optional<chat::ChatTemplate> chat_template;  // nullopt: the plain ChatML fallback
  std::string bos_token, eos_token;                 // the template's variables
  bool function_role = false;  // the template handles role "function" (OpenAI's legacy role)
  bool renders_tools = false;  // the template reads the `tools` variable
  ToolCallFormat tool_calls = ToolCallFormat::kNone;  // from the template's own instructions
};

// The model's template, or `override_arg` (a file path, else the template text itself) when
// non-empty. A template that does not parse is an error naming its source; no template at all
// gives the ChatML fallback (`*used_fallback` set so the caller can warn).
Result<ChatFormat> load_chat_format(const ModelFile& file, const Tokenizer& tokenizer,
                                    const std::string& override_arg, bool* used_fallback);

// Renders messages with the format (the template's own errors, such as raise_exception
// messages, come back as errors).
Result<std::string> render_chat(const ChatFormat& format,
                                const std::vector<chat::Message>& messages);
// The same with the provenance of the prompt's bytes (the ChatML fallback marks message content).
Result<chat::RenderedPrompt> render_chat_prompt(const ChatFormat& format,
                                                const std::vector<chat::Message>& messages);
// The prompt's tokens as the server gives them to the engine: the template's control tokens are
// parsed and message content is tokenized as plain text, unless allow_control_tokens (then the
// whole text is parsed, as vLLM and llama.cpp do).
std::vector<int32_t> tokenize_chat_prompt(const Tokenizer& tokenizer,
                                          const chat::RenderedPrompt& prompt, bool add_special,
                                          bool allow_control_tokens);

// What the API serves once the model is loaded.
struct ServedModel {
  std::shared_ptr<engine::Engine> engine;
  std::shared_ptr<const Tokenizer> tokenizer;
  ChatFormat chat;
  int64_t context = 0;  // tokens one request may hold, prompt and output together
  // Compiles structured-output grammars for the model's vocabulary (cached); null: structured
  // outputs are unavailable and such requests get a 400 saying grammar_error.
  std::shared_ptr<GrammarCompiler> grammar;
  std::string grammar_error;
};

class OpenAiServer {
 public:
  explicit OpenAiServer(ServerOptions options);
  ~OpenAiServer();
  OpenAiServer(const OpenAiServer&) = delete;
  OpenAiServer& operator=(const OpenAiServer&) = delete;

  // The routes. The handler shares the server's state, so it stays valid after this object is
  // destroyed (answering 503).
  http::Handler handler();
  // Serving starts: /health turns 200 and generation requests are accepted.
  void set_model(ServedModel model);
  // New generation requests get 503 and /health 503; requests in flight continue.
  void begin_shutdown();
  // Waits until no generation request is in flight; false on timeout.
  bool wait_idle(std::chrono::milliseconds timeout);
  // Aborts every engine request still in flight (shutdown deadline passed).
  void abort_all();
  int64_t requests_in_flight() const;  // HTTP generation requests being answered

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace dspark::server
