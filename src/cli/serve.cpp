// dspark serve: the OpenAI-compatible HTTP server. It listens at once (/health answers 503 while
// the model loads), then serves until SIGINT/SIGTERM, when it stops accepting, lets requests in
// flight finish for up to --shutdown-timeout seconds, aborts the rest and exits 0.
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "args.h"
#include "commands.h"
#include "config_file.h"
#include "dspark/http.h"
#include "dspark/server.h"
#include "engine_options.h"

namespace dspark::cli {

namespace {

struct ServeOptions {
  server::ServerOptions api;
  http::ServerConfig http;
  int64_t shutdown_timeout_s = 30;
  std::string chat_template;
};

// The name clients use by default: the model file's stem, or the folder's name.
std::string default_served_name(const std::string& model_path) {
  std::filesystem::path p(model_path);
  while (!p.empty() && !p.has_filename()) p = p.parent_path();
  return p.has_extension() && p.extension() == ".gguf" ? p.stem().string() : p.filename().string();
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t comma = s.find(',', start);
    const std::string item = s.substr(start, comma == std::string::npos ? comma : comma - start);
    if (!item.empty()) out.push_back(item);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

Result<ServeOptions> read_options(const Args& args) {
  ServeOptions o;
  o.http.host = args.str("host");
  auto port = args.integer("port", 0, 65535);
  if (!port.ok()) return port.error();
  o.http.port = uint16_t(*port);
  auto body_mib = args.integer("max-body-mb", 1, 1024);
  if (!body_mib.ok()) return body_mib.error();
  o.http.max_body_bytes = size_t(*body_mib) << 20;
  o.http.cors_origins = split_commas(args.str("cors-origin"));
  o.api.api_key = args.str("api-key");  // DSPARK_API_KEY arrives as the option (config_file.h)
  o.api.auth_all_endpoints = args.has("auth-all-endpoints");
  o.api.allow_control_tokens_in_content = args.has("allow-control-tokens-in-content");
  o.api.served_model_name = args.has("served-model-name") ? args.str("served-model-name")
                                                          : default_served_name(args.str("model"));
  auto queued = args.integer("max-queued-requests", 0, 1 << 20);
  if (!queued.ok()) return queued.error();
  o.api.max_queued_requests = int32_t(*queued);
  auto max_n = args.integer("max-n", 1, 1024);
  if (!max_n.ok()) return max_n.error();
  o.api.max_n = int32_t(*max_n);
  o.api.max_choices = std::max(o.api.max_choices, o.api.max_n);
  auto timeout = args.integer("shutdown-timeout", 0, 86400);
  if (!timeout.ok()) return timeout.error();
  o.shutdown_timeout_s = *timeout;
  o.chat_template = args.str("chat-template");
  o.api.version = DSPARK_VERSION;
  const std::string level = args.str("log-level");
  const auto parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") {
    return Error{"--log-level '" + level + "': expected trace, debug, info, warn, error or off"};
  }
  spdlog::set_level(parsed);
  return o;
}

// Loads the model and builds the engine and the chat format.
Result<server::ServedModel> load_served(const Args& args, const ServeOptions& o,
                                        std::shared_ptr<engine::Engine>* engine) {
  auto seqs = args.integer("max-num-seqs", 1, 4096);
  auto ctx = args.integer("ctx", 0, 1 << 24);
  if (!seqs.ok()) return seqs.error();
  if (!ctx.ok()) return ctx.error();
  // Default KV pool: every running request can hold a context of --ctx (4096 when unset);
  // setup_engine caps it at a quarter of the machine's memory.
  auto setup = setup_engine(args, false, *seqs * (*ctx > 0 ? *ctx : 4096));
  if (!setup.ok()) return setup.error();
  bool fallback = false;
  auto format = server::load_chat_format(*setup->target.file, *setup->target.tokenizer,
                                         o.chat_template, &fallback);
  if (!format.ok()) return format.error();
  if (fallback) {
    spdlog::warn(
        "the model has no chat template: chat requests use a plain ChatML layout "
        "(--chat-template overrides)");
  }
  auto created = start_engine(setup->config, false);
  if (!created.ok()) return created.error();
  *engine = std::shared_ptr<engine::Engine>(std::move(created.value()));
  server::ServedModel served;
  served.engine = *engine;
  served.tokenizer = setup->target.tokenizer;
  served.chat = std::move(format.value());
  // The context and what the KV pool holds for one request: the limits submit() checks.
  served.context = (*engine)->max_request_tokens();
  // Structured outputs: the vocabulary as the grammar engine sees it (EOS = the engine's stop
  // ids, the model's logits width).
  auto vocab = GrammarVocab::from_tokenizer(*setup->target.tokenizer, {},
                                            setup->config.model->config().vocab_size);
  if (vocab.ok()) {
    served.grammar = std::make_shared<GrammarCompiler>(std::move(vocab).value());
  } else {
    served.grammar_error = vocab.error().message;
    spdlog::warn("structured outputs are unavailable: {}", served.grammar_error);
  }
  return served;
}

// Waits for SIGINT/SIGTERM (blocked in every thread) or for the transport to stop by itself.
void wait_for_signal(const std::atomic<bool>& transport_done) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  const timespec tick{0, 200 * 1000 * 1000};
  while (!transport_done) {
    const int sig = sigtimedwait(&set, nullptr, &tick);
    if (sig == SIGINT || sig == SIGTERM) {
      spdlog::info("received {}, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
      return;
    }
  }
}

int serve(const Args& args, const ServeOptions& o) {
  // Every thread inherits the mask, so only wait_for_signal sees the signals.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  server::OpenAiServer api(o.api);
  auto http_server = http::Server::create(o.http, api.handler());
  if (!http_server.ok()) {
    std::fprintf(stderr, "dspark serve: %s\n", http_server.error().message.c_str());
    return 1;
  }
  std::atomic<bool> transport_done{false};
  std::thread runner([&] {
    http_server.value()->run();
    transport_done = true;
  });
  std::printf("dspark serve: listening on http://%s:%u (model '%s' loading)\n", o.http.host.c_str(),
              unsigned(http_server.value()->port()), o.api.served_model_name.c_str());
  std::fflush(stdout);
  // After the listening line, which clients wait for on stdout.
  if (o.api.allow_control_tokens_in_content) {
    spdlog::warn(
        "--allow-control-tokens-in-content: chat message content may contain control tokens, so "
        "any client can forge system, assistant or tool turns");
  }

  const auto grace = std::chrono::seconds(o.shutdown_timeout_s);
  std::shared_ptr<engine::Engine> engine;
  auto served = load_served(args, o, &engine);
  if (!served.ok()) {
    std::fprintf(stderr, "dspark serve: %s\n", served.error().message.c_str());
    api.begin_shutdown();
    http_server.value()->shutdown(std::chrono::milliseconds(0));
    runner.join();
    return 1;
  }
  api.set_model(std::move(served.value()));
  std::printf("dspark serve: ready\n");
  std::fflush(stdout);
  spdlog::info("serving '{}' on http://{}:{}", o.api.served_model_name, o.http.host,
               http_server.value()->port());

  wait_for_signal(transport_done);
  api.begin_shutdown();
  http_server.value()->shutdown(grace);
  if (!api.wait_idle(grace)) {
    spdlog::warn("{} requests still running after {} s: aborting them", api.requests_in_flight(),
                 o.shutdown_timeout_s);
    api.abort_all();
    (void)api.wait_idle(std::chrono::seconds(10));
  }
  engine->stop();
  runner.join();
  spdlog::info("stopped");
  return 0;
}

// What --check-config checks beyond the server's own options: the engine options and that the
// model (and draft model or checkpoint) paths exist.
Status check_config(const Args& args) {
  auto flags = read_engine_flags(args);
  if (!flags.ok()) return flags.error();
  for (const char* name : {"model", "draft-model"}) {
    const std::string path = args.str(name);
    if (!path.empty() && !std::filesystem::exists(path)) {
      return Error{"--" + std::string(name) + " '" + path + "' does not exist"};
    }
  }
  return Status::Ok();
}

// Whether a value must be quoted to read back as the same YAML string.
bool needs_quotes(const std::string& v) {
  for (const char* word : {"true", "false", "yes", "no", "on", "off", "null", "~"}) {
    if (v == word) return true;
  }
  for (char c : v) {
    if (!std::isalnum(static_cast<unsigned char>(c)) &&
        std::string("._/-").find(c) == std::string::npos) {
      return true;
    }
  }
  return v.empty() || v[0] == '-';
}

// The options in effect as YAML (a config file itself), each with where its value came from;
// the API key is masked.
void print_options(const Args& args) {
  for (const std::string& name : args.names()) {
    if (!file_option(name)) continue;
    const std::string source = args.source(name);
    if (args.is_flag(name)) {
      std::printf("%s: %s  # %s\n", name.c_str(), args.has(name) ? "true" : "false",
                  source.empty() ? "default" : source.c_str());
      continue;
    }
    std::string value = args.str(name);
    if (name == "api-key" && !value.empty()) value = "(set, not shown)";
    if (value.empty()) {
      std::printf("# %s: (not set)\n", name.c_str());
      continue;
    }
    std::string quoted = value;
    if (needs_quotes(value)) {
      quoted = "'";
      for (char c : value) quoted += c == '\'' ? std::string("''") : std::string(1, c);
      quoted += "'";
    }
    std::printf("%s: %s  # %s\n", name.c_str(), quoted.c_str(),
                source.empty() ? "default" : source.c_str());
  }
}

}  // namespace

int run_serve(int argc, char** argv) {
  Args args;
  add_engine_options(args);
  args.option("host", "", "ADDR", "address to listen on", "127.0.0.1")
      .option("port", "", "PORT", "port to listen on; 0 = any free port", "8000")
      .option("api-key", "", "KEY",
              "require 'Authorization: Bearer KEY' (default: $DSPARK_API_KEY; none if unset)")
      .option("auth-all-endpoints", "", "",
              "also require the key for /health, /metrics and /version")
      .option("served-model-name", "", "NAME", "model name clients send (default: file stem)")
      .option("chat-template", "", "FILE|TEXT",
              "Jinja chat template overriding the model's (a file path or the template text)")
      .option("allow-control-tokens-in-content", "", "",
              "security choice, off by default: parse control tokens (<|im_end|>, ...) in chat "
              "message content too, so clients can forge turns; for trusted clients only")
      .option("max-queued-requests", "", "N",
              "requests waiting to be scheduled before new ones get 429", "256")
      .option("max-n", "", "N", "largest n (choices per prompt); n x prompts <= max(64, N)", "16")
      .option("max-body-mb", "", "MIB", "largest request body; larger ones get 413", "8")
      .option("shutdown-timeout", "", "S",
              "on SIGINT/SIGTERM, seconds to let requests in flight finish", "30")
      .option("cors-origin", "", "LIST",
              "comma-separated origins allowed by CORS ('*': any; default: no CORS)")
      .option("log-level", "", "LEVEL", "trace, debug, info, warn, error or off", "info")
      .option("config", "", "FILE",
              "YAML file of options (keys: the long option names; also $DSPARK_CONFIG); the "
              "command line and DSPARK_<OPTION> environment variables override it")
      .option("check-config", "", "",
              "print the options in effect and where each came from, then exit (no model load)")
      .option("help", "h", "", "show this help");
  const std::string summary =
      "Serve the OpenAI API (/v1/chat/completions, /v1/completions, /v1/models) plus /health,\n"
      "/metrics (Prometheus), /tokenize, /detokenize and /version. Request limits: n <= --max-n,\n"
      "at most 16 stop strings of 256 bytes, logprobs/top_logprobs <= 20, JSON nesting <= 64.";
  if (Status s = args.parse(argc, argv); !s.ok()) {
    std::fprintf(stderr, "dspark serve: %s\n", s.message().c_str());
    return 2;
  }
  if (args.has("help")) {
    std::printf("%s", args.usage("serve", summary).c_str());
    return 0;
  }
  Status sources = apply_environment("DSPARK_", args);
  if (sources.ok() && args.has("config")) sources = apply_config_file(args.str("config"), args);
  if (!sources.ok()) {
    std::fprintf(stderr, "dspark serve: %s\n", sources.message().c_str());
    return 2;
  }
  auto options = read_options(args);
  if (!options.ok()) {
    std::fprintf(stderr, "dspark serve: %s\n", options.error().message.c_str());
    return 2;
  }
  if (args.has("check-config")) {
    Status checked = check_config(args);
    print_options(args);
    if (!checked.ok()) {
      std::fprintf(stderr, "dspark serve: %s\n", checked.message().c_str());
      return 2;
    }
    return 0;
  }
  return serve(args, *options);
}

}  // namespace dspark::cli
