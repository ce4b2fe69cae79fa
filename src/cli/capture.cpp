// dspark capture: the target's features and top-K next-token distributions over prompt + answer
// pairs, for DSpark drafter training (see capture.h and docs/dspark-training.md).
#include "capture.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>

#include "args.h"
#include "commands.h"

namespace dspark::cli {

namespace {

using capture::CaptureMeta;
using capture::ShardWriter;

static_assert(std::endian::native == std::endian::little, "shards are little-endian raw arrays");

constexpr int64_t kMinAnswerTokens = 8;  // samples whose answer keeps fewer are skipped
constexpr int kBlockSize = 16;           // KV block size of the one sequence in flight

struct CaptureOptions {
  std::string model_path, input, output, layer_ids;
  int64_t top_k = 16, chunk = 512, shard_tokens = 262144, threads = 0, limit = -1, max_len = 2048;
};

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// DeepSpec's default: 5 ids evenly spread from 1 to n_layers - 3, rounded half to even as
// Python's round() does (36 layers: [1, 9, 17, 25, 33]). Models too shallow for that get up to
// 5 ids spread over the whole allowed range [-1, n_layers - 2].
std::vector<int32_t> default_layer_ids(int n_layers) {
  double first = 1, last = n_layers - 3;
  if (last - first < 4) first = -1, last = n_layers - 2;
  const int count = int(std::min<double>(5, last - first + 1));
  std::vector<int32_t> ids;
  for (int i = 0; i < count; ++i) {
    const double x = count == 1 ? first : first + i * (last - first) / (count - 1);
    ids.push_back(int32_t(std::nearbyint(x)));  // default rounding mode: half to even
  }
  return ids;
}

// "1,7,13" -> ids, each in [-1, n_layers - 2] and strictly increasing.
Result<std::vector<int32_t>> parse_layer_ids(const std::string& text, int n_layers) {
  if (text.empty()) return default_layer_ids(n_layers);
  std::vector<int32_t> ids;
  std::stringstream in(text);
  std::string item;
  const std::string bad = "--target-layer-ids must be increasing integers in [-1, " +
                          std::to_string(n_layers - 2) + "] (-1: the embedding output; the last " +
                          "layer is not allowed), got '" + text + "'";
  while (std::getline(in, item, ',')) {
    char* end = nullptr;
    const long v = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v < -1 || v > n_layers - 2) return Error{bad};
    if (!ids.empty() && v <= ids.back()) return Error{bad};
    ids.push_back(int32_t(v));
  }
  if (ids.empty() || text.back() == ',') return Error{bad};
  return ids;
}

// Per-token outputs of one forward, converted for the shard files.
struct Rows {
  std::vector<uint16_t> features;    // [n, m, d] fp16
  std::vector<int32_t> topk_ids;     // [n, K]
  std::vector<uint16_t> topk_probs;  // [n, K] fp16
  int64_t overflows = 0;             // features beyond the fp16 range (stored as +-inf), all rows
};

// Top-K of one logit row, best first (ties: smaller id first), with their probabilities under
// the softmax over the whole row, computed in double with the row max subtracted.
void top_k_row(const float* logits /*[V]*/, int64_t V, int64_t K,
               std::vector<std::pair<float, int32_t>>& heap, int32_t* ids /*[K]*/,
               uint16_t* probs /*[K]*/) {
  // "a before b": higher logit, then smaller id. As a heap comparator the top is the worst kept.
  auto better = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  heap.clear();
  float max = -INFINITY;
  for (int64_t v = 0; v < V; ++v) {
    const float x = logits[v];
    max = std::max(max, x);
    if (int64_t(heap.size()) < K) {
      heap.emplace_back(x, int32_t(v));
      std::push_heap(heap.begin(), heap.end(), better);
    } else if (x > heap.front().first) {  // ids ascend, so an equal logit never displaces
      std::pop_heap(heap.begin(), heap.end(), better);
      heap.back() = {x, int32_t(v)};
      std::push_heap(heap.begin(), heap.end(), better);
    }
  }
  double sum = 0;
  for (int64_t v = 0; v < V; ++v) sum += std::exp(double(logits[v]) - double(max));
  std::sort_heap(heap.begin(), heap.end(), better);
  for (int64_t k = 0; k < K; ++k) {
    ids[k] = heap[size_t(k)].second;
    probs[k] = f32_to_f16(float(std::exp(double(heap[size_t(k)].first) - max) / sum));
  }
}

// Converts a forward's hidden [n, m, d] and logits [n, V] into rows, in parallel over tokens.
void convert_rows(const ForwardOutput& out, int64_t n, int64_t md, int64_t V, int64_t K,
                  Backend& backend, Rows& rows) {
  rows.features.resize(size_t(n * md));
  rows.topk_ids.resize(size_t(n * K));
  rows.topk_probs.resize(size_t(n * K));
  std::vector<std::vector<std::pair<float, int32_t>>> heaps(size_t(backend.n_threads()));
  std::vector<int64_t> overflows(size_t(backend.n_threads()), 0);
  backend.host_parallel(n, [&](int64_t t, int thread) {
    for (int64_t i = t * md; i < (t + 1) * md; ++i) {
      const float x = out.hidden[size_t(i)];
      rows.features[size_t(i)] = f32_to_f16(x);
      overflows[size_t(thread)] += std::fabs(x) >= 65520.0f;  // rounds to inf in fp16
    }
    top_k_row(out.logits.data() + t * V, V, K, heaps[size_t(thread)], rows.topk_ids.data() + t * K,
              rows.topk_probs.data() + t * K);
  });
  for (int64_t c : overflows) rows.overflows += c;
}

// Runs one sequence through the target in chunks of o.chunk tokens (positions from 0, the KV
// reused from sequence to sequence) and streams its rows to the writer.
Status capture_sequence(const Model& model, KvStorage& kv, Backend& backend,
                        const CaptureOptions& o, const std::vector<int32_t>& layer_ids,
                        const std::vector<int32_t>& tokens, ShardWriter& writer,
                        int64_t* overflows) {
  const int64_t n = int64_t(tokens.size());
  const int64_t md = int64_t(layer_ids.size()) * model.config().d_model;
  const int64_t V = model.config().vocab_size;
  std::vector<int32_t> table(size_t(kv.n_blocks()));
  std::iota(table.begin(), table.end(), 0);
  ForwardBatch batch;
  ForwardOutput out;
  Rows rows;
  for (int64_t begin = 0; begin < n; begin += o.chunk) {
    const int64_t end = std::min(n, begin + o.chunk);
    batch = ForwardBatch{};
    batch.seqs.push_back(SeqRef{table, int32_t(begin)});
    for (int64_t p = begin; p < end; ++p) {
      batch.add_token(tokens[size_t(p)], int32_t(p), 0, kBlockSize, /*want_logits=*/true);
    }
    batch.capture_layers = layer_ids;
    DSPARK_RETURN_IF_ERROR(model.forward(batch, kv, out, backend));
    convert_rows(out, end - begin, md, V, o.top_k, backend, rows);
    DSPARK_RETURN_IF_ERROR(writer.write_rows(rows.features, rows.topk_ids, rows.topk_probs));
  }
  *overflows += rows.overflows;
  return Status::Ok();
}

// SIGTERM (and SIGINT, unless this process was started with it ignored, as a background job
// is) asks the capture to stop after the sample in progress and write its shard and meta.json,
// so a rerun resumes there; a second signal ends the process at once.
volatile std::sig_atomic_t g_stop_requested = 0;

extern "C" void request_stop(int sig) {
  g_stop_requested = 1;
  std::signal(sig, SIG_DFL);
}

class StopOnSignal {
 public:
  StopOnSignal() {
    g_stop_requested = 0;
    old_term_ = std::signal(SIGTERM, request_stop);
    old_int_ = std::signal(SIGINT, SIG_IGN);
    if (old_int_ != SIG_IGN) std::signal(SIGINT, request_stop);
  }
  ~StopOnSignal() {
    std::signal(SIGTERM, old_term_);
    std::signal(SIGINT, old_int_);
  }
  StopOnSignal(const StopOnSignal&) = delete;
  StopOnSignal& operator=(const StopOnSignal&) = delete;

