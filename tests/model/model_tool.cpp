// Test helper: loads a model and answers JSON-line requests on stdin with JSON lines on stdout,
// so Python reference tests can drive dspark's forward with plain token ids.
//
//   model_tool MODEL [--threads N]
//   {"op": "info"}
//   {"op": "logits", "tokens": [...], "rows": "all"|"last", "chunk": K, "out": PATH}
//       prefill in chunks of K tokens (default: all at once); float32 logits of the wanted rows
//       ([rows, vocab], little endian) are written to PATH
//   {"op": "hidden", "tokens": [...], "out": PATH}
//       one forward; float32 hidden states [n_tok, n_layers + 1, d_model] (embeddings, then the
//       residual stream after each layer) are written to PATH
//   {"op": "greedy", "tokens": [...], "n": N}
//       prefill the prompt, then N greedy steps one token at a time; replies the N tokens and
//       timings (prefill seconds, decode tokens/s)
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "dspark/backend_cpu.h"
#include "dspark/model.h"

namespace {

using dspark::ForwardBatch;
using dspark::ForwardOutput;
using dspark::KvStorage;
using dspark::Model;
using json = nlohmann::json;

constexpr int kBlockSize = 16;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// One sequence in its own storage, block table 0..n_blocks-1.
struct Session {
  Session(const Model& m, int64_t max_tokens)
      : kv(m.config(), kBlockSize, static_cast<int>((max_tokens + kBlockSize - 1) / kBlockSize)) {
    for (int b = 0; b < kv.n_blocks(); ++b) table.push_back(b);
  }
  KvStorage kv;
  std::vector<int32_t> table;
  int32_t n_past = 0;

