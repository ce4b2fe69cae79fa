// dspark bench: batch-1 decode speed against the memory-bandwidth bound, and the cost of one
// forward over n tokens relative to one token (what makes verifying drafts cheap). All numbers
// are medians over repeats, measured in the same run as the machine's read bandwidth. With
// --profile, also the time per op kind inside forwards over 1, 8 and 16 tokens.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "args.h"
#include "commands.h"
#include "dspark/backend_cpu.h"
#include "model_loading.h"
#include "sequence_runner.h"

namespace dspark::cli {

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct BenchOptions {
  std::string model_path;
  int64_t threads = 0, repeats = 5, decode_tokens = 64, context = 128;
  bool profile = false;
};

// The tokens of a benchmark forward over n tokens: ordinary ids, a fixed pattern.
std::vector<int32_t> forward_tokens(int n, int64_t vocab) {
  std::vector<int32_t> tokens(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) tokens[size_t(i)] = int32_t((i * 31 + 7) % vocab);
  return tokens;
}

// Time per op kind in forwards over n tokens for each n of `widths` (repeats forwards each,
// after the context), printed as one table: ms per forward, one column per width.
Status print_profile(SequenceRunner& runner, const std::vector<int>& widths, int64_t repeats,
                     int64_t context, int64_t vocab) {
  struct Row {
    std::string name;
    std::vector<double> ms;
  };
  std::vector<Row> rows;
  std::vector<double> total_ms;
  std::vector<float> logits;
  for (size_t w = 0; w < widths.size(); ++w) {
    const std::vector<int32_t> tokens = forward_tokens(widths[w], vocab);
    runner.truncate(context);
    DSPARK_RETURN_IF_ERROR(runner.append(tokens, widths[w], logits));  // warm-up, not timed
    cpu::profile::take();
    double total = 0.0;
    for (int64_t r = 0; r < repeats; ++r) {
      runner.truncate(context);
      cpu::profile::set_enabled(true);
      const double t0 = now_s();
      const Status s = runner.append(tokens, widths[w], logits);
      total += now_s() - t0;
      cpu::profile::set_enabled(false);
      DSPARK_RETURN_IF_ERROR(s);
    }
    total_ms.push_back(total * 1e3 / double(repeats));
    for (const cpu::profile::Entry& e : cpu::profile::take()) {
      auto it =
          std::find_if(rows.begin(), rows.end(), [&](const Row& r) { return r.name == e.name; });
      if (it == rows.end()) it = rows.insert(rows.end(), Row{e.name, {}});
      it->ms.resize(widths.size(), 0.0);
      it->ms[w] = e.seconds * 1e3 / double(repeats);
    }
  }
  std::printf(
      "\nper-op time, ms per forward (mean of %ld; the ops' wall time on the calling "
      "thread;\n'pool wait' is part of the ops' times, the rest are disjoint)\n",
      long(repeats));
  std::printf("%-34s", "op");
  for (int n : widths) std::printf(" %9s", ("n=" + std::to_string(n)).c_str());
  std::printf("\n");
  for (Row& r : rows) {
    r.ms.resize(widths.size(), 0.0);
    std::printf("%-34s", r.name.c_str());
    for (double v : r.ms) std::printf(" %9.3f", v);
    std::printf("\n");
  }
  std::printf("%-34s", "forward (profiled)");
  for (double v : total_ms) std::printf(" %9.3f", v);
  std::printf("\n");
  return Status::Ok();
}

Status bench(const BenchOptions& o) {
  auto loaded = load_model(o.model_path, false);
  if (!loaded.ok()) return loaded.error();
  const Model& model = *loaded->model;
  const int64_t vocab = model.config().vocab_size;
  const std::unique_ptr<Backend> backend = make_cpu_backend(int(o.threads));

  double bandwidth = 0.0;
  {
    // Its own pool, only for the measurement (the forwards run on the backend's threads).
    cpu::ThreadPool pool(backend->n_threads());
    std::printf("measuring read bandwidth (%d threads)...\n", pool.size());
    std::vector<double> bws;
    for (int r = 0; r < 3; ++r) bws.push_back(cpu::measure_read_bandwidth(pool));
    bandwidth = median(bws);
  }

  const std::vector<int> widths = {1, 2, 4, 8, 16};
  SequenceRunner runner(model, *backend, o.context + o.decode_tokens + widths.back() + 1);
  // A context of ordinary token ids (a fixed pattern: the values do not change the cost).
  std::vector<int32_t> context(size_t(o.context));
  for (size_t i = 0; i < context.size(); ++i) context[i] = int32_t((i * 7919 + 13) % vocab);
  std::vector<float> logits;
  double t0 = now_s();
  DSPARK_RETURN_IF_ERROR(runner.append(context, 1, logits));
  const double prefill_tok_s = double(o.context) / (now_s() - t0);

  std::vector<double> decode_rates;
  for (int64_t r = 0; r < o.repeats; ++r) {
    runner.truncate(o.context);
    int32_t token = int32_t(cpu::argmax(logits.data(), vocab));
    std::vector<float> step_logits;
    t0 = now_s();
    for (int64_t i = 0; i < o.decode_tokens; ++i) {
      DSPARK_RETURN_IF_ERROR(runner.append({token}, 1, step_logits));
      token = int32_t(cpu::argmax(step_logits.data(), vocab));
    }
    decode_rates.push_back(double(o.decode_tokens) / (now_s() - t0));
  }
  const double decode_tok_s = median(decode_rates);

  // Forward over n tokens after the context, all n with logits (as a draft verification).
  std::vector<double> forward_ms;
  for (int n : widths) {
    std::vector<double> times;
    const std::vector<int32_t> tokens = forward_tokens(n, vocab);
    for (int64_t r = 0; r < o.repeats + 1; ++r) {
      runner.truncate(o.context);
      t0 = now_s();
      DSPARK_RETURN_IF_ERROR(runner.append(tokens, n, logits));
      if (r > 0) times.push_back((now_s() - t0) * 1e3);  // the first run warms caches
    }
    forward_ms.push_back(median(times));
  }

  const double weight_bytes = double(model.weight_bytes());
  const double bound_tok_s = bandwidth / weight_bytes;
  std::printf("\nmodel             %s\n", o.model_path.c_str());
  std::printf("threads / isa     %d / %s\n", backend->n_threads(), cpu::isa_name());
  std::printf("read bandwidth    %.1f GB/s (median of 3)\n", bandwidth / 1e9);
  std::printf("weights per token %.1f MiB\n", weight_bytes / (1 << 20));
  std::printf("prefill           %.1f tok/s (%ld tokens)\n", prefill_tok_s, long(o.context));
  std::printf("decode (batch 1)  %.1f tok/s, median of %ld x %ld tokens after %ld of context\n",
              decode_tok_s, long(o.repeats), long(o.decode_tokens), long(o.context));
  std::printf("bandwidth bound   %.1f tok/s -> decode at %.0f%% of the bound\n", bound_tok_s,
              100.0 * decode_tok_s / bound_tok_s);
  std::printf("\n%8s %12s %12s\n", "tokens", "forward ms", "vs 1 token");
  for (size_t i = 0; i < widths.size(); ++i) {
    std::printf("%8d %12.2f %12.2f\n", widths[i], forward_ms[i], forward_ms[i] / forward_ms[0]);
  }
  if (o.profile) return print_profile(runner, {1, 8, 16}, o.repeats, o.context, vocab);
  return Status::Ok();
}

}  // namespace

