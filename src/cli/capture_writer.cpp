// dspark capture: shard files and meta.json (see capture.h).
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "capture.h"

namespace dspark::cli::capture {

namespace {

using nlohmann::json;

// The streamed files of a shard, in ShardWriter::files_ order (offsets are written at flush).
enum FileIndex { kTokens, kMask, kFeatures, kTopkIds, kTopkProbs, kNumStreamed };
const char* const kSuffix[kNumStreamed] = {".tokens.i32", ".mask.u8", ".features.f16",
                                           ".topk_ids.i32", ".topk_probs.f16"};
const char* const kOffsetsSuffix = ".offsets.i64";

Status rename_file(const std::string& from, const std::string& to) {
  std::error_code ec;
  std::filesystem::rename(from, to, ec);
  if (ec) return Error{"cannot rename '" + from + "' to '" + to + "': " + ec.message()};
  return Status::Ok();
}

// Writes text to path through path.tmp and a rename, so readers never see a partial file.
Status write_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return Error{"cannot create '" + tmp + "': " + std::strerror(errno)};
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (std::fclose(f) != 0 || !ok) return Error{"cannot write '" + tmp + "'"};
  return rename_file(tmp, path);
}

}  // namespace

std::string CaptureMeta::to_json() const {
  json shard_list = json::array();
  for (const ShardInfo& s : shards) {
    shard_list.push_back({{"name", s.name}, {"n_seqs", s.n_seqs}, {"n_tokens", s.n_tokens}});
  }
  const json j = {{"version", 1},
                  {"model", model},
                  {"model_name", model_name},
                  {"arch", arch},
                  {"n_layers", n_layers},
                  {"d_model", d_model},
                  {"vocab_size", vocab_size},
                  {"target_layer_ids", target_layer_ids},
                  {"top_k", top_k},
                  {"max_len", max_len},
                  {"feature_dtype", "f16"},
                  {"samples_done", samples_done},
                  {"shards", shard_list}};
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

Result<std::optional<CaptureMeta>> CaptureMeta::read(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::optional<CaptureMeta>();
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in) return Error{"cannot read '" + path + "'"};
  const json j = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  const std::string bad = "'" + path + "' is not a dspark capture meta.json";
  if (!j.is_object()) return Error{bad};
  CaptureMeta m;
  try {
    if (j.at("version").get<int64_t>() != 1) return Error{bad + " of version 1"};
    m.model = j.at("model").get<std::string>();
    m.model_name = j.value("model_name", "");
    m.arch = j.value("arch", "");
    m.n_layers = j.at("n_layers").get<int64_t>();
    m.d_model = j.at("d_model").get<int64_t>();
    m.vocab_size = j.at("vocab_size").get<int64_t>();
    m.target_layer_ids = j.at("target_layer_ids").get<std::vector<int32_t>>();
    m.top_k = j.at("top_k").get<int64_t>();
    m.max_len = j.at("max_len").get<int64_t>();
    m.samples_done = j.at("samples_done").get<int64_t>();
    for (const json& s : j.at("shards")) {
      m.shards.push_back(ShardInfo{s.at("name").get<std::string>(), s.at("n_seqs").get<int64_t>(),
                                   s.at("n_tokens").get<int64_t>()});
    }
  } catch (const json::exception& e) {
    return Error{bad + ": " + e.what()};
  }
  return std::optional<CaptureMeta>(std::move(m));
}

Status CaptureMeta::check_resumable(const CaptureMeta& existing, const CaptureMeta& wanted) {
  std::string diff;
  auto ids = [](const std::vector<int32_t>& v) { return json(v).dump(); };
  if (existing.model != wanted.model) diff = "model '" + existing.model + "'";
  if (existing.target_layer_ids != wanted.target_layer_ids) {
    diff = "target_layer_ids " + ids(existing.target_layer_ids);
  }
  if (existing.top_k != wanted.top_k) diff = "top_k " + std::to_string(existing.top_k);
  if (existing.max_len != wanted.max_len) diff = "max_len " + std::to_string(existing.max_len);
  if (diff.empty() &&
      (existing.d_model != wanted.d_model || existing.vocab_size != wanted.vocab_size ||
       existing.n_layers != wanted.n_layers)) {
    diff = "a model of another shape";
  }
  if (diff.empty()) return Status::Ok();
  return Error{"the output folder holds a capture made with " + diff +
               ", which differs from this run's settings; give a new --output (or the same "
               "settings to resume it)"};
}

