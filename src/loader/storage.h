// Read-only bytes that tensors point into: a memory-mapped file or an owned heap copy. A
// ModelFile keeps its storages alive, so tensor data pointers stay valid as long as it lives.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "dspark/status.h"

namespace dspark::loader {

class Storage {
 public:
  virtual ~Storage() = default;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 protected:
  const uint8_t* data_ = nullptr;  // [size_]
  size_t size_ = 0;
};

// 'text' in single quotes, for error messages. (Built by appending: GCC 12 at -O3 warns
// falsely under -Wrestrict about "'" + temporary_string.)
inline std::string squote(std::string_view text) {
  std::string out(1, '\'');
  out.append(text);
  out.push_back('\'');
  return out;
}

// Maps the whole file read-only (never copied). An empty file is an error.
Result<std::shared_ptr<const Storage>> map_file(const std::string& path);
// Owns a 64-byte-aligned copy of [data, data+size).
std::shared_ptr<const Storage> copy_bytes(const uint8_t* data, size_t size);

}  // namespace dspark::loader
