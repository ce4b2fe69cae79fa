// dspark generate: tokenize a prompt, prefill, then sample token by token, streaming the text.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <type_traits>

#include "args.h"
#include "commands.h"
#include "dspark/sample.h"
#include "model_loading.h"
#include "sequence_runner.h"

namespace dspark::cli {

namespace {

struct GenerateOptions {
  std::string model_path, prompt;
  int64_t n_predict = 0, threads = 0, context = 0;
  bool parse_special = true, ignore_eos = false, quiet = false;
  SamplingParams sampling;
};

Result<GenerateOptions> read_options(const Args& args) {
  GenerateOptions o;
  o.model_path = args.str("model");
  if (args.has("prompt") == args.has("file")) {
    return Error{"give exactly one of --prompt TEXT or --file PATH"};
  }
  if (args.has("file")) {
    std::ifstream in(args.str("file"), std::ios::binary);
    if (!in) return Error{"cannot read prompt file '" + args.str("file") + "'"};
    std::ostringstream text;
    text << in.rdbuf();
    o.prompt = text.str();
  } else {
    o.prompt = args.str("prompt");
  }
  auto take = [](auto result, auto& out) -> Status {
    if (!result.ok()) return result.error();
    out = std::remove_reference_t<decltype(out)>(*result);
    return Status::Ok();
  };
  double temp = 0, top_p = 1, min_p = 0;
  int64_t top_k = 0;
  DSPARK_RETURN_IF_ERROR(take(args.integer("n-predict", 0, 1 << 20), o.n_predict));
  DSPARK_RETURN_IF_ERROR(take(args.integer("threads", 0, 1024), o.threads));
  DSPARK_RETURN_IF_ERROR(take(args.integer("ctx", 0, 1 << 24), o.context));
  DSPARK_RETURN_IF_ERROR(take(args.number("temp", 0, 100), temp));
  DSPARK_RETURN_IF_ERROR(take(args.integer("top-k", 0, 1 << 30), top_k));
  DSPARK_RETURN_IF_ERROR(take(args.number("top-p", 0, 1), top_p));
  DSPARK_RETURN_IF_ERROR(take(args.number("min-p", 0, 1), min_p));
  o.sampling.temperature = float(temp);
  o.sampling.top_k = int32_t(top_k);
  o.sampling.top_p = float(top_p);
  o.sampling.min_p = float(min_p);
  if (args.has("seed")) {
    auto seed = args.integer("seed", 0, INT64_MAX);
    if (!seed.ok()) return seed.error();
    o.sampling.seed = uint64_t(*seed);
  } else {
    o.sampling.seed = std::random_device{}();
  }
  o.parse_special = !args.has("no-special");
  o.ignore_eos = args.has("ignore-eos");
  o.quiet = args.has("quiet");
  return o;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

Status generate(const GenerateOptions& o) {
  auto loaded = load_model(o.model_path, o.quiet);
  if (!loaded.ok()) return loaded.error();
  const Model& model = *loaded->model;
  const Tokenizer& tokenizer = *loaded->tokenizer;
  const int64_t train_ctx = model.config().context_length;

  std::vector<int32_t> prompt = tokenizer.encode(o.prompt, true, o.parse_special);
  if (prompt.empty()) return Error{"the prompt is empty after tokenization"};
  const int64_t context = o.context > 0 ? o.context : train_ctx;
  if (int64_t(prompt.size()) + 1 > context) {
    return Error{"the prompt has " + std::to_string(prompt.size()) +
                 " tokens, more than the context of " + std::to_string(context) + " allows"};
  }
  const int64_t n_predict = std::min(o.n_predict, context - int64_t(prompt.size()));

  cpu::ThreadPool pool(int(o.threads));
  SequenceRunner runner(model, pool, int64_t(prompt.size()) + n_predict);
  Sampler sampler(o.sampling);
  StreamingDetokenizer detok(tokenizer);
  const auto& stop_ids = tokenizer.stop_ids();
  const int64_t vocab = model.config().vocab_size;

  std::vector<float> logits;
  auto t_prefill = std::chrono::steady_clock::now();
  DSPARK_RETURN_IF_ERROR(runner.append(prompt, 1, logits));
  const double prefill_s = seconds_since(t_prefill);

  auto t_decode = std::chrono::steady_clock::now();
  int64_t generated = 0;
  const char* finish = "length";
  while (generated < n_predict) {
    const int32_t token = sampler.sample(logits.data(), vocab);
    ++generated;
    const bool stop =
        !o.ignore_eos && std::find(stop_ids.begin(), stop_ids.end(), token) != stop_ids.end();
    if (stop) {
      finish = "stop";
      break;
    }
    const std::string text = detok.push(token);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    if (generated == n_predict) break;
    DSPARK_RETURN_IF_ERROR(runner.append({token}, 1, logits));
  }
  const std::string rest = detok.flush();
  std::fwrite(rest.data(), 1, rest.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
  const double decode_s = seconds_since(t_decode);
  // The first sampled token comes from the prefill's logits, so decode forwards = generated - 1.
  const int64_t decode_forwards = std::max<int64_t>(generated - 1, 0);
  std::fprintf(stderr,
               "stats: prompt %zu tokens, generated %ld tokens (finish: %s), prefill %.1f tok/s, "
               "decode %.1f tok/s, threads %d, isa %s\n",
               prompt.size(), long(generated), finish,
               prefill_s > 0 ? double(prompt.size()) / prefill_s : 0.0,
               decode_s > 0 ? double(decode_forwards) / decode_s : 0.0, pool.size(),
               cpu::isa_name());
  return Status::Ok();
}

}  // namespace

int run_generate(int argc, char** argv) {
  Args args;
  args.option("model", "m", "PATH", "GGUF file or Hugging Face folder", default_model_path())
      .option("prompt", "p", "TEXT", "prompt text")
      .option("file", "f", "PATH", "read the prompt from a file")
      .option("n-predict", "n", "N", "tokens to generate at most", "128")
      .option("temp", "", "T", "sampling temperature; 0 = greedy", "0.8")
      .option("top-k", "", "K", "keep the K most likely tokens; 0 = off", "40")
      .option("top-p", "", "P", "nucleus sampling threshold; 1 = off", "0.95")
      .option("min-p", "", "P", "drop tokens below P times the top probability", "0.05")
      .option("seed", "s", "S", "random seed (default: random)")
      .option("threads", "t", "K", "CPU threads; 0 = all cores", "0")
      .option("ctx", "c", "N", "context length; 0 = the model's trained context", "0")
      .option("no-special", "", "", "treat special-token text in the prompt as plain text")
      .option("ignore-eos", "", "", "keep generating past end-of-sequence tokens")
      .option("quiet", "q", "", "no progress bar or model summary")
      .option("help", "h", "", "show this help");
  const std::string summary = "Generate text from a prompt, streaming it to stdout.";
  if (Status s = args.parse(argc, argv); !s.ok()) {
    std::fprintf(stderr, "dspark generate: %s\n", s.message().c_str());
    return 2;
  }
  if (args.has("help")) {
    std::printf("%s", args.usage("generate", summary).c_str());
    return 0;
  }
  auto options = read_options(args);
  if (!options.ok()) {
    std::fprintf(stderr, "dspark generate: %s\n", options.error().message.c_str());
    return 2;
  }
  if (Status s = generate(*options); !s.ok()) {
    std::fprintf(stderr, "dspark generate: %s\n", s.message().c_str());
    return 1;
  }
  return 0;
}

}  // namespace dspark::cli