ShardWriter::ShardWriter(std::string dir, CaptureMeta meta)
    : dir_(std::move(dir)), meta_(std::move(meta)) {}

ShardWriter::~ShardWriter() {
  for (std::FILE* f : files_) std::fclose(f);  // an unfinished shard stays unlisted
}

std::string ShardWriter::shard_path(const std::string& suffix) const {
  char name[32];
  std::snprintf(name, sizeof name, "shard-%05zu", meta_.shards.size());
  return dir_ + "/" + name + suffix;
}

Status ShardWriter::open_shard() {
  for (const char* suffix : kSuffix) {
    const std::string path = shard_path(std::string(suffix) + ".tmp");
    std::FILE* f = std::fopen(path.c_str(), "wb");  // truncates a killed run's leftovers
    if (!f) return Error{"cannot create '" + path + "': " + std::strerror(errno)};
    files_.push_back(f);
  }
  pending_ = ShardInfo{};
  offsets_.assign(1, 0);
  return Status::Ok();
}

Status ShardWriter::write(int which, const void* data, size_t bytes) {
  if (files_.empty()) DSPARK_RETURN_IF_ERROR(open_shard());
  if (bytes > 0 && std::fwrite(data, 1, bytes, files_[size_t(which)]) != bytes) {
    return Error{"cannot write '" + shard_path(std::string(kSuffix[which]) + ".tmp") +
                 "': " + std::strerror(errno)};
  }
  bytes_ += bytes;
  return Status::Ok();
}

Status ShardWriter::write_rows(const std::vector<uint16_t>& features,
                               const std::vector<int32_t>& topk_ids,
                               const std::vector<uint16_t>& topk_probs) {
  DSPARK_RETURN_IF_ERROR(write(kFeatures, features.data(), features.size() * 2));
  DSPARK_RETURN_IF_ERROR(write(kTopkIds, topk_ids.data(), topk_ids.size() * 4));
  return write(kTopkProbs, topk_probs.data(), topk_probs.size() * 2);
}

Status ShardWriter::end_sequence(const std::vector<int32_t>& tokens,
                                 const std::vector<uint8_t>& mask) {
  DSPARK_RETURN_IF_ERROR(write(kTokens, tokens.data(), tokens.size() * 4));
  DSPARK_RETURN_IF_ERROR(write(kMask, mask.data(), mask.size()));
  pending_.n_seqs += 1;
  pending_.n_tokens += int64_t(tokens.size());
  offsets_.push_back(pending_.n_tokens);
  return Status::Ok();
}

Status ShardWriter::flush(int64_t samples_done) {
  if (!files_.empty() && pending_.n_seqs > 0) {
    bool ok = true;
    for (std::FILE* f : files_) ok = std::fclose(f) == 0 && ok;
    files_.clear();
    if (!ok) return Error{"cannot finish writing shard files in '" + dir_ + "'"};
    const std::string offsets = shard_path(std::string(kOffsetsSuffix) + ".tmp");
    std::FILE* f = std::fopen(offsets.c_str(), "wb");
    if (!f) return Error{"cannot create '" + offsets + "': " + std::strerror(errno)};
    const size_t n = offsets_.size();
    ok = std::fwrite(offsets_.data(), sizeof(int64_t), n, f) == n;
    if (std::fclose(f) != 0 || !ok) return Error{"cannot write '" + offsets + "'"};
    bytes_ += n * sizeof(int64_t);
    for (const char* suffix : kSuffix) {
      DSPARK_RETURN_IF_ERROR(
          rename_file(shard_path(std::string(suffix) + ".tmp"), shard_path(suffix)));
    }
    DSPARK_RETURN_IF_ERROR(rename_file(offsets, shard_path(kOffsetsSuffix)));
    pending_.name = shard_path("").substr(dir_.size() + 1);
    meta_.shards.push_back(pending_);
    pending_ = ShardInfo{};
  }
  meta_.samples_done = samples_done;
  return write_meta();
}

Status ShardWriter::write_meta() {
  return write_atomically(dir_ + "/meta.json", meta_.to_json());
}

}  // namespace dspark::cli::capture
