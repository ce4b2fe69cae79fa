// Mutated-corpus fuzzing of the GGUF and safetensors parsers: small valid images built in memory
// are truncated at every length, byte-flipped, spliced, and have their length/count/offset
// fields overwritten with hostile values. Parsing must never crash (the sanitizer build checks
// memory safety), must fail with a message, and when it succeeds every tensor must lie inside
// the parsed bytes with a byte size consistent with its shape and type. Deterministic seeds;
// a few thousand cases per format, well under a second in the normal build.
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <random>

#include "dspark/loader.h"
#include "loader/model_file_impl.h"
#include "loader/test_writers.h"

namespace dspark {
namespace {

using test::GgufBuilder;
using test::GValue;

struct Stats {
  int parsed = 0, rejected = 0;
};

// Checks the invariants loader.h promises for every tensor of a successfully parsed file.
void check_tensors(const ModelFile& file, const uint8_t* base, size_t size) {
  for (const TensorInfo& t : file.tensors()) {
    const DTypeInfo* info = dtype_info(t.type);
    ASSERT_NE(info, nullptr) << t.name;
    ASSERT_NE(t.data, nullptr) << t.name;
    ASSERT_GE(t.data, base) << t.name;
    ASSERT_LE(t.n_bytes, size) << t.name;
    ASSERT_LE(static_cast<size_t>(t.data - base), size - t.n_bytes) << t.name;
    ASSERT_GT(t.n_elements(), 0) << t.name;
    ASSERT_EQ(t.cols() % info->block_elems, 0) << t.name;
    ASSERT_EQ(t.n_bytes, dtype_row_bytes(t.type, t.cols()) * static_cast<uint64_t>(t.rows()))
        << t.name;
    EXPECT_EQ(file.tensor(t.name), &t);
    if (info->dequantizable) {
      std::vector<float> row(static_cast<size_t>(t.cols()));
      const uint64_t row_bytes = dtype_row_bytes(t.type, t.cols());
      dequantize_row(t.type, t.data, row.data(), t.cols());
      dequantize_row(t.type, t.data + (t.rows() - 1) * row_bytes, row.data(), t.cols());
    }
  }
}

void check_gguf(const std::vector<uint8_t>& image, Stats* stats) {
  auto storage = loader::copy_bytes(image.data(), image.size());
  auto r = loader::parse_gguf(storage, "", "");
  if (!r.ok()) {
    ASSERT_FALSE(r.error().message.empty());
    ++stats->rejected;
    return;
  }
  ++stats->parsed;
  check_tensors(**r, storage->data(), storage->size());
  // The public entry point takes its own copy and must agree.
  auto again = ModelFile::parse_gguf_bytes(image.data(), image.size());
  ASSERT_TRUE(again.ok());
  ASSERT_EQ((*again)->tensors().size(), (*r)->tensors().size());
}

void check_safetensors(const std::vector<uint8_t>& image, const std::string& config, Stats* stats) {
  auto storage = loader::copy_bytes(image.data(), image.size());
  std::map<std::string, std::string> header_meta;
  auto tensors = loader::parse_safetensors_tensors(*storage, &header_meta);
  auto r = ModelFile::parse_safetensors_bytes(image.data(), image.size(), config);
  if (!tensors.ok()) {
    ASSERT_FALSE(tensors.error().message.empty());
    ASSERT_FALSE(r.ok());
    ++stats->rejected;
    return;
  }
  for (const TensorInfo& t : *tensors) {
    ASSERT_GE(t.data, storage->data());
    ASSERT_LE(t.n_bytes, storage->size());
    ASSERT_LE(static_cast<size_t>(t.data - storage->data()), storage->size() - t.n_bytes);
  }
  if (r.ok()) {
    ++stats->parsed;
    ASSERT_EQ((*r)->tensors().size(), tensors->size());
  } else {
    ++stats->rejected;  // the config text was bad
    ASSERT_FALSE(r.error().message.empty());
  }
}

GgufBuilder base_gguf() {
  GgufBuilder b;
  b.kv("general.architecture", GValue::str("llama"));
  b.kv("llama.block_count", GValue::u32(2));
  b.kv("llama.rope.freq_base", GValue::f32(10000.0f));
  b.kv("tokenizer.ggml.add_bos_token", GValue::boolean(true));
  b.kv("tokenizer.ggml.tokens",
       GValue::array(test::kGString, {GValue::str("a"), GValue::str("bc"), GValue::str("")}));
  b.kv("nested", GValue::array(test::kGArray, {GValue::array(test::kGI64, {GValue::i64(-1)})}));
  b.tensor("f32", {8, 2}, 0, std::vector<uint8_t>(64, 0x3f));
  b.tensor("q4_0", {32, 2}, 2, std::vector<uint8_t>(36, 0x11));
  b.tensor("q4_k", {256}, 12, std::vector<uint8_t>(144, 0x22));
  b.tensor("f16", {16}, 1, std::vector<uint8_t>(32, 0x3c));
  return b;
}

const uint64_t kHostile64[] = {0,
                               1,
                               2,
                               3,
                               31,
                               32,
                               255,
                               0x7FFFFFFF,
                               0xFFFFFFFF,
                               0x100000000ull,
                               1ull << 61,
                               1ull << 62,
                               1ull << 63,
                               0x7FFFFFFFFFFFFFFFull,
                               0xFFFFFFFFFFFFFFE0ull,
                               0xFFFFFFFFFFFFFFFEull,
                               0xFFFFFFFFFFFFFFFFull};
const uint32_t kHostile32[] = {0,  1,  2,  3,  4,  5,  7,  8,          9,
                               12, 13, 14, 15, 19, 30, 31, 0x7FFFFFFF, 0xFFFFFFFF};

TEST(LoaderFuzz, GgufMutations) {
  GgufBuilder builder = base_gguf();
  const std::vector<uint8_t> base = builder.build();
  Stats stats;
  check_gguf(base, &stats);
  ASSERT_EQ(stats.parsed, 1) << "the base image must be valid";

  for (size_t len = 0; len < base.size(); ++len) {
    check_gguf(std::vector<uint8_t>(base.begin(), base.begin() + len), &stats);
  }
  for (size_t pos : builder.u64_fields()) {
    std::vector<uint64_t> values(std::begin(kHostile64), std::end(kHostile64));
    values.push_back(base.size());
    values.push_back(base.size() - 1);
    values.push_back(base.size() + 1);
    for (uint64_t v : values) {
      auto image = base;
      test::patch(&image, pos, v);
      check_gguf(image, &stats);
    }
  }
  for (size_t pos : builder.u32_fields()) {
    for (uint32_t v : kHostile32) {
      auto image = base;
      test::patch(&image, pos, v);
      check_gguf(image, &stats);
    }
  }
  std::mt19937_64 rng(20240601);
  for (int iter = 0; iter < 4000; ++iter) {
    auto image = base;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) image[rng() % image.size()] = static_cast<uint8_t>(rng());
    check_gguf(image, &stats);
  }
  for (int iter = 0; iter < 500; ++iter) {  // splices: delete or duplicate a byte range
    auto image = base;
    const size_t at = rng() % image.size();
    const size_t len = 1 + rng() % 16;
    if (iter % 2 == 0) {
      image.erase(image.begin() + static_cast<std::ptrdiff_t>(at),
                  image.begin() + static_cast<std::ptrdiff_t>(std::min(image.size(), at + len)));
    } else {
      std::vector<uint8_t> chunk(
          base.begin() + static_cast<std::ptrdiff_t>(at),
          base.begin() + static_cast<std::ptrdiff_t>(std::min(base.size(), at + len)));
      image.insert(image.begin() + static_cast<std::ptrdiff_t>(at), chunk.begin(), chunk.end());
    }
    check_gguf(image, &stats);
  }
  EXPECT_GT(stats.parsed, 1);  // some mutations (e.g. in string bytes) stay valid
  EXPECT_GT(stats.rejected, 1000);
}

// Header text with each number spelled by `num(i, default)`, so any one can be replaced.
constexpr int kHeaderNumbers = 12;
std::string st_header(const std::function<std::string(int, uint64_t)>& num) {
  const std::string pattern =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[#,#],"data_offsets":[#,#]},)"
      R"("b":{"dtype":"F16","shape":[#],"data_offsets":[#,#]},)"
      R"("c":{"dtype":"BF16","shape":[#,#,#],"data_offsets":[#,#]}})";
  const uint64_t defaults[kHeaderNumbers] = {2, 3, 0, 24, 4, 24, 32, 1, 2, 2, 32, 40};
  std::string h;
  int i = 0;
  for (char c : pattern) {
    if (c == '#') {
      h.append(num(i, defaults[i]));
      ++i;
    } else {
      h.push_back(c);
    }
  }
  return h;
}

TEST(LoaderFuzz, SafetensorsMutations) {
  const std::vector<uint8_t> data(40, 0x3c);
  const std::string config = R"({"hidden_size": 8, "rope_scaling": {"factor": 2.0}, "ids": [1]})";
  const auto base =
      test::safetensors_image(st_header([](int, uint64_t v) { return std::to_string(v); }), data);
  Stats stats;
  check_safetensors(base, config, &stats);
  ASSERT_EQ(stats.parsed, 1) << "the base image must be valid";

  for (size_t len = 0; len < base.size(); ++len) {
    check_safetensors(std::vector<uint8_t>(base.begin(), base.begin() + len), config, &stats);
  }
  std::vector<std::string> replacements = {"-1",
                                           "0.5",
                                           "1e308",
                                           "\"7\"",
                                           "[]",
                                           "null",
                                           "{}",
                                           "18446744073709551616",
                                           "-9223372036854775808"};
  for (uint64_t v : kHostile64) replacements.push_back(std::to_string(v));
  for (int target = 0; target < kHeaderNumbers; ++target) {
    for (const std::string& repl : replacements) {
      const std::string header =
          st_header([&](int i, uint64_t v) { return i == target ? repl : std::to_string(v); });
      check_safetensors(test::safetensors_image(header, data), config, &stats);
    }
  }
  for (uint64_t v : kHostile64) {
    auto image = base;
    test::patch(&image, 0, v);  // header length
    check_safetensors(image, config, &stats);
  }
  for (const char* dtype : {"F64", "I8", "U8", "BOOL", "F8_E4M3", "", "f32", "F32 "}) {
    std::string header = st_header([](int, uint64_t v) { return std::to_string(v); });
    header.replace(header.find("BF16"), 4, dtype);
    check_safetensors(test::safetensors_image(header, data), config, &stats);
  }
  std::mt19937_64 rng(777);
  for (int iter = 0; iter < 3000; ++iter) {
    auto image = base;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < flips; ++k) image[rng() % image.size()] = static_cast<uint8_t>(rng());
    check_safetensors(image, config, &stats);
  }
  for (int iter = 0; iter < 1000; ++iter) {  // config.json text mutations
    std::string cfg = config;
    cfg[rng() % cfg.size()] = static_cast<char>(rng());
    if (iter % 3 == 0) cfg.resize(rng() % cfg.size());
    check_safetensors(base, cfg, &stats);
  }
  EXPECT_GT(stats.parsed, 1);
  EXPECT_GT(stats.rejected, 1000);
}

}  // namespace
}  // namespace dspark
