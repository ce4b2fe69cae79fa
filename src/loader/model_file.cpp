// ModelFile entry points (format detection, GGUF opening) and the metadata/tensor accessors
// shared by both formats.
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "model_file_impl.h"

namespace dspark {

namespace {

const char* kind_name(MetaValue::Kind kind) {
  switch (kind) {
    case MetaValue::Kind::Bool:
      return "a bool";
    case MetaValue::Kind::Int:
      return "an integer";
    case MetaValue::Kind::UInt:
      return "an unsigned integer";
    case MetaValue::Kind::Float:
      return "a float";
    case MetaValue::Kind::String:
      return "a string";
    case MetaValue::Kind::Array:
      return "an array";
  }
  return "a value of unknown kind";
}

std::optional<int64_t> as_int(const MetaValue& v) {
  if (v.kind == MetaValue::Kind::Int) return v.i;
  if (v.kind == MetaValue::Kind::UInt && v.u <= static_cast<uint64_t>(INT64_MAX)) {
    return static_cast<int64_t>(v.u);
  }
  return std::nullopt;
}

std::optional<double> as_float(const MetaValue& v) {
  if (v.kind == MetaValue::Kind::Bool || v.kind == MetaValue::Kind::String ||
      v.kind == MetaValue::Kind::Array) {
    return std::nullopt;
  }
  return v.as_number();
}

Error missing(const std::string& key) {
  return Error{"metadata key '" + key + "' is missing"};
}

Error wrong_kind(const std::string& key, const MetaValue& v, const char* wanted) {
  return Error{"metadata key '" + key + "' is " + kind_name(v.kind) + ", not " + wanted};
}

// Reads an array whose elements all convert with `convert`.
template <class T, class Convert>
Result<std::vector<T>> get_array(const ModelFile& file, const std::string& key, const char* wanted,
                                 Convert convert) {
  const MetaValue* v = file.find(key);
  if (v == nullptr) return missing(key);
  if (v->kind != MetaValue::Kind::Array) return wrong_kind(key, *v, wanted);
  std::vector<T> out;
  out.reserve(v->array.size());
  for (size_t k = 0; k < v->array.size(); ++k) {
    std::optional<T> elem = convert(v->array[k]);
    if (!elem) {
      return Error{"metadata key '" + key + "': element " + std::to_string(k) + " is " +
                   kind_name(v->array[k].kind) + ", not " + wanted + " element"};
    }
    out.push_back(std::move(*elem));
  }
  return out;
}

}  // namespace

std::optional<double> MetaValue::as_number() const {
  switch (kind) {
    case Kind::Bool:
      return b ? 1.0 : 0.0;
    case Kind::Int:
      return static_cast<double>(i);
    case Kind::UInt:
      return static_cast<double>(u);
    case Kind::Float:
      return f;
    default:
      return std::nullopt;
  }
}

int64_t TensorInfo::n_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t TensorInfo::rows() const {
  int64_t n = 1;
  for (size_t k = 0; k + 1 < shape.size(); ++k) n *= shape[k];
  return n;
}

int64_t TensorInfo::cols() const {
  return shape.empty() ? 1 : shape.back();
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

Status loader::ModelFileImpl::add_tensor(TensorInfo tensor) {
  if (!tensor_index_.try_emplace(tensor.name, tensors_.size()).second) {
    return Error{"duplicate tensor name '" + tensor.name + "'"};
  }
  tensors_.push_back(std::move(tensor));
  return Status::Ok();
}

Result<std::shared_ptr<ModelFile>> ModelFile::open(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return open_safetensors(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{"cannot open '" + path + "': " + std::strerror(errno)};
  char magic[4] = {};
  in.read(magic, sizeof(magic));
  if (in.gcount() == 4 && std::string(magic, 4) == "GGUF") return open_gguf(path);
  const std::string ext = std::filesystem::path(path).extension().string();
  if (ext == ".safetensors" || ext == ".json") return open_safetensors(path);
  return Error{"'" + path +
               "' is neither a GGUF file (no GGUF magic) nor a Hugging Face folder or "
               ".safetensors file"};
}

Result<std::shared_ptr<ModelFile>> ModelFile::open_gguf(const std::string& path) {
  auto storage = loader::map_file(path);
  if (!storage.ok()) return storage.error();
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  auto file = loader::parse_gguf(std::move(*storage), path,
                                 parent.empty() ? std::string(1, '.') : parent.string());
  if (!file.ok()) return Error{loader::squote(path) + ": " + file.error().message};
  return file;
}

Result<std::shared_ptr<ModelFile>> ModelFile::parse_gguf_bytes(const uint8_t* data, size_t size) {
  return loader::parse_gguf(loader::copy_bytes(data, size), "", "");
}

const MetaValue* ModelFile::find(const std::string& key) const {
  const auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

Result<int64_t> ModelFile::get_int(const std::string& key) const {
  const MetaValue* v = find(key);
  if (v == nullptr) return missing(key);
  if (auto i = as_int(*v)) return *i;
  if (v->kind == MetaValue::Kind::UInt) {
    return Error{"metadata key '" + key + "' = " + std::to_string(v->u) + " does not fit int64"};
  }
  return wrong_kind(key, *v, "an integer");
}

Result<double> ModelFile::get_float(const std::string& key) const {
  const MetaValue* v = find(key);
  if (v == nullptr) return missing(key);
  if (auto f = as_float(*v)) return *f;
  return wrong_kind(key, *v, "a number");
}

Result<std::string> ModelFile::get_string(const std::string& key) const {
  const MetaValue* v = find(key);
  if (v == nullptr) return missing(key);
  if (v->kind != MetaValue::Kind::String) return wrong_kind(key, *v, "a string");
  return v->s;
}

Result<bool> ModelFile::get_bool(const std::string& key) const {
  const MetaValue* v = find(key);
  if (v == nullptr) return missing(key);
  if (v->kind != MetaValue::Kind::Bool) return wrong_kind(key, *v, "a bool");
  return v->b;
}

Result<std::vector<std::string>> ModelFile::get_string_array(const std::string& key) const {
  return get_array<std::string>(*this, key, "a string", [](const MetaValue& e) {
    return e.kind == MetaValue::Kind::String ? std::optional<std::string>(e.s) : std::nullopt;
  });
}

Result<std::vector<double>> ModelFile::get_float_array(const std::string& key) const {
  return get_array<double>(*this, key, "a number", as_float);
}

Result<std::vector<int64_t>> ModelFile::get_int_array(const std::string& key) const {
  return get_array<int64_t>(*this, key, "an integer", as_int);
}

int64_t ModelFile::get_int_or(const std::string& key, int64_t fallback) const {
  auto r = get_int(key);
  return r.ok() ? *r : fallback;
}

double ModelFile::get_float_or(const std::string& key, double fallback) const {
  auto r = get_float(key);
  return r.ok() ? *r : fallback;
}

std::string ModelFile::get_string_or(const std::string& key, const std::string& fallback) const {
  auto r = get_string(key);
  return r.ok() ? *r : fallback;
}

bool ModelFile::get_bool_or(const std::string& key, bool fallback) const {
  auto r = get_bool(key);
  return r.ok() ? *r : fallback;
}

const TensorInfo* ModelFile::tensor(const std::string& name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

uint64_t ModelFile::total_tensor_bytes() const {
  uint64_t total = 0;
  for (const TensorInfo& t : tensors_) total += t.n_bytes;
  return total;
}

}  // namespace dspark
