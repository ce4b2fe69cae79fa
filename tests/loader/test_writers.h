// Test-side writers for small GGUF and safetensors images, built in memory. They write the
// formats straight from the specs (independently of the reader) and remember where every
// length/count/offset field lies, so the fuzz test can overwrite those with hostile values.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace dspark::test {

inline void put_bytes(std::vector<uint8_t>* out, const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  out->insert(out->end(), b, b + n);
}
template <class T>
void put(std::vector<uint8_t>* out, T v) {
  put_bytes(out, &v, sizeof(v));
}

// GGUF metadata value types.
enum GgufType : uint32_t {
  kGU8 = 0,
  kGI8 = 1,
  kGU16 = 2,
  kGI16 = 3,
  kGU32 = 4,
  kGI32 = 5,
  kGF32 = 6,
  kGBool = 7,
  kGString = 8,
  kGArray = 9,
  kGU64 = 10,
  kGI64 = 11,
  kGF64 = 12,
};

// One encoded GGUF value (without its type tag) plus the positions, relative to `bytes`, of its
// u64 length/count fields.
struct GValue {
  uint32_t type = kGU8;
  std::vector<uint8_t> bytes;
  std::vector<size_t> u64_fields;

  template <class T>
  static GValue scalar(uint32_t type, T v) {
    GValue g;
    g.type = type;
    put(&g.bytes, v);
    return g;
  }
  static GValue u8(uint8_t v) { return scalar(kGU8, v); }
  static GValue i8(int8_t v) { return scalar(kGI8, v); }
  static GValue u16(uint16_t v) { return scalar(kGU16, v); }
  static GValue i16(int16_t v) { return scalar(kGI16, v); }
  static GValue u32(uint32_t v) { return scalar(kGU32, v); }
  static GValue i32(int32_t v) { return scalar(kGI32, v); }
  static GValue u64(uint64_t v) { return scalar(kGU64, v); }
  static GValue i64(int64_t v) { return scalar(kGI64, v); }
  static GValue f32(float v) { return scalar(kGF32, v); }
  static GValue f64(double v) { return scalar(kGF64, v); }
  static GValue boolean(bool v) { return scalar(kGBool, static_cast<uint8_t>(v ? 1 : 0)); }
  static GValue str(const std::string& s) {
    GValue g;
    g.type = kGString;
    g.u64_fields.push_back(0);
    put<uint64_t>(&g.bytes, s.size());
    put_bytes(&g.bytes, s.data(), s.size());
    return g;
  }
  // Elements must all have type elem_type.
  static GValue array(uint32_t elem_type, const std::vector<GValue>& elems) {
    GValue g;
    g.type = kGArray;
    put<uint32_t>(&g.bytes, elem_type);
    g.u64_fields.push_back(g.bytes.size());
    put<uint64_t>(&g.bytes, elems.size());
    for (const GValue& e : elems) {
      for (size_t f : e.u64_fields) g.u64_fields.push_back(g.bytes.size() + f);
      put_bytes(&g.bytes, e.bytes.data(), e.bytes.size());
    }
    return g;
  }
};

class GgufBuilder {
 public:
  uint32_t version = 3;
  uint64_t alignment = 32;  // layout alignment; add a general.alignment kv to change the reader's