  bool requested() const { return g_stop_requested != 0; }

 private:
  void (*old_term_)(int) = SIG_DFL;
  void (*old_int_)(int) = SIG_DFL;
};

// Counters for the progress lines and the summary.
struct Progress {
  int64_t captured = 0, skipped = 0, tokens = 0, answer_tokens = 0, overflows = 0;
  double start = now_s(), last_report = now_s();

  void add(int64_t n_tokens, int64_t n_answer) {
    captured += 1;
    tokens += n_tokens;
    answer_tokens += n_answer;
  }

  void report(const ShardWriter& w, int64_t lines, bool final) {
    const double secs = now_s() - start;
    const double mb = double(w.bytes_written()) / 1e6;
    std::fprintf(stderr,
                 "capture: %s%ld samples (%ld skipped, %ld input lines in all), %ld tokens "
                 "(%ld answer), %.1f tok/s, %.1f MB written, %.1f s\n",
                 final ? "done: " : "", long(captured), long(skipped), long(lines), long(tokens),
                 long(answer_tokens), secs > 0 ? double(tokens) / secs : 0.0, mb, secs);
    last_report = now_s();
  }
};

// meta.json's settings for this run (no shards yet).
CaptureMeta new_meta(const CaptureOptions& o, const Model& model,
                     const std::vector<int32_t>& layer_ids) {
  const ModelConfig& c = model.config();
  CaptureMeta m;
  m.model = o.model_path;
  m.model_name = c.name;
  m.arch = arch_name(c.arch);
  m.n_layers = c.n_layers;
  m.d_model = c.d_model;
  m.vocab_size = c.vocab_size;
  m.target_layer_ids = layer_ids;
  m.top_k = o.top_k;
  m.max_len = o.max_len;
  return m;
}

// Bytes on disk of meta.json and the listed shards' files.
uint64_t bytes_on_disk(const std::string& dir, const CaptureMeta& meta) {
  std::error_code ec;
  uint64_t total = std::filesystem::file_size(dir + "/meta.json", ec);
  if (ec) total = 0;
  for (const capture::ShardInfo& s : meta.shards) {
    for (const char* suffix : {".tokens.i32", ".offsets.i64", ".mask.u8", ".features.f16",
                               ".topk_ids.i32", ".topk_probs.f16"}) {
      const uint64_t size = std::filesystem::file_size(dir + "/" + s.name + suffix, ec);
      if (!ec) total += size;
    }
  }
  return total;
}

// This run's meta.json: a new one, or the output folder's own when its settings match.
Result<CaptureMeta> open_output(const CaptureOptions& o, const Model& model,
                                const std::vector<int32_t>& layer_ids) {
  std::error_code ec;
  std::filesystem::create_directories(o.output, ec);
  if (ec) return Error{"cannot create the output folder '" + o.output + "': " + ec.message()};
  CaptureMeta meta = new_meta(o, model, layer_ids);
  auto existing = CaptureMeta::read(o.output + "/meta.json");
  if (!existing.ok()) return existing.error();
  if (existing->has_value()) {
    DSPARK_RETURN_IF_ERROR(CaptureMeta::check_resumable(**existing, meta));
    meta = std::move(**existing);
    std::fprintf(stderr, "capture: resuming %s after %ld input lines (%zu shards)\n",
                 o.output.c_str(), long(meta.samples_done), meta.shards.size());
  }
  std::string ids;
  for (int32_t id : layer_ids) ids += (ids.empty() ? "" : ", ") + std::to_string(id);
  std::fprintf(stderr, "capture: target_layer_ids [%s], top-k %ld, max-len %ld, chunk %ld\n",
               ids.c_str(), long(o.top_k), long(o.max_len), long(o.chunk));
  return meta;
}

// Streams the input through the target into the output folder (resuming a matching capture).
Status capture_all(const CaptureOptions& o) {
  auto loaded = load_model(o.model_path, false);
  if (!loaded.ok()) return loaded.error();
  const Model& model = *loaded->model;
  auto layer_ids = parse_layer_ids(o.layer_ids, model.config().n_layers);
  if (!layer_ids.ok()) return layer_ids.error();
  if (o.top_k > model.config().vocab_size) {
    return Error{"--top-k " + std::to_string(o.top_k) + " exceeds the vocabulary of " +
                 std::to_string(model.config().vocab_size)};
  }
  std::ifstream input(o.input, std::ios::binary);
  if (!input) return Error{"cannot read the input file '" + o.input + "'"};
  auto meta = open_output(o, model, *layer_ids);
  if (!meta.ok()) return meta.error();
  const int64_t resume_at = meta->samples_done;

  const std::unique_ptr<Backend> backend = make_cpu_backend(int(o.threads));
  DSPARK_RETURN_IF_ERROR(model.reserve(std::min(o.chunk, o.max_len)));
  KvStorage kv(model.config(), kBlockSize, int((o.max_len + kBlockSize - 1) / kBlockSize));
  ShardWriter writer(o.output, std::move(meta).value());
  capture::SampleEncoder encoder(*loaded);
  Progress progress;
  const StopOnSignal stop;
  int64_t line_no = 0;
  std::string line;
  while ((o.limit < 0 || line_no < o.limit) && !stop.requested() && std::getline(input, line)) {
    ++line_no;
    if (line_no <= resume_at) continue;  // captured by an earlier run
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;  // blank line
    auto sample = encoder.encode(line, line_no);
    if (!sample.ok()) return sample.error();
    std::vector<int32_t>& tokens = sample->tokens;
    if (int64_t(tokens.size()) > o.max_len) tokens.resize(size_t(o.max_len));
    const int64_t n_answer = int64_t(tokens.size()) - sample->n_prompt;
    if (n_answer < kMinAnswerTokens) {
      ++progress.skipped;
      continue;
    }
    DSPARK_RETURN_IF_ERROR(
        capture_sequence(model, kv, *backend, o, *layer_ids, tokens, writer, &progress.overflows));
    std::vector<uint8_t> mask(tokens.size(), 0);  // [n] 1 on answer tokens
    std::fill(mask.begin() + sample->n_prompt, mask.end(), uint8_t{1});
    DSPARK_RETURN_IF_ERROR(writer.end_sequence(tokens, mask));
    progress.add(int64_t(tokens.size()), n_answer);
    if (writer.pending_tokens() >= o.shard_tokens) DSPARK_RETURN_IF_ERROR(writer.flush(line_no));
    if (now_s() - progress.last_report >= 5.0) progress.report(writer, line_no, false);
  }
  if (input.bad()) return Error{"reading the input file '" + o.input + "' failed"};
  DSPARK_RETURN_IF_ERROR(writer.flush(std::max(line_no, resume_at)));
  progress.report(writer, line_no, true);
  if (stop.requested()) {
    std::fprintf(stderr,
                 "capture: stopped by a signal after input line %ld; run the same "
                 "command again to resume\n",
                 long(std::max(line_no, resume_at)));
  }
  if (progress.overflows > 0) {
    std::fprintf(stderr,
                 "capture: warning: %ld feature values exceeded the fp16 range (stored as inf)\n",
                 long(progress.overflows));
  }
  std::fprintf(stderr, "capture: %zu shards, %.1f MB on disk in %s\n", writer.meta().shards.size(),
               double(bytes_on_disk(o.output, writer.meta())) / 1e6, o.output.c_str());
  return Status::Ok();
}

Result<CaptureOptions> read_options(const Args& args) {
  CaptureOptions o;
  o.model_path = args.str("model");
  o.input = args.str("input");
  o.output = args.str("output");
  if (o.input.empty()) return Error{"--input FILE.jsonl is required"};
  if (o.output.empty()) return Error{"--output DIR is required"};
  o.layer_ids = args.str("target-layer-ids");
  DSPARK_RETURN_IF_ERROR(take(args.integer("top-k", 1, 1 << 16), o.top_k));
  DSPARK_RETURN_IF_ERROR(take(args.integer("chunk", 1, 1 << 16), o.chunk));
  DSPARK_RETURN_IF_ERROR(take(args.integer("shard-tokens", 1, int64_t{1} << 40), o.shard_tokens));
  DSPARK_RETURN_IF_ERROR(take(args.integer("threads", 0, 1024), o.threads));
  DSPARK_RETURN_IF_ERROR(take(args.integer("max-len", kMinAnswerTokens, 1 << 24), o.max_len));
  if (args.has("limit")) {
    DSPARK_RETURN_IF_ERROR(take(args.integer("limit", 0, INT64_MAX), o.limit));
  }
  return o;
}

}  // namespace

