// One safetensors file: u64 header length, JSON header, then the tensor bytes. Every tensor's
// dtype, shape and data_offsets are checked against each other and against the file, and the
// tensors must tile the data region exactly (as the safetensors library requires).
#include <algorithm>
#include <cstring>
#include <limits>

#include "json_util.h"
#include "model_file_impl.h"

namespace dspark::loader {

namespace {

// The safetensors library refuses headers above 100 MB; so do we.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct StDType {
  const char* name;
  DType type;
  int bytes;
};
constexpr StDType kSupported[] = {
    {"F32", DType::F32, 4},
    {"F16", DType::F16, 2},
    {"BF16", DType::BF16, 2},
    {"I32", DType::I32, 4}};  // I32: id lists (a DSpark checkpoint's draft_vocab_ids)

Status parse_tensor(const std::string& name, const nlohmann::json& entry, uint64_t data_len,
                    TensorInfo* info, uint64_t* begin) {
  const std::string who = "tensor '" + name + "'";
  if (!entry.is_object()) return Error{who + ": header entry is not an object"};
  const auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end() || !dtype_it->is_string()) {
    return Error{who + ": missing or non-string \"dtype\""};
  }
  const auto& dtype_name = dtype_it->get_ref<const std::string&>();
  const StDType* dt = nullptr;
  for (const StDType& s : kSupported) {
    if (dtype_name == s.name) dt = &s;
  }
  if (dt == nullptr) {
    return Error{who + ": dtype '" + dtype_name + "' is not supported (only F32, F16, BF16, I32)"};
  }
  info->name = name;
  info->type = dt->type;

  const auto shape_it = entry.find("shape");
  if (shape_it == entry.end() || !shape_it->is_array()) {
    return Error{who + ": missing or non-array \"shape\""};
  }
  uint64_t n_elems = 1;
  for (const auto& dim_json : *shape_it) {
    const auto dim = json_uint(dim_json);
    if (!dim || *dim == 0 || *dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Error{who + ": shape entries must be positive integers"};
    }
    if (__builtin_mul_overflow(n_elems, *dim, &n_elems) ||
        n_elems > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Error{who + ": element count overflows"};
    }
    info->shape.push_back(static_cast<int64_t>(*dim));
  }
  if (__builtin_mul_overflow(n_elems, static_cast<uint64_t>(dt->bytes), &info->n_bytes)) {
    return Error{who + ": byte size overflows"};
  }

  const auto offs_it = entry.find("data_offsets");
  if (offs_it == entry.end() || !offs_it->is_array() || offs_it->size() != 2) {
    return Error{who + ": \"data_offsets\" must be an array of two integers"};
  }
  const auto b = json_uint((*offs_it)[0]);
  const auto e = json_uint((*offs_it)[1]);
  if (!b || !e) return Error{who + ": data_offsets must be non-negative integers"};
  if (*b > *e || *e > data_len) {
    return Error{who + ": data_offsets [" + std::to_string(*b) + ", " + std::to_string(*e) +
                 ") do not lie within the " + std::to_string(data_len) + "-byte data region"};
  }
  if (*e - *b != info->n_bytes) {
    return Error{who + ": data_offsets span " + std::to_string(*e - *b) + " bytes but shape " +
                 "and dtype " + dtype_name + " need " + std::to_string(info->n_bytes)};
  }
  *begin = *b;
  return Status::Ok();
}

Status parse_header_metadata(const nlohmann::json& meta, std::map<std::string, std::string>* out) {
  if (!meta.is_object()) return Error{"\"__metadata__\" is not an object"};
  for (const auto& [key, value] : meta.items()) {
    if (!value.is_string()) return Error{"\"__metadata__\" entry '" + key + "' is not a string"};
    out->emplace(key, value.get<std::string>());
  }
  return Status::Ok();
}

}  // namespace

Result<std::vector<TensorInfo>> parse_safetensors_tensors(
    const Storage& storage, std::map<std::string, std::string>* header_metadata) {
  const uint8_t* data = storage.data();
  const uint64_t size = storage.size();
  if (size < 8) {
    return Error{"file of " + std::to_string(size) +
                 " bytes is too small for a safetensors header"};
  }
  uint64_t header_len;
  std::memcpy(&header_len, data, sizeof(header_len));
  if (header_len > size - 8) {
    return Error{"header length " + std::to_string(header_len) +
                 " extends past end of file (size " + std::to_string(size) + ")"};
  }
  if (header_len > kMaxHeaderBytes) {
    return Error{"header length " + std::to_string(header_len) + " exceeds the 100 MB limit"};
  }
  auto header = parse_json(
      std::string_view(reinterpret_cast<const char*>(data + 8), static_cast<size_t>(header_len)),
      "safetensors header");
  if (!header.ok()) return header.error();
  if (!header->is_object()) return Error{"safetensors header is not a JSON object"};

  const uint64_t data_begin = 8 + header_len;
  const uint64_t data_len = size - data_begin;
  std::vector<TensorInfo> tensors;
  std::vector<uint64_t> begins;
  for (const auto& [name, entry] : header->items()) {
    if (name == "__metadata__") {
      DSPARK_RETURN_IF_ERROR(parse_header_metadata(entry, header_metadata));
      continue;
    }
    if (name.empty()) return Error{"a tensor has an empty name"};
    TensorInfo info;
    uint64_t begin = 0;
    DSPARK_RETURN_IF_ERROR(parse_tensor(name, entry, data_len, &info, &begin));
    info.data = data + data_begin + begin;
    tensors.push_back(std::move(info));
    begins.push_back(begin);
  }

  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return begins[a] < begins[b]; });
  uint64_t expected = 0;
  std::vector<TensorInfo> sorted;
  sorted.reserve(tensors.size());
  for (size_t i : order) {
    if (begins[i] != expected) {
      return Error{"tensor '" + tensors[i].name + "' starts at data byte " +
                   std::to_string(begins[i]) + " but the previous tensor ends at " +
                   std::to_string(expected) + " (tensors must tile the data without gaps " +
                   "or overlaps)"};
    }
    expected += tensors[i].n_bytes;
    sorted.push_back(std::move(tensors[i]));
  }
  if (expected != data_len) {
    return Error{"tensors cover " + std::to_string(expected) + " bytes but the data region holds " +
                 std::to_string(data_len)};
  }
  return sorted;
}

}  // namespace dspark::loader
