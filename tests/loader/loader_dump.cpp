// Test helper for test_loader_ref.py: opens a model with dspark's loader and writes what it saw.
//   loader_dump MODEL OUT_PREFIX [--max-rows N]
// OUT_PREFIX.json: format, gguf_version, metadata (each value as ["b"|"i"|"u"|"f"|"s"|"a", v]:
// floats as their IEEE-754 double bits, strings as hex bytes, so comparisons are exact), and per
// tensor name, type, shape, n_bytes, data offset within its file mapping start (GGUF only) and
// the dequantized rows. OUT_PREFIX.bin: those rows as float32, in tensor order. A tensor with at
// most N rows (default 4) has all of them dumped, otherwise rows 0, rows/3 and rows-1.
#include <bit>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "dspark/loader.h"

namespace {

using nlohmann::json;

std::string hex(const std::string& s) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() * 2);
  for (unsigned char c : s) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

json encode(const dspark::MetaValue& v) {
  using Kind = dspark::MetaValue::Kind;
  switch (v.kind) {
    case Kind::Bool:
      return json::array({"b", v.b});
    case Kind::Int:
      return json::array({"i", v.i});
    case Kind::UInt:
      return json::array({"u", v.u});
    case Kind::Float:
      return json::array({"f", std::bit_cast<uint64_t>(v.f)});
    case Kind::String:
      return json::array({"s", hex(v.s)});
    case Kind::Array: {
      json elems = json::array();
      for (const dspark::MetaValue& e : v.array) elems.push_back(encode(e));
      return json::array({"a", elems});
    }
  }
  return nullptr;
}

// zlib's CRC-32 (reflected, polynomial 0xEDB88320), so Python can check with zlib.crc32.
uint32_t crc32(const uint8_t* data, uint64_t n) {
  static const std::vector<uint32_t> table = [] {
    std::vector<uint32_t> t(256);
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1u) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (uint64_t i = 0; i < n; ++i) c = table[(c ^ data[i]) & 0xFFu] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

std::vector<int64_t> pick_rows(int64_t rows, int64_t max_rows) {
  std::vector<int64_t> picked;
  if (rows <= max_rows) {
    for (int64_t r = 0; r < rows; ++r) picked.push_back(r);
    return picked;
  }
  for (int64_t r : {int64_t{0}, rows / 3, rows - 1}) {
    if (picked.empty() || picked.back() != r) picked.push_back(r);
  }
  return picked;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 && !(argc == 5 && std::strcmp(argv[3], "--max-rows") == 0)) {
    std::fprintf(stderr, "usage: loader_dump MODEL OUT_PREFIX [--max-rows N]\n");
    return 2;
  }
  const int64_t max_rows = argc == 5 ? std::stoll(argv[4]) : 4;
  auto opened = dspark::ModelFile::open(argv[1]);
  if (!opened.ok()) {
    std::fprintf(stderr, "loader_dump: %s\n", opened.error().message.c_str());
    return 1;
  }
  const dspark::ModelFile& file = **opened;

  json out;
  out["format"] = file.format() == dspark::FileFormat::Gguf ? "gguf" : "safetensors";
  out["gguf_version"] = file.gguf_version();
  json meta = json::object();
  for (const auto& [key, value] : file.metadata()) meta[hex(key)] = encode(value);
  out["metadata"] = std::move(meta);

  const std::string prefix = argv[2];
  std::ofstream bin(prefix + ".bin", std::ios::binary);
  json tensors = json::array();
  int64_t floats_written = 0;
  for (const dspark::TensorInfo& t : file.tensors()) {
    const dspark::DTypeInfo* info = dspark::dtype_info(t.type);
    json jt;
    jt["name"] = t.name;
    jt["type"] = info->name;
    jt["shape"] = t.shape;
    jt["n_bytes"] = t.n_bytes;
    jt["crc32"] = crc32(t.data, t.n_bytes);
    jt["n_elements"] = t.n_elements();
    jt["rows"] = t.rows();
    jt["cols"] = t.cols();
    jt["row_indices"] = json::array();
    jt["values_offset"] = floats_written;
    if (info->dequantizable) {
      const uint64_t row_bytes = dspark::dtype_row_bytes(t.type, t.cols());
      std::vector<float> row(static_cast<size_t>(t.cols()));
      for (int64_t r : pick_rows(t.rows(), max_rows)) {
        dspark::dequantize_row(t.type, t.data + static_cast<uint64_t>(r) * row_bytes, row.data(),
                               t.cols());
        bin.write(reinterpret_cast<const char*>(row.data()),
                  static_cast<std::streamsize>(row.size() * sizeof(float)));
        floats_written += t.cols();
        jt["row_indices"].push_back(r);
      }
    }
    tensors.push_back(std::move(jt));
  }
  out["tensors"] = std::move(tensors);
  std::ofstream(prefix + ".json") << out.dump();
  if (!bin) {
    std::fprintf(stderr, "loader_dump: writing %s.bin failed\n", prefix.c_str());
    return 1;
  }
  return 0;
}
