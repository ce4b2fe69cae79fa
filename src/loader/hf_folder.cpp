// Hugging Face folders: config.json plus model.safetensors, or model.safetensors.index.json and
// the shards it names (each shard mapped separately; the index and the shards must agree).
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "json_util.h"
#include "model_file_impl.h"

namespace dspark {

namespace {

namespace fs = std::filesystem;
using loader::ModelFileImpl;
using loader::squote;

constexpr uintmax_t kMaxJsonFileBytes = 64u << 20;  // config.json / index.json are small

Result<std::string> read_text_file(const fs::path& path) {
  std::error_code ec;
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) return Error{"cannot read '" + path.string() + "': " + ec.message()};
  if (size > kMaxJsonFileBytes) {
    return Error{squote(path.string()) + " is " + std::to_string(size) + " bytes, over the " +
                 std::to_string(kMaxJsonFileBytes) + "-byte limit for JSON files"};
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{"cannot open '" + path.string() + "': " + std::strerror(errno)};
  std::ostringstream text;
  text << in.rdbuf();
  if (!in && !in.eof()) return Error{"cannot read '" + path.string() + "'"};
  return text.str();
}

// Safetensors "__metadata__" strings become "safetensors.<key>"; the first shard's value wins.
void add_header_metadata(const std::map<std::string, std::string>& header_meta,
                         ModelFileImpl* file) {
  for (const auto& [key, value] : header_meta) {
    MetaValue v;
    v.kind = MetaValue::Kind::String;
    v.s = value;
    file->mutable_metadata().try_emplace("safetensors." + key, std::move(v));
  }
}

// Maps one shard and adds its tensors. With `expected`, the shard must hold exactly those names.
Status load_shard(const fs::path& path, const std::set<std::string>* expected,
                  ModelFileImpl* file) {
  const std::string where = squote(path.string()) + ": ";
  auto storage = loader::map_file(path.string());
  if (!storage.ok()) return storage.error();
  std::map<std::string, std::string> header_meta;
  auto tensors = loader::parse_safetensors_tensors(**storage, &header_meta);
  if (!tensors.ok()) return Error{where + tensors.error().message};
  add_header_metadata(header_meta, file);
  if (expected != nullptr) {
    std::set<std::string> found;
    for (const TensorInfo& t : *tensors) {
      if (expected->count(t.name) == 0) {
        return Error{where + "tensor '" + t.name +
                     "' is not mapped to this shard by model.safetensors.index.json"};
      }
      found.insert(t.name);
    }
    for (const std::string& name : *expected) {
      if (found.count(name) == 0) {
        return Error{where + "tensor '" + name +
                     "' is mapped here by model.safetensors.index.json but the shard lacks it"};
      }
    }
  }
  for (TensorInfo& t : *tensors) {
    Status added = file->add_tensor(std::move(t));
    if (!added.ok()) return Error{where + added.message()};
  }
  file->keep(std::move(*storage));
  return Status::Ok();
}

Status load_index(const fs::path& index_path, ModelFileImpl* file) {
  const std::string where = squote(index_path.string()) + ": ";
  auto text = read_text_file(index_path);
  if (!text.ok()) return text.error();
  auto index = loader::parse_json(*text, "safetensors index");
  if (!index.ok()) return Error{where + index.error().message};
  const auto map_it = index->is_object() ? index->find("weight_map") : index->end();
  if (map_it == index->end() || !map_it->is_object() || map_it->empty()) {
    return Error{where + "missing or empty \"weight_map\" object"};
  }
  std::map<std::string, std::set<std::string>> shards;  // shard file -> tensor names
  for (const auto& [name, shard] : map_it->items()) {
    if (!shard.is_string()) return Error{where + "weight_map entry '" + name + "' is not a string"};
    const auto& shard_name = shard.get_ref<const std::string&>();
    // A shard is a plain file name next to the index: no way out of the folder.
    if (shard_name.empty() || shard_name == "." || shard_name == ".." ||
        shard_name.find('/') != std::string::npos || shard_name.find('\0') != std::string::npos) {
      return Error{where + "shard name '" + shard_name + "' for tensor '" + name +
                   "' is not a plain file name"};
    }
    shards[shard_name].insert(name);
  }
  const fs::path dir = index_path.parent_path();
  for (const auto& [shard_name, names] : shards) {
    DSPARK_RETURN_IF_ERROR(load_shard(dir / shard_name, &names, file));
  }
  return Status::Ok();
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

Result<std::shared_ptr<ModelFile>> ModelFile::open_safetensors(const std::string& path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) return Error{"'" + path + "' does not exist"};
  const bool is_dir = fs::is_directory(st);
  if (!is_dir && !fs::is_regular_file(st)) {
    return Error{"'" + path + "' is neither a folder nor a regular file"};
  }
  fs::path dir = is_dir ? fs::path(path) : fs::path(path).parent_path();
  if (dir.empty()) dir = ".";
  // config.json names its folder.
  if (!is_dir && fs::path(path).filename() == "config.json") return open_safetensors(dir.string());

  auto file = std::make_shared<ModelFileImpl>(FileFormat::Safetensors);
  const fs::path config = dir / "config.json";
  if (fs::exists(config, ec)) {
    auto text = read_text_file(config);
    if (!text.ok()) return text.error();
    Status parsed = loader::flatten_config_json(*text, &file->mutable_metadata());
    if (!parsed.ok()) return Error{"'" + config.string() + "': " + parsed.message()};
  } else if (is_dir) {
    return Error{"no config.json in '" + dir.string() + "'"};
  }

  if (!is_dir) {
    DSPARK_RETURN_IF_ERROR(ends_with(path, ".json") ? load_index(path, file.get())
                                                    : load_shard(path, nullptr, file.get()));
  } else if (fs::exists(dir / "model.safetensors.index.json", ec)) {
    DSPARK_RETURN_IF_ERROR(load_index(dir / "model.safetensors.index.json", file.get()));
  } else if (fs::exists(dir / "model.safetensors", ec)) {
    DSPARK_RETURN_IF_ERROR(load_shard(dir / "model.safetensors", nullptr, file.get()));
  } else {
    return Error{"no model.safetensors or model.safetensors.index.json in '" + dir.string() + "'"};
  }
  file->set_location(path, dir.string());
  return std::shared_ptr<ModelFile>(std::move(file));
}

Result<std::shared_ptr<ModelFile>> ModelFile::parse_safetensors_bytes(
    const uint8_t* data, size_t size, const std::string& config_json) {
  auto file = std::make_shared<ModelFileImpl>(FileFormat::Safetensors);
  if (!config_json.empty()) {
    DSPARK_RETURN_IF_ERROR(loader::flatten_config_json(config_json, &file->mutable_metadata()));
  }
  auto storage = loader::copy_bytes(data, size);
  std::map<std::string, std::string> header_meta;
  auto tensors = loader::parse_safetensors_tensors(*storage, &header_meta);
  if (!tensors.ok()) return tensors.error();
  add_header_metadata(header_meta, file.get());
  for (TensorInfo& t : *tensors) DSPARK_RETURN_IF_ERROR(file->add_tensor(std::move(t)));
  file->keep(std::move(storage));
  return std::shared_ptr<ModelFile>(std::move(file));
}

}  // namespace dspark