int run_capture(int argc, char** argv) {
  Args args;
  args.option("model", "m", "PATH", "GGUF file or Hugging Face folder", default_model_path())
      .option("input", "i", "FILE", "JSONL samples: {\"prompt\"|\"messages\", \"answer\"}")
      .option("output", "o", "DIR", "output folder (resumed when its meta.json matches)")
      .option("target-layer-ids", "", "IDS",
              "comma-separated increasing layer ids in [-1, n_layers-2]; -1 = embeddings "
              "(default: 5 spread from 1 to n_layers-3)")
      .option("top-k", "k", "K", "next-token probabilities kept per position", "16")
      .option("max-len", "", "N", "tokens per sample at most (prompt + answer)", "2048")
      .option("chunk", "", "N", "prefill tokens per forward", "512")
      .option("shard-tokens", "", "N", "tokens per shard", "262144")
      .option("threads", "t", "K", "CPU threads; 0 = all cores", "0")
      .option("limit", "", "N", "stop after N input lines in all (resumed runs included)")
      .option("help", "h", "", "show this help");
  const std::string summary =
      "Capture the target's hidden states and top-K next-token distributions over prompt +\n"
      "answer pairs, for DSpark drafter training (format: docs/dspark-training.md).\n"
      "Resumable: rerun the same command. SIGTERM or Ctrl-C stops after the sample in progress\n"
      "with everything captured so far written.";
  if (Status s = args.parse(argc, argv); !s.ok()) {
    std::fprintf(stderr, "dspark capture: %s\n", s.message().c_str());
    return 2;
  }
  if (args.has("help")) {
    std::printf("%s", args.usage("capture", summary).c_str());
    return 0;
  }
  auto options = read_options(args);
  if (!options.ok()) {
    std::fprintf(stderr, "dspark capture: %s\n", options.error().message.c_str());
    return 2;
  }
  Status s;
  try {  // the library reports errors as values; this only catches running out of memory
    s = capture_all(*options);
  } catch (const std::exception& e) {
    s = Error{e.what()};
  }
  if (!s.ok()) {
    std::fprintf(stderr, "dspark capture: %s\n", s.message().c_str());
    return 1;
  }
  return 0;
}

}  // namespace dspark::cli
