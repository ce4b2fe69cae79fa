// Model files: GGUF (v2/v3) and Hugging Face folders (config.json + *.safetensors), memory-mapped
// and validated. Everything a caller sees is checked: offsets, sizes, shapes and types are in
// range, so a tensor's data pointer can be read for n_bytes without further checks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dspark/status.h"

namespace dspark {

// Tensor element types, numbered as GGUF numbers them (so GGUF files map directly).
enum class DType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  BF16 = 30,
};

struct DTypeInfo {
  const char* name;    // "Q4_K"
  int block_elems;     // elements per block (1 for plain types)
  int block_bytes;     // bytes per block
  bool dequantizable;  // dequantize_row supports it (and so do the CPU kernels)
};

// nullptr for a value that is not a known type.
const DTypeInfo* dtype_info(DType type);
const DTypeInfo* dtype_info(uint32_t raw_type);
// Bytes of n_elems elements; n_elems must be a multiple of block_elems.
uint64_t dtype_row_bytes(DType type, int64_t n_elems);
// Reference dequantization of one row (plain scalar code; the CPU backend has fast versions).
// n_elems must be a multiple of the block size; type must be dequantizable.
void dequantize_row(DType type, const void* src, float* dst, int64_t n_elems);
// fp16 / bf16 scalar conversions shared by every module.
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);  // round to nearest even; overflow to inf; NaN stays NaN
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);  // round to nearest even

// A metadata value: GGUF key/value entries, or config.json entries of a Hugging Face folder.
struct MetaValue {
  enum class Kind { Bool, Int, UInt, Float, String, Array } kind = Kind::Int;
  bool b = false;
  int64_t i = 0;
  uint64_t u = 0;
  double f = 0;
  std::string s;
  std::vector<MetaValue> array;  // Kind::Array; elements may themselves be arrays

  // Numeric view of Bool/Int/UInt/Float; nullopt for strings and arrays.
  std::optional<double> as_number() const;
};

struct TensorInfo {
  std::string name;
  DType type = DType::F32;
  // Outermost dimension first (PyTorch order) for both formats: a GGUF matrix whose ne is
  // [n_in, n_out] is reported as {n_out, n_in}. Rows are contiguous along the last dimension.
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // [n_bytes], inside the mapping; valid while the file lives
  uint64_t n_bytes = 0;

  int64_t n_elements() const;
  int64_t rows() const;  // product of all but the last dimension (1 for a vector)
  int64_t cols() const;  // last dimension
};

std::string shape_text(const std::vector<int64_t>& shape);  // "[d0, d1]", for messages

enum class FileFormat { Gguf, Safetensors };

class ModelFile {
 public:
  // A .gguf file, or a folder (or a .safetensors file inside one) holding config.json and
  // model.safetensors or model.safetensors.index.json with its shards. A file starting with the
  // GGUF magic is GGUF whatever its name; a folder's config.json, model.safetensors.index.json
  // or any *.safetensors file in it also opens it (a single .safetensors file loads only its
  // own tensors). Errors name the file and the problem.
  static Result<std::shared_ptr<ModelFile>> open(const std::string& path);
  static Result<std::shared_ptr<ModelFile>> open_gguf(const std::string& path);
  static Result<std::shared_ptr<ModelFile>> open_safetensors(const std::string& path);
  // Parse an in-memory GGUF image (copied); used by the fuzz tests.
  static Result<std::shared_ptr<ModelFile>> parse_gguf_bytes(const uint8_t* data, size_t size);
  // Parse one in-memory safetensors file (copied) with an optional config.json text.
  static Result<std::shared_ptr<ModelFile>> parse_safetensors_bytes(const uint8_t* data,
                                                                    size_t size,
                                                                    const std::string& config_json);

  virtual ~ModelFile() = default;

  FileFormat format() const { return format_; }
  const std::string& path() const { return path_; }
  // Folder holding the file(s); Hugging Face tokenizer.json etc. are looked up here.
  const std::string& dir() const { return dir_; }
  uint32_t gguf_version() const { return gguf_version_; }  // 0 for safetensors

  // GGUF: the file's key/value pairs (u8..u64 -> UInt, i8..i64 -> Int, f32/f64 -> Float).
  // Safetensors: config.json flattened, keys prefixed "hf." with nested objects joined by "."
  // (e.g. "hf.rope_scaling.factor"); JSON integers are Int (UInt only above INT64_MAX); null
  // members are left out; an object or null inside an array is kept as its JSON text. The
  // safetensors header's "__metadata__" strings appear as "safetensors.<key>".
  const std::map<std::string, MetaValue>& metadata() const { return metadata_; }
  const MetaValue* find(const std::string& key) const;
  // Typed getters: an error names the key and what was wrong (missing, wrong type). get_int
  // takes Int and UInt (up to INT64_MAX); get_float any number but Bool; the *_or forms return
  // the fallback when the key is missing or has the wrong type.
  Result<int64_t> get_int(const std::string& key) const;
  Result<double> get_float(const std::string& key) const;
  Result<std::string> get_string(const std::string& key) const;
  Result<bool> get_bool(const std::string& key) const;
  Result<std::vector<std::string>> get_string_array(const std::string& key) const;
  Result<std::vector<double>> get_float_array(const std::string& key) const;
  Result<std::vector<int64_t>> get_int_array(const std::string& key) const;
  int64_t get_int_or(const std::string& key, int64_t fallback) const;
  double get_float_or(const std::string& key, double fallback) const;
  std::string get_string_or(const std::string& key, const std::string& fallback) const;
  bool get_bool_or(const std::string& key, bool fallback) const;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* tensor(const std::string& name) const;  // nullptr if absent
  uint64_t total_tensor_bytes() const;

 protected:
  ModelFile() = default;
  FileFormat format_ = FileFormat::Gguf;
  std::string path_, dir_;
  uint32_t gguf_version_ = 0;
  std::map<std::string, MetaValue> metadata_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

}  // namespace dspark
