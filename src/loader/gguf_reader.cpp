// GGUF v2/v3 parser over a read-only byte range. Every count, length and offset is checked
// against the bytes that remain before anything is allocated or dereferenced.
#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

#include "model_file_impl.h"

namespace dspark::loader {

static_assert(std::endian::native == std::endian::little, "GGUF parsing assumes little endian");

namespace {

constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint64_t kDefaultAlignment = 32;
constexpr int kMaxDims = 4;
constexpr int kMaxArrayDepth = 8;
// All array elements of all metadata values together; an in-memory value is ~90 bytes, so this
// bounds the memory a hostile file can make us allocate (real vocabularies hold ~10^5..10^6).
constexpr uint64_t kMaxMetaElements = uint64_t{1} << 23;

// GGUF metadata value types.
enum ValueType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};

// Smallest encoding of one value of `type`: fixed-size scalars, a string's u64 length, an
// array's u32 type + u64 count. 0 for an unknown type.
uint64_t min_value_bytes(uint32_t type) {
  switch (type) {
    case kU8:
    case kI8:
    case kBool:
      return 1;
    case kU16:
    case kI16:
      return 2;
    case kU32:
    case kI32:
    case kF32:
      return 4;
    case kU64:
    case kI64:
    case kF64:
    case kString:
      return 8;
    case kArray:
      return 12;
    default:
      return 0;
  }
}

// Appends rather than writing "[" + ...: GCC 12 -O3 reports a false -Wrestrict on that form.
std::string range_text(uint64_t begin, uint64_t len) {
  std::string text = "[";
  text.append(std::to_string(begin)).append(", ").append(std::to_string(begin + len));
  return text.append(")");
}

class GgufParser {
 public:
  GgufParser(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  Status parse(ModelFileImpl* out);

 private:
  Status need(uint64_t n, const std::string& what) const {
    if (n > size_ - pos_) {
      return Error{"truncated: " + what + " at offset " + std::to_string(pos_) + " needs " +
                   std::to_string(n) + " bytes but the file ends at " + std::to_string(size_)};
    }
    return Status::Ok();
  }

  template <class T>
  Result<T> read(const std::string& what) {
    DSPARK_RETURN_IF_ERROR(need(sizeof(T), what));
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  Result<std::string> read_string(const std::string& what) {
    auto len = read<uint64_t>(what + " length");
    if (!len.ok()) return len.error();
    if (*len > size_ - pos_) {
      return Error{what + " length " + std::to_string(*len) + " at offset " +
                   std::to_string(pos_ - 8) + " extends past end of file (size " +
                   std::to_string(size_) + ")"};
    }
    std::string s(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(*len));
    pos_ += static_cast<size_t>(*len);
    return s;
  }

  Status read_value(uint32_t type, int depth, const std::string& key, MetaValue* out);
  Status read_array(int depth, const std::string& key, MetaValue* out);
  Status read_tensor_info(uint64_t index, TensorInfo* info, uint64_t* offset);

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  uint64_t meta_elements_ = 0;
};

Status GgufParser::read_value(uint32_t type, int depth, const std::string& key, MetaValue* out) {
  const std::string what = "value of '" + key + "'";
  auto set_uint = [&](auto r) -> Status {
    if (!r.ok()) return r.error();
    out->kind = MetaValue::Kind::UInt;
    out->u = *r;
    return Status::Ok();
  };
  auto set_int = [&](auto r) -> Status {
    if (!r.ok()) return r.error();
    out->kind = MetaValue::Kind::Int;
    out->i = *r;
    return Status::Ok();
  };
  auto set_float = [&](auto r) -> Status {
    if (!r.ok()) return r.error();
    out->kind = MetaValue::Kind::Float;
    out->f = *r;
    return Status::Ok();
  };
  switch (type) {
    case kU8:
      return set_uint(read<uint8_t>(what));
    case kI8:
      return set_int(read<int8_t>(what));
    case kU16:
      return set_uint(read<uint16_t>(what));
    case kI16:
      return set_int(read<int16_t>(what));
    case kU32:
      return set_uint(read<uint32_t>(what));
    case kI32:
      return set_int(read<int32_t>(what));
    case kU64:
      return set_uint(read<uint64_t>(what));
    case kI64:
      return set_int(read<int64_t>(what));
    case kF32:
      return set_float(read<float>(what));
    case kF64:
      return set_float(read<double>(what));
    case kBool: {
      auto r = read<uint8_t>(what);
      if (!r.ok()) return r.error();
      if (*r > 1) {
        return Error{"metadata '" + key + "': bool value " + std::to_string(*r) +
                     " is neither 0 nor 1"};
      }
      out->kind = MetaValue::Kind::Bool;
      out->b = *r == 1;
      return Status::Ok();
    }
    case kString: {
      auto r = read_string(what);
      if (!r.ok()) return r.error();
      out->kind = MetaValue::Kind::String;
      out->s = std::move(*r);
      return Status::Ok();
    }
    case kArray:
      return read_array(depth + 1, key, out);
    default:
      return Error{"metadata '" + key + "': unknown value type " + std::to_string(type)};
  }
}

Status GgufParser::read_array(int depth, const std::string& key, MetaValue* out) {
  if (depth > kMaxArrayDepth) {
    return Error{"metadata '" + key + "': arrays nested deeper than " +
                 std::to_string(kMaxArrayDepth)};
  }
  auto elem_type = read<uint32_t>("array type of '" + key + "'");
  if (!elem_type.ok()) return elem_type.error();
  auto count = read<uint64_t>("array length of '" + key + "'");
  if (!count.ok()) return count.error();
  const uint64_t min_bytes = min_value_bytes(*elem_type);
  if (min_bytes == 0) {
    return Error{"metadata '" + key + "': unknown array element type " +
                 std::to_string(*elem_type)};
  }
  if (*count > (size_ - pos_) / min_bytes) {
    return Error{"metadata '" + key + "': array of " + std::to_string(*count) +
                 " elements cannot fit in the " + std::to_string(size_ - pos_) +
                 " bytes left in the file"};
  }
  meta_elements_ += *count;
  if (meta_elements_ > kMaxMetaElements) {
    return Error{"metadata '" + key + "': arrays hold more than " +
                 std::to_string(kMaxMetaElements) + " elements in total"};
  }
  out->kind = MetaValue::Kind::Array;
  out->array.resize(static_cast<size_t>(*count));
  for (MetaValue& elem : out->array) {
    DSPARK_RETURN_IF_ERROR(read_value(*elem_type, depth, key, &elem));
  }
  return Status::Ok();
}

Status GgufParser::read_tensor_info(uint64_t index, TensorInfo* info, uint64_t* offset) {
  auto name = read_string("name of tensor " + std::to_string(index));
  if (!name.ok()) return name.error();
  if (name->empty()) return Error{"tensor " + std::to_string(index) + " has an empty name"};
  info->name = std::move(*name);
  const std::string who = "tensor '" + info->name + "'";
  auto n_dims = read<uint32_t>(who + " n_dims");
  if (!n_dims.ok()) return n_dims.error();
  if (*n_dims > kMaxDims) {
    return Error{who + ": n_dims " + std::to_string(*n_dims) + " exceeds " +
                 std::to_string(kMaxDims)};
  }
  // GGUF lists ne innermost first; TensorInfo wants outermost first.
  std::vector<int64_t> ne;
  uint64_t n_elems = 1;
  for (uint32_t d = 0; d < *n_dims; ++d) {
    auto dim = read<uint64_t>(who + " dimension " + std::to_string(d));
    if (!dim.ok()) return dim.error();
    if (*dim == 0 || *dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Error{who + ": dimension " + std::to_string(d) + " is " + std::to_string(*dim) +
                   " (must be in 1..2^63-1)"};
    }
    if (__builtin_mul_overflow(n_elems, *dim, &n_elems) ||
        n_elems > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Error{who + ": element count overflows"};
    }
    ne.push_back(static_cast<int64_t>(*dim));
  }
  info->shape.assign(ne.rbegin(), ne.rend());
  auto raw_type = read<uint32_t>(who + " type");
  if (!raw_type.ok()) return raw_type.error();
  const DTypeInfo* dt = dtype_info(*raw_type);
  if (dt == nullptr) {
    return Error{who + ": unknown or unsupported tensor type " + std::to_string(*raw_type)};
  }
  info->type = static_cast<DType>(*raw_type);
  const int64_t row_elems = ne.empty() ? 1 : ne[0];
  if (row_elems % dt->block_elems != 0) {
    return Error{who + ": row of " + std::to_string(row_elems) +
                 " elements is not a multiple of the " + dt->name + " block size " +
                 std::to_string(dt->block_elems)};
  }
  const uint64_t n_blocks = n_elems / static_cast<uint64_t>(dt->block_elems);
  if (__builtin_mul_overflow(n_blocks, static_cast<uint64_t>(dt->block_bytes), &info->n_bytes)) {
    return Error{who + ": byte size overflows"};
  }
  auto off = read<uint64_t>(who + " offset");
  if (!off.ok()) return off.error();
  *offset = *off;
  return Status::Ok();
}

Status GgufParser::parse(ModelFileImpl* out) {
  auto magic = read<uint32_t>("magic");
  if (!magic.ok() || *magic != kGgufMagic) return Error{"not a GGUF file (bad magic)"};
  auto version = read<uint32_t>("version");
  if (!version.ok()) return version.error();
  if (*version != 2 && *version != 3) {
    const uint32_t swapped = __builtin_bswap32(*version);
    if (swapped == 2 || swapped == 3) return Error{"big-endian GGUF files are not supported"};
    return Error{"unsupported GGUF version " + std::to_string(*version) + " (need 2 or 3)"};
  }
  out->set_gguf_version(*version);
  auto n_tensors = read<uint64_t>("tensor count");
  if (!n_tensors.ok()) return n_tensors.error();
  auto n_kv = read<uint64_t>("metadata count");
  if (!n_kv.ok()) return n_kv.error();
  // Smallest entries: a key/value is key length + type + 1 byte; a tensor info is name length +
  // n_dims + type + offset.
  const uint64_t left = size_ - pos_;
  if (*n_kv > left / 13 || *n_tensors > left / 24 || *n_kv * 13 + *n_tensors * 24 > left) {
    return Error{"header claims " + std::to_string(*n_kv) + " metadata entries and " +
                 std::to_string(*n_tensors) + " tensors, more than the " + std::to_string(left) +
                 " remaining bytes can hold"};
  }

  auto& meta = out->mutable_metadata();
  for (uint64_t k = 0; k < *n_kv; ++k) {
    auto key = read_string("key of metadata entry " + std::to_string(k));
    if (!key.ok()) return key.error();
    auto type = read<uint32_t>("type of '" + *key + "'");
    if (!type.ok()) return type.error();
    MetaValue value;
    DSPARK_RETURN_IF_ERROR(read_value(*type, 0, *key, &value));
    if (!meta.try_emplace(*key, std::move(value)).second) {
      return Error{"duplicate metadata key '" + *key + "'"};
    }
  }

  uint64_t alignment = kDefaultAlignment;
  if (const auto it = meta.find("general.alignment"); it != meta.end()) {
    const MetaValue& v = it->second;
    const bool is_uint = v.kind == MetaValue::Kind::UInt;
    const bool is_int = v.kind == MetaValue::Kind::Int && v.i > 0;
    alignment = is_uint ? v.u : is_int ? static_cast<uint64_t>(v.i) : 0;
    if (alignment == 0 || !std::has_single_bit(alignment) || alignment > (uint64_t{1} << 30)) {
      return Error{"general.alignment must be a power of two in 1..2^30"};
    }
  }

  std::vector<uint64_t> offsets(static_cast<size_t>(*n_tensors));
  std::vector<TensorInfo> infos(static_cast<size_t>(*n_tensors));
  for (uint64_t t = 0; t < *n_tensors; ++t) {
    DSPARK_RETURN_IF_ERROR(read_tensor_info(t, &infos[t], &offsets[t]));
  }

  // Tensor data starts at the next multiple of the alignment after the tensor infos.
  const uint64_t data_start = (pos_ + alignment - 1) / alignment * alignment;
  std::vector<size_t> order(infos.size());
  for (size_t t = 0; t < infos.size(); ++t) {
    const TensorInfo& info = infos[t];
    const uint64_t off = offsets[t];
    const std::string who = "tensor '" + info.name + "'";
    if (off % alignment != 0) {
      return Error{who + ": data offset " + std::to_string(off) + " is not a multiple of the " +
                   "alignment " + std::to_string(alignment)};
    }
    if (data_start > size_ || off > size_ - data_start || info.n_bytes > size_ - data_start - off) {
      return Error{who + ": data " + range_text(data_start + off, info.n_bytes) +
                   " extends past end of file (size " + std::to_string(size_) + ")"};
    }
    infos[t].data = data_ + data_start + off;
    order[t] = t;
  }
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return offsets[a] < offsets[b]; });
  for (size_t k = 1; k < order.size(); ++k) {
    const size_t a = order[k - 1], b = order[k];
    if (offsets[a] + infos[a].n_bytes > offsets[b]) {
      return Error{"tensors '" + infos[a].name + "' " +
                   range_text(data_start + offsets[a], infos[a].n_bytes) + " and '" +
                   infos[b].name + "' " + range_text(data_start + offsets[b], infos[b].n_bytes) +
                   " overlap"};
    }
  }
  for (TensorInfo& info : infos) DSPARK_RETURN_IF_ERROR(out->add_tensor(std::move(info)));
  return Status::Ok();
}

}  // namespace

Result<std::shared_ptr<ModelFile>> parse_gguf(std::shared_ptr<const Storage> storage,
                                              std::string path, std::string dir) {
  auto file = std::make_shared<ModelFileImpl>(FileFormat::Gguf);
  GgufParser parser(storage->data(), storage->size());
  DSPARK_RETURN_IF_ERROR(parser.parse(file.get()));
  file->set_location(std::move(path), std::move(dir));
  file->keep(std::move(storage));
  return std::shared_ptr<ModelFile>(std::move(file));
}

}  // namespace dspark::loader