int run_bench(int argc, char** argv) {
  Args args;
  args.option("model", "m", "PATH", "GGUF file or Hugging Face folder", default_model_path())
      .option("threads", "t", "K", "CPU threads; 0 = all cores", "0")
      .option("repeats", "r", "R", "repeats per measurement (medians are reported)", "5")
      .option("decode-tokens", "n", "N", "tokens per decode run", "64")
      .option("context", "c", "N", "tokens of context before decoding", "128")
      .option("profile", "p", "", "also print the time per op kind for 1, 8 and 16 tokens")
      .option("help", "h", "", "show this help");
  const std::string summary =
      "Measure decode speed against the memory-bandwidth bound and the cost of batched forwards.";
  if (Status s = args.parse(argc, argv); !s.ok()) {
    std::fprintf(stderr, "dspark bench: %s\n", s.message().c_str());
    return 2;
  }
  if (args.has("help")) {
    std::printf("%s", args.usage("bench", summary).c_str());
    return 0;
  }
  BenchOptions o;
  o.model_path = args.str("model");
  auto threads = args.integer("threads", 0, 1024);
  auto repeats = args.integer("repeats", 1, 1000);
  auto decode = args.integer("decode-tokens", 1, 1 << 16);
  auto context = args.integer("context", 1, 1 << 20);
  for (const auto* r : {&threads, &repeats, &decode, &context}) {
    if (!r->ok()) {
      std::fprintf(stderr, "dspark bench: %s\n", r->error().message.c_str());
      return 2;
    }
  }
  o.threads = *threads;
  o.repeats = *repeats;
  o.decode_tokens = *decode;
  o.context = *context;
  o.profile = args.has("profile");
  if (Status s = bench(o); !s.ok()) {
    std::fprintf(stderr, "dspark bench: %s\n", s.message().c_str());
    return 1;
  }
  return 0;
}

}  // namespace dspark::cli
