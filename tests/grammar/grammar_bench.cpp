// Mask-fill timing over real vocabularies: loads each model's tokenizer, compiles a JSON schema,
// walks a document token by token and times fill_mask at every position (plus vocabulary setup
// and compile time). Usage: grammar_bench [model.gguf ...] (default: SmolLM2, Qwen2.5 0.5B and
// Gemma 3 270M under models/).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "dspark/grammar.h"
#include "dspark/loader.h"
#include "dspark/tokenizer.h"

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

const char* kSchema = R"({
  "type": "object",
  "properties": {
    "name": {"type": "string"},
    "age": {"type": "integer", "minimum": 0, "maximum": 150},
    "role": {"enum": ["admin", "user", "guest"]},
    "tags": {"type": "array", "items": {"type": "string"}},
    "address": {"type": "object", "properties": {"street": {"type": "string"},
                "zip": {"type": "integer"}}, "required": ["street", "zip"]},
    "active": {"type": "boolean"}
  },
  "required": ["name", "age", "role", "tags", "address"]
})";

const char* kDoc =
    R"({"name": "Ada Lovelace, Countess of Lovelace", "age": 36, "role": "admin", )"
    R"("tags": ["math", "poetry", "engines"], "address": {"street": "12 St James's Square", )"
    R"("zip": 10001}, "active": true})";

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

// Compiles spec, walks ids through a matcher timing fill_mask and accept at each position.
int time_walk(dspark::GrammarCompiler& compiler, const char* label, const dspark::GrammarSpec& spec,
              const std::vector<int32_t>& ids) {
  auto t0 = Clock::now();
  auto grammar = compiler.compile(spec);
  if (!grammar.ok()) return std::printf("compile: %s\n", grammar.error().message.c_str()), 1;
  double compile_ms = ms_since(t0);
  t0 = Clock::now();
  (void)compiler.compile(spec);
  double cached_ms = ms_since(t0);
  auto matcher = std::move(grammar.value()->make_matcher()).value();
  std::vector<uint32_t> mask(static_cast<size_t>(compiler.vocab()->mask_words()));
  std::vector<double> fill_us, accept_us;
  for (int32_t id : ids) {
    t0 = Clock::now();
    if (!matcher->fill_mask(mask).ok()) return 1;
    fill_us.push_back(ms_since(t0) * 1000);
    t0 = Clock::now();
    if (!matcher->accept(id)) return std::printf("token %d rejected\n", id), 1;
    accept_us.push_back(ms_since(t0) * 1000);
  }
  // How often the grammar alone fixes the next token or the next bytes (what a drafter gets free).
  matcher->reset();
  int single = 0;
  size_t forced_bytes = 0;
  for (int32_t id : ids) {
    single += matcher->forced_token().has_value() ? 1 : 0;
    forced_bytes += matcher->forced_string().size();
    (void)matcher->accept(id);
  }
  std::printf("  %-12s positions with a single allowed token %d of %zu, forced bytes mean %.2f\n",
              label, single, ids.size(),
              static_cast<double>(forced_bytes) / static_cast<double>(ids.size()));
  double sum = 0;
  for (double u : fill_us) sum += u;
  std::printf(
      "  %-12s compile %6.1f ms (cached %.3f ms), %zu tokens: fill_mask mean %5.1f us, p50 %5.1f "
      "us, p90 %5.1f us, max %6.1f us; accept p50 %.1f us\n",
      label, compile_ms, cached_ms, ids.size(), sum / static_cast<double>(fill_us.size()),
      percentile(fill_us, 0.5), percentile(fill_us, 0.9), percentile(fill_us, 1.0),
      percentile(accept_us, 0.5));
  return 0;
}

int bench(const std::string& path) {
  auto file = dspark::ModelFile::open(path);
  if (!file.ok()) {
    std::printf("%s: skipped (%s)\n", path.c_str(), file.error().message.c_str());
    return 0;
  }
  auto tok = dspark::Tokenizer::from_model_file(*file.value());
  if (!tok.ok()) return std::printf("%s: %s\n", path.c_str(), tok.error().message.c_str()), 1;
  auto t0 = Clock::now();
  auto vocab = dspark::GrammarVocab::from_tokenizer(*tok.value());
  if (!vocab.ok()) return std::printf("vocab: %s\n", vocab.error().message.c_str()), 1;
  std::printf("%s: vocab %d, vocabulary setup %.0f ms\n", path.c_str(), vocab.value()->size(),
              ms_since(t0));
  dspark::GrammarCompiler compiler(vocab.value());
  std::vector<int32_t> ids = tok.value()->encode(kDoc, false, false);
  int rc = time_walk(compiler, "json_schema", dspark::GrammarSpec::json_schema(kSchema), ids);
  dspark::GrammarSpec compact = dspark::GrammarSpec::json_schema(kSchema);
  compact.any_whitespace = false;
  rc |= time_walk(compiler, "compact", compact, ids);
  rc |= time_walk(compiler, "json_object", dspark::GrammarSpec::json_object(), ids);
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> paths(argv + 1, argv + argc);
  if (paths.empty()) {
    paths = {std::string(DSPARK_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf",
             std::string(DSPARK_SOURCE_DIR) + "/models/qwen2.5-coder-0.5b.gguf",
             std::string(DSPARK_SOURCE_DIR) + "/models/gemma3-270m.Q4_K_M.gguf"};
  }
  int rc = 0;
  for (const std::string& p : paths) rc |= bench(p);
  return rc;
}
