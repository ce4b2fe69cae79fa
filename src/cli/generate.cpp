// dspark generate: tokenize a prompt and run it (or N copies of it) through the engine, streaming
// the text and ending with per-request statistics.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <type_traits>

#include "args.h"
#include "commands.h"
#include "dspark/backend_cpu.h"
#include "dspark/engine.h"
#include "dspark/sample.h"
#include "engine_options.h"

namespace dspark::cli {

namespace {

struct GenerateOptions {
  std::string prompt;
  int64_t n_predict = 0, parallel = 1;
  bool parse_special = true, ignore_eos = false, quiet = false, compare_plain = false;
  SamplingParams sampling;
};

Result<GenerateOptions> read_options(const Args& args) {
  GenerateOptions o;
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
  double temp = 0, top_p = 1, min_p = 0;
  int64_t top_k = 0;
  DSPARK_RETURN_IF_ERROR(take(args.integer("n-predict", 1, 1 << 20), o.n_predict));
  DSPARK_RETURN_IF_ERROR(take(args.integer("parallel", 1, 256), o.parallel));
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
  o.compare_plain = args.has("compare-plain");
  return o;
}

// Reads the plain engine's completions, checks that greedy outputs match the speculative ones
// token for token, and prints both engines' speeds over their own step time.
Status compare_with_plain(const GenerateOptions& o, engine::Engine& plain,
                          const std::vector<std::shared_ptr<engine::Stream>>& plain_streams,
                          engine::Engine& spec,
                          const std::vector<std::vector<int32_t>>& spec_outputs) {
  const bool greedy = is_greedy(o.sampling);
  for (size_t i = 0; i < plain_streams.size(); ++i) {
    const engine::Completion c = plain_streams[i]->collect();
    if (c.final.reason == engine::FinishReason::kError) return Error{"plain: " + c.final.message};
    if (!greedy || c.tokens == spec_outputs[i]) continue;
    const auto diverge = std::mismatch(c.tokens.begin(), c.tokens.end(), spec_outputs[i].begin(),
                                       spec_outputs[i].end());
    return Error{"request " + std::to_string(i) +
                 ": the speculative output differs from plain decoding at token " +
                 std::to_string(diverge.first - c.tokens.begin())};
  }
  const engine::EngineStats p = plain.stats(), s = spec.stats();
  const double plain_tps = p.step_seconds > 0 ? double(p.n_generated_tokens) / p.step_seconds : 0;
  const double spec_tps = s.step_seconds > 0 ? double(s.n_generated_tokens) / s.step_seconds : 0;
  std::fprintf(stderr,
               "compare: plain %.1f tok/s in %.2f s of steps, speculative %.1f tok/s in %.2f s "
               "(steps taken in turns), speed-up %.3f, %s\n",
               plain_tps, p.step_seconds, spec_tps, s.step_seconds,
               plain_tps > 0 ? spec_tps / plain_tps : 0.0,
               greedy ? "outputs identical" : "sampled outputs not compared");
  return Status::Ok();
}

Status generate(const GenerateOptions& o, const Args& args) {
  // Prompt tokens never outnumber its bytes (plus BOS/EOS), so this bounds the KV the run needs.
  const int64_t kv_hint = o.parallel * (int64_t(o.prompt.size()) + 2 + o.n_predict);
  auto setup = setup_engine(args, o.quiet, kv_hint);
  if (!setup.ok()) return setup.error();
  const Tokenizer& tokenizer = *setup->target.tokenizer;

  std::vector<int32_t> prompt = tokenizer.encode(o.prompt, true, o.parse_special);
  if (prompt.empty()) return Error{"the prompt is empty after tokenization"};
  const int64_t context = setup->context;
  if (int64_t(prompt.size()) + 1 > context) {
    return Error{"the prompt has " + std::to_string(prompt.size()) +
                 " tokens: with one generated token that exceeds the context of " +
                 std::to_string(context)};
  }
  const int64_t n_predict = std::min(o.n_predict, context - int64_t(prompt.size()));

  engine::EngineConfig config = setup->config;
  config.max_num_seqs = std::max<int32_t>(config.max_num_seqs, int32_t(o.parallel));
  // --compare-plain: a plain engine on the same model runs the same requests, the two taking
  // turns step by step, so both speeds are measured on the same machine state.
  std::unique_ptr<engine::Engine> plain;
  if (o.compare_plain) {
    if (config.spec.method == engine::SpecMethod::kNone) {
      return Error{"--compare-plain compares speculation with plain decoding: give --spec-method"};
    }
    // Player 2 is this thread while it submits: neither engine steps before both hold every
    // request, or the first to start would split the prompts over steps differently (and
    // reuse the cached prefix of the ones it ran first, doing less work than the other).
    config.turns = std::make_shared<engine::StepTurns>(3);
    engine::EngineConfig plain_config = config;
    plain_config.spec = engine::SpecConfig{};
    plain_config.turn_player = 1;
    auto made = engine::Engine::create(plain_config);
    if (!made.ok()) return made.error();
    plain = std::move(made).value();
  }
  auto created = start_engine(config, o.quiet);
  if (!created.ok()) return created.error();
  engine::Engine& eng = *created.value();

  // N copies of the prompt; each gets its own seed so sampled runs differ.
  auto submit_all = [&](engine::Engine& e) -> Result<std::vector<std::shared_ptr<engine::Stream>>> {
    std::vector<std::shared_ptr<engine::Stream>> streams;
    for (int64_t i = 0; i < o.parallel; ++i) {
      engine::Request request;
      request.prompt = prompt;
      request.params = o.sampling;
      request.params.seed = o.sampling.seed + uint64_t(i);
      request.params.max_tokens = int32_t(n_predict);
      request.params.ignore_eos = o.ignore_eos;
      auto stream = e.submit(std::move(request));
      if (!stream.ok()) return stream.error();
      streams.push_back(stream.value());
    }
    return streams;
  };
  const auto t0 = std::chrono::steady_clock::now();
  constexpr int kSubmitter = 2;
  if (plain) config.turns->begin(kSubmitter);
  auto submitted = submit_all(eng);
  std::vector<std::shared_ptr<engine::Stream>> plain_streams;
  if (plain && submitted.ok()) {
    auto p = submit_all(*plain);
    if (p.ok()) {
      plain_streams = std::move(p).value();
    } else {
      submitted = p.error();
    }
  }
  if (plain) config.turns->end(kSubmitter);
  if (!submitted.ok()) return submitted.error();
  const std::vector<std::shared_ptr<engine::Stream>>& streams = *submitted;

  // One request streams live; several are printed whole, in order, as each completes.
  std::vector<engine::FinalRecord> finals;
  std::vector<std::vector<int32_t>> outputs(streams.size());  // [n_requests][n_completion]
  for (size_t i = 0; i < streams.size(); ++i) {
    if (streams.size() > 1) std::printf("--- [%zu]\n", i);
    for (;;) {
      engine::Event event = streams[i]->next();
      outputs[i].insert(outputs[i].end(), event.tokens.begin(), event.tokens.end());
      std::fwrite(event.text.data(), 1, event.text.size(), stdout);
      std::fflush(stdout);
      if (event.final) {
        finals.push_back(*event.final);
        break;
      }
    }
    std::fputc('\n', stdout);
  }
  const double wall_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // With --compare-plain the two engines take turns, so wall-clock rates would count the other
  // engine's steps too: only the paired figures of the compare line are speeds then.
  const bool paired = plain != nullptr;
  for (size_t i = 0; i < finals.size(); ++i) {
    const engine::FinalRecord& f = finals[i];
    if (f.reason == engine::FinishReason::kError) return Error{f.message};
    const double prefill_s = f.timings.ttft_s - f.timings.queue_s;
    char rates[96] = "";
    if (!paired) {
      std::snprintf(
          rates, sizeof rates, ", prefill %.1f tok/s, decode %.1f tok/s",
          prefill_s > 0 ? f.n_prompt_tokens / prefill_s : 0.0,
          f.timings.decode_s > 0 ? (f.n_completion_tokens - 1) / f.timings.decode_s : 0.0);
    }
    std::fprintf(stderr, "stats%s: prompt %d tokens, generated %d tokens (finish: %s)%s\n",
                 finals.size() > 1 ? (" [" + std::to_string(i) + "]").c_str() : "",
                 f.n_prompt_tokens, f.n_completion_tokens, engine::finish_reason_name(f.reason),
                 rates);
  }
  if (config.spec.method != engine::SpecMethod::kNone) {
    const engine::EngineStats st = eng.stats();
    const engine::SpecStats& sp = st.spec;
    std::string per_depth;
    for (size_t d = 0; d < sp.verified_at.size(); ++d) {
      if (sp.verified_at[d] == 0) break;
      char buf[32];
      std::snprintf(buf, sizeof buf, " %.2f",
                    double(sp.accepted_at[d]) / double(sp.verified_at[d]));
      per_depth += buf;
    }
    std::fprintf(stderr,
                 "spec (%s): %ld rounds, drafted %ld, verified %ld, accepted %ld, mean accepted "
                 "length %.2f, mean depth %.2f, calibration ECE %.3f, acceptance by depth:%s\n",
                 engine::spec_method_name(st.spec_method), long(sp.n_rounds), long(sp.n_drafted),
                 long(sp.n_verified), long(sp.n_accepted), sp.mean_accepted_length(),
                 st.spec_mean_depth, st.spec_calibration_ece, per_depth.c_str());
  }
  int64_t total_generated = 0;
  for (const auto& f : finals) total_generated += f.n_completion_tokens;
  if (paired) {
    std::fprintf(stderr, "total: %zu requests, %ld tokens, isa %s (speeds: the compare line)\n",
                 finals.size(), long(total_generated), cpu::isa_name());
    return compare_with_plain(o, *plain, plain_streams, eng, outputs);
  }
  std::fprintf(stderr, "total: %zu requests, %ld tokens in %.2f s = %.1f tok/s, isa %s\n",
               finals.size(), long(total_generated), wall_s,
               wall_s > 0 ? double(total_generated) / wall_s : 0.0, cpu::isa_name());
  return Status::Ok();
}

}  // namespace

int run_generate(int argc, char** argv) {
  Args args;
  add_engine_options(args);
  args.option("prompt", "p", "TEXT", "prompt text")
      .option("file", "f", "PATH", "read the prompt from a file")
      .option("n-predict", "n", "N", "tokens to generate at most", "128")
      .option("temp", "", "T", "sampling temperature; 0 = greedy", "0.8")
      .option("top-k", "", "K", "keep the K most likely tokens; 0 = off", "40")
      .option("top-p", "", "P", "nucleus sampling threshold; 1 = off", "0.95")
      .option("min-p", "", "P", "drop tokens below P times the top probability", "0.05")
      .option("seed", "s", "S", "random seed (default: random)")
      .option("parallel", "P", "N", "run N copies of the prompt at once (seeds S, S+1, ...)", "1")
      .option("no-special", "", "", "treat special-token text in the prompt as plain text")
      .option("ignore-eos", "", "", "keep generating past end-of-sequence tokens")
      .option("quiet", "q", "", "no progress bar or model summary")
      .option("compare-plain", "", "",
              "also run the requests without speculation, the two engines taking turns step by "
              "step, and print both speeds (greedy outputs must match)")
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
  if (Status s = generate(*options, args); !s.ok()) {
    std::fprintf(stderr, "dspark generate: %s\n", s.message().c_str());
    return 1;
  }
  return 0;
}

}  // namespace dspark::cli
