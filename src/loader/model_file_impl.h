// The concrete ModelFile the parsers fill in: it exposes setters for ModelFile's protected state
// and keeps the storages that tensor data points into alive.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "dspark/loader.h"
#include "storage.h"

namespace dspark::loader {

class ModelFileImpl final : public ModelFile {
 public:
  explicit ModelFileImpl(FileFormat format) { format_ = format; }

  void set_location(std::string path, std::string dir) {
    path_ = std::move(path);
    dir_ = std::move(dir);
  }
  void set_gguf_version(uint32_t version) { gguf_version_ = version; }
  std::map<std::string, MetaValue>& mutable_metadata() { return metadata_; }
  // Fails on a name that is already present.
  Status add_tensor(TensorInfo tensor);
  void keep(std::shared_ptr<const Storage> storage) { storages_.push_back(std::move(storage)); }

 private:
  std::vector<std::shared_ptr<const Storage>> storages_;
};

// GGUF image in `storage` (the whole file). Errors name the problem, not the file.
Result<std::shared_ptr<ModelFile>> parse_gguf(std::shared_ptr<const Storage> storage,
                                              std::string path, std::string dir);

// Tensors of one safetensors file, ordered by data offset, pointing into `storage`. Header
// "__metadata__" strings go to `header_metadata`.
Result<std::vector<TensorInfo>> parse_safetensors_tensors(
    const Storage& storage, std::map<std::string, std::string>* header_metadata);

// config.json text flattened into `out` as "hf.<key>" entries.
Status flatten_config_json(const std::string& text, std::map<std::string, MetaValue>* out);

}  // namespace dspark::loader