  void kv(const std::string& key, const GValue& value) { kvs_.push_back({key, value}); }
  // ne innermost first, as GGUF stores it; data must already have the right size.
  void tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type,
              std::vector<uint8_t> data) {
    tensors_.push_back({name, std::move(ne), type, std::move(data)});
  }

  // Positions of u64 and u32 header fields in the last build(): counts, lengths, dims, offsets;
  // versions, types, n_dims.
  const std::vector<size_t>& u64_fields() const { return u64_fields_; }
  const std::vector<size_t>& u32_fields() const { return u32_fields_; }
  // Position of tensor t's data offset field in the last build().
  size_t offset_field(size_t t) const { return offset_fields_.at(t); }

  std::vector<uint8_t> build() {
    u64_fields_.clear();
    u32_fields_.clear();
    offset_fields_.clear();
    std::vector<uint8_t> out;
    put_bytes(&out, "GGUF", 4);
    u32_fields_.push_back(out.size());
    put<uint32_t>(&out, version);
    u64_fields_.push_back(out.size());
    put<uint64_t>(&out, tensors_.size());
    u64_fields_.push_back(out.size());
    put<uint64_t>(&out, kvs_.size());
    for (const Kv& kv : kvs_) {
      put_string(&out, kv.key);
      u32_fields_.push_back(out.size());
      put<uint32_t>(&out, kv.value.type);
      for (size_t f : kv.value.u64_fields) u64_fields_.push_back(out.size() + f);
      put_bytes(&out, kv.value.bytes.data(), kv.value.bytes.size());
    }
    uint64_t offset = 0;
    for (const Tensor& t : tensors_) {
      put_string(&out, t.name);
      u32_fields_.push_back(out.size());
      put<uint32_t>(&out, static_cast<uint32_t>(t.ne.size()));
      for (uint64_t d : t.ne) {
        u64_fields_.push_back(out.size());
        put<uint64_t>(&out, d);
      }
      u32_fields_.push_back(out.size());
      put<uint32_t>(&out, t.type);
      u64_fields_.push_back(out.size());
      offset_fields_.push_back(out.size());
      put<uint64_t>(&out, offset);
      offset = pad(offset + t.data.size());
    }
    out.resize(pad(out.size()), 0);
    for (const Tensor& t : tensors_) {
      put_bytes(&out, t.data.data(), t.data.size());
      out.resize(pad(out.size()), 0);
    }
    return out;
  }

 private:
  struct Kv {
    std::string key;
    GValue value;
  };
  struct Tensor {
    std::string name;
    std::vector<uint64_t> ne;
    uint32_t type;
    std::vector<uint8_t> data;
  };

  uint64_t pad(uint64_t n) const { return (n + alignment - 1) / alignment * alignment; }
  void put_string(std::vector<uint8_t>* out, const std::string& s) {
    u64_fields_.push_back(out->size());
    put<uint64_t>(out, s.size());
    put_bytes(out, s.data(), s.size());
  }

  std::vector<Kv> kvs_;
  std::vector<Tensor> tensors_;
  std::vector<size_t> u64_fields_, u32_fields_, offset_fields_;
};

// A safetensors file from its header text and data bytes (header padded with spaces to 8).
inline std::vector<uint8_t> safetensors_image(std::string header,
                                              const std::vector<uint8_t>& data) {
  header.append((8 - header.size() % 8) % 8, ' ');
  std::vector<uint8_t> out;
  put<uint64_t>(&out, header.size());
  put_bytes(&out, header.data(), header.size());
  put_bytes(&out, data.data(), data.size());
  return out;
}

struct StTensor {
  std::string name, dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
};

// Concatenation by appending (GCC 12 at -O3 falsely warns under -Wrestrict on "x" + string).
template <class... Parts>
std::string cat(const Parts&... parts) {
  std::string s;
  (s.append(parts), ...);
  return s;
}

// Header JSON for tensors laid out back to back in the given order.
inline std::string safetensors_header(const std::vector<StTensor>& tensors,
                                      const std::string& metadata_json = "") {
  std::string h = "{";
  if (!metadata_json.empty()) h.append(cat("\"__metadata__\":", metadata_json));
  uint64_t offset = 0;
  for (const StTensor& t : tensors) {
    if (h.size() > 1) h.push_back(',');
    h.append(cat("\"", t.name, "\":{\"dtype\":\"", t.dtype, "\",\"shape\":["));
    for (size_t k = 0; k < t.shape.size(); ++k) {
      if (k > 0) h.push_back(',');
      h.append(std::to_string(t.shape[k]));
    }
    h.append(cat("],\"data_offsets\":[", std::to_string(offset), ",",
                 std::to_string(offset + t.data.size()), "]}"));
    offset += t.data.size();
  }
  h.push_back('}');
  return h;
}

inline std::vector<uint8_t> safetensors_image(const std::vector<StTensor>& tensors,
                                              const std::string& metadata_json = "") {
  std::vector<uint8_t> data;
  for (const StTensor& t : tensors) put_bytes(&data, t.data.data(), t.data.size());
  return safetensors_image(safetensors_header(tensors, metadata_json), data);
}

template <class T>
void patch(std::vector<uint8_t>* image, size_t pos, T v) {
  std::memcpy(image->data() + pos, &v, sizeof(v));
}

template <class T>
std::vector<uint8_t> bytes_of(const std::vector<T>& v) {
  std::vector<uint8_t> out(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(out.data(), v.data(), out.size());
  return out;
}

}  // namespace dspark::test