  // Runs tokens as one forward; logits for rows [first_row, n) of this chunk.
  dspark::Status run(const Model& m, const std::vector<int32_t>& tokens, size_t first_row,
                     ForwardOutput& out, dspark::Backend& backend) {
    ForwardBatch b;
    b.seqs.push_back({table, n_past});
    for (size_t i = 0; i < tokens.size(); ++i) {
      b.add_token(tokens[i], n_past + static_cast<int32_t>(i), 0, kBlockSize, i >= first_row);
    }
    dspark::Status st = m.forward(b, kv, out, backend);
    if (st.ok()) n_past += static_cast<int32_t>(tokens.size());
    return st;
  }
};

json do_logits(const Model& m, const json& req, dspark::Backend& backend) {
  const auto tokens = req.at("tokens").get<std::vector<int32_t>>();
  const bool all = req.value("rows", std::string("all")) == "all";
  const size_t chunk = req.value("chunk", tokens.size());
  if (tokens.empty() || chunk == 0) return {{"error", "need tokens and chunk >= 1"}};
  Session s(m, static_cast<int64_t>(tokens.size()));
  std::vector<float> logits;
  ForwardOutput out;
  for (size_t begin = 0; begin < tokens.size(); begin += chunk) {
    const size_t end = std::min(tokens.size(), begin + chunk);
    std::vector<int32_t> part(tokens.begin() + begin, tokens.begin() + end);
    const size_t first = all ? 0 : (end == tokens.size() ? part.size() - 1 : part.size());
    dspark::Status st = s.run(m, part, first, out, backend);
    if (!st.ok()) return {{"error", st.message()}};
    logits.insert(logits.end(), out.logits.begin(), out.logits.end());
  }
  std::ofstream f(req.at("out").get<std::string>(), std::ios::binary);
  f.write(reinterpret_cast<const char*>(logits.data()),
          static_cast<std::streamsize>(logits.size() * sizeof(float)));
  if (!f) return {{"error", "cannot write " + req.at("out").get<std::string>()}};
  return {{"rows", logits.size() / size_t(m.config().vocab_size)},
          {"vocab", m.config().vocab_size}};
}

json do_hidden(const Model& m, const json& req, dspark::Backend& backend) {
  const auto tokens = req.at("tokens").get<std::vector<int32_t>>();
  if (tokens.empty()) return {{"error", "need tokens"}};
  Session s(m, static_cast<int64_t>(tokens.size()));
  ForwardBatch b;
  b.seqs.push_back({s.table, 0});
  for (size_t i = 0; i < tokens.size(); ++i) {
    b.add_token(tokens[i], static_cast<int32_t>(i), 0, kBlockSize, false);
  }
  for (int l = -1; l < m.config().n_layers; ++l) b.capture_layers.push_back(l);
  ForwardOutput out;
  dspark::Status st = m.forward(b, s.kv, out, backend);
  if (!st.ok()) return {{"error", st.message()}};
  std::ofstream f(req.at("out").get<std::string>(), std::ios::binary);
  f.write(reinterpret_cast<const char*>(out.hidden.data()),
          static_cast<std::streamsize>(out.hidden.size() * sizeof(float)));
  if (!f) return {{"error", "cannot write " + req.at("out").get<std::string>()}};
  return {{"tokens", tokens.size()},
          {"layers", m.config().n_layers + 1},
          {"d_model", m.config().d_model}};
}

json do_greedy(const Model& m, const json& req, dspark::Backend& backend) {
  const auto prompt = req.at("tokens").get<std::vector<int32_t>>();
  const int n = req.value("n", 16);
  if (prompt.empty() || n < 1) return {{"error", "need a prompt and n >= 1"}};
  Session s(m, static_cast<int64_t>(prompt.size()) + n);
  ForwardOutput out;
  auto t0 = std::chrono::steady_clock::now();
  dspark::Status st = s.run(m, prompt, prompt.size() - 1, out, backend);
  if (!st.ok()) return {{"error", st.message()}};
  const double prefill_s = seconds_since(t0);
  const int64_t vocab = m.config().vocab_size;
  std::vector<int32_t> generated;
  t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    const auto next = static_cast<int32_t>(dspark::cpu::argmax(out.logits.data(), vocab));
    generated.push_back(next);
    if (i + 1 == n) break;
    st = s.run(m, {next}, 0, out, backend);
    if (!st.ok()) return {{"error", st.message()}};
  }
  const double decode_s = seconds_since(t0);
  return {{"tokens", generated},
          {"prefill_s", prefill_s},
          {"decode_tok_s", n > 1 ? (n - 1) / decode_s : 0.0}};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: model_tool MODEL [--threads N]\n");
    return 2;
  }
  int threads = 0;
  for (int i = 2; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--threads") threads = std::atoi(argv[i + 1]);
  }
  auto t0 = std::chrono::steady_clock::now();
  auto file = dspark::ModelFile::open(argv[1]);
  if (!file.ok()) {
    std::cout << json{{"error", file.error().message}}.dump() << std::endl;
    return 1;
  }
  const std::unique_ptr<dspark::Backend> backend = dspark::make_cpu_backend(threads);
  auto model = Model::load(file.value(), *backend);
  if (!model.ok()) {
    std::cout << json{{"error", model.error().message}}.dump() << std::endl;
    return 1;
  }
  const double load_s = seconds_since(t0);
  const Model& m = **model;
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    json reply;
    try {
      const json req = json::parse(line);
      const std::string op = req.at("op").get<std::string>();
      if (op == "info") {
        const auto& c = m.config();
        reply = {{"arch", dspark::arch_name(c.arch)},
                 {"vocab", c.vocab_size},
                 {"n_layers", c.n_layers},
                 {"d_model", c.d_model},
                 {"weight_bytes", m.weight_bytes()},
                 {"load_s", load_s},
                 {"threads", backend->n_threads()},
                 {"isa", dspark::cpu::isa_name()}};
      } else if (op == "logits") {
        reply = do_logits(m, req, *backend);
      } else if (op == "hidden") {
        reply = do_hidden(m, req, *backend);
      } else if (op == "greedy") {
        reply = do_greedy(m, req, *backend);
      } else {
        reply = {{"error", "unknown op " + op}};
      }
    } catch (const json::exception& e) {
      reply = {{"error", std::string("bad request: ") + e.what()}};
    }
    std::cout << reply.dump() << std::endl;
  }
  return 0;
}
