// Helper for test_tokenizer_ref.py: loads a tokenizer (a .gguf or a tokenizer.json) and answers
// requests read from a file, one JSON object per line on stdout.
//
//   tokenize_tool MODEL encode FILE   FILE lines: "<flags> <hex of the text bytes>", flags a
//                                     string over {p = parse_special, a = add_special, -}.
//                                     Out: {"ids":[...], "decode":hex, "decode_plain":hex,
//                                     "stream":hex} (decode renders special tokens,
//                                     decode_plain hides them, stream = StreamingDetokenizer).
//   tokenize_tool MODEL vocab         Out: {"n":N, "bytes":[hex per id], "special":[ids]}
//   tokenize_tool MODEL info          Out: kind, vocab_size, bos, eos, stop ids.
//   tokenize_tool MODEL bench FILE N  Encodes FILE's bytes N times. Out: best thread CPU ms and
//                                     best wall ms ({"cpu_ms":..., "wall_ms":...}).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "dspark/loader.h"
#include "dspark/tokenizer.h"

namespace {

using dspark::Tokenizer;

std::string to_hex(const std::string& s) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

bool from_hex(const std::string& h, std::string* out) {
  if (h.size() % 2 != 0) return false;
  out->clear();
  for (size_t i = 0; i < h.size(); i += 2) {
    unsigned v = 0;
    if (std::sscanf(h.c_str() + i, "%2x", &v) != 1) return false;
    out->push_back(static_cast<char>(v));
  }
  return true;
}

std::string ids_json(const std::vector<int32_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s + "]";
}

dspark::Result<std::unique_ptr<Tokenizer>> load(const std::string& path,
                                                std::shared_ptr<dspark::ModelFile>* keep) {
  const bool is_json = path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0;
  if (is_json) return Tokenizer::from_hf_json(path);
  auto file = dspark::ModelFile::open(path);
  if (!file.ok()) return file.error();
  *keep = file.value();
  return Tokenizer::from_model_file(*file.value());
}

int run_encode(const Tokenizer& tok, const std::string& file) {
  std::ifstream in(file);
  if (!in) {
    std::cerr << "cannot open " << file << "\n";
    return 1;
  }
  std::string line;
  while (std::getline(in, line)) {
    const size_t space = line.find(' ');
    std::string text;
    if (space == std::string::npos || !from_hex(line.substr(space + 1), &text)) {
      std::cerr << "bad request line: " << line << "\n";
      return 1;
    }
    const std::string flags = line.substr(0, space);
    const bool parse_special = flags.find('p') != std::string::npos;
    const bool add_special = flags.find('a') != std::string::npos;
    const std::vector<int32_t> ids = tok.encode(text, add_special, parse_special);
    dspark::StreamingDetokenizer stream(tok, true);
    std::string streamed;
    for (int32_t id : ids) streamed += stream.push(id);
    streamed += stream.flush();
    std::cout << "{\"ids\":" << ids_json(ids) << ",\"decode\":\"" << to_hex(tok.decode(ids, true))
              << "\",\"decode_plain\":\"" << to_hex(tok.decode(ids, false)) << "\",\"stream\":\""
              << to_hex(streamed) << "\"}\n";
  }
  return 0;
}

int run_vocab(const Tokenizer& tok) {
  std::vector<int32_t> special;
  std::cout << "{\"n\":" << tok.vocab_size() << ",\"bytes\":[";
  for (int32_t id = 0; id < tok.vocab_size(); ++id) {
    std::cout << (id ? "," : "") << '"' << to_hex(tok.token_bytes(id, true)) << '"';
    if (tok.is_special(id)) special.push_back(id);
  }
  std::cout << "],\"special\":" << ids_json(special) << "}\n";
  return 0;
}

// CPU time of this thread in ms: unlike wall time it does not count waiting for a busy core.
double thread_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) * 1e-6;
}

int run_bench(const Tokenizer& tok, const std::string& file, int reps) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  // Untimed warm-up on text sharing no word with any benchmark text (a 10 KB run of "é"): the
  // first large allocation after loading pays glibc's one-off heap consolidation, which is not
  // tokenization. The word cache stays cold for the timed text.
  std::string warm_up;
  for (int i = 0; i < 5000; ++i) warm_up += "\xC3\xA9";
  (void)tok.encode(warm_up, false, false);
  double best_cpu = 1e30, best_wall = 1e30;
  size_t n_ids = 0;
  for (int r = 0; r < reps; ++r) {
    const double c0 = thread_cpu_ms();
    const auto t0 = std::chrono::steady_clock::now();
    n_ids = tok.encode(text, false, true).size();
    const auto t1 = std::chrono::steady_clock::now();
    best_cpu = std::min(best_cpu, thread_cpu_ms() - c0);
    best_wall = std::min(best_wall, std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::cout << "{\"cpu_ms\":" << best_cpu << ",\"wall_ms\":" << best_wall
            << ",\"bytes\":" << text.size() << ",\"ids\":" << n_ids << "}\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: tokenize_tool MODEL (encode FILE | vocab | info | bench FILE N)\n";
    return 2;
  }
  std::shared_ptr<dspark::ModelFile> keep;
  auto tok = load(argv[1], &keep);
  if (!tok.ok()) {
    std::cerr << "error: " << tok.error().message << "\n";
    return 1;
  }
  const std::string cmd = argv[2];
  if (cmd == "encode" && argc == 4) return run_encode(*tok.value(), argv[3]);
  if (cmd == "vocab") return run_vocab(*tok.value());
  if (cmd == "bench" && argc == 5) return run_bench(*tok.value(), argv[3], std::atoi(argv[4]));
  if (cmd == "info") {
    const Tokenizer& t = *tok.value();
    std::cout << "{\"kind\":\"" << (t.kind() == dspark::TokenizerKind::ByteLevelBpe ? "bpe" : "spm")
              << "\",\"vocab_size\":" << t.vocab_size() << ",\"bos\":" << t.bos_id()
              << ",\"eos\":" << t.eos_id() << ",\"stop\":" << ids_json(t.stop_ids()) << "}\n";
    return 0;
  }
  std::cerr << "unknown command\n";
  return 2;
}
