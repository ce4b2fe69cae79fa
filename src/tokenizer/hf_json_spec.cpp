// TokenizerSpec from a Hugging Face tokenizer.json, with BOS/EOS rules from the
// tokenizer_config.json / config.json / generation_config.json beside it.
#include <fstream>
#include <sstream>

#include "hf_json_parts.h"
#include "loaders.h"

namespace dspark::tok {

namespace {

using nlohmann::json;

bool bool_or(const json& j, const char* key, bool fallback) {
  return j.contains(key) && j[key].is_boolean() ? j[key].get<bool>() : fallback;
}

// A side file as JSON; null when absent or unreadable (side files are optional).
json read_side_json(const std::string& dir, const char* name) {
  if (dir.empty()) return json();
  std::ifstream in(dir + "/" + name, std::ios::binary);
  if (!in) return json();
  std::ostringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
}

// tokenizer_config.json names special tokens as strings or as {"content": ...} objects.
std::string token_name(const json& config, const char* key) {
  if (!config.is_object() || !config.contains(key)) return "";
  const json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) {
    return v["content"].get<std::string>();
  }
  return "";
}

// config.json / generation_config.json give ids as an integer or a list of integers.
std::vector<int32_t> ids_of(const json& config, const char* key) {
  std::vector<int32_t> ids;
  if (!config.is_object() || !config.contains(key)) return ids;
  const json& v = config[key];
  if (v.is_number_integer()) ids.push_back(v.get<int32_t>());
  if (v.is_array()) {
    for (const json& x : v) {
      if (x.is_number_integer()) ids.push_back(x.get<int32_t>());
    }
  }
  return ids;
}

Status parse_model(const json& model, TokenizerSpec* spec, StringIdMap* vocab_ids) {
  if (!model.is_object()) return Error{"tokenizer.json: no model"};
  const std::string type =
      model.contains("type") && model["type"].is_string() ? model["type"].get<std::string>() : "";
  if (type != "BPE" && !(type.empty() && model.contains("merges"))) {
    return Error{"tokenizer.json: unsupported model type '" + type + "' (only BPE)"};
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(key) && model[key].is_string() && !model[key].get<std::string>().empty()) {
      return Error{std::string("tokenizer.json: BPE ") + key + " is unsupported"};
    }
  }
  if (model.contains("dropout") && model["dropout"].is_number() &&
      model["dropout"].get<double>() > 0) {
    return Error{"tokenizer.json: BPE dropout is unsupported"};
  }
  if (!model.contains("vocab") || !model["vocab"].is_object()) {
    return Error{"tokenizer.json: model.vocab is missing"};
  }
  for (const auto& [token, id] : model["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= INT32_MAX) {
      return Error{"tokenizer.json: bad id for vocab token '" + token + "'"};
    }
    vocab_ids->emplace(token, id.get<int32_t>());
  }
  if (model.contains("merges") && model["merges"].is_array()) {
    for (const json& m : model["merges"]) {
      if (m.is_string()) {  // "left right"
        const std::string s = m.get<std::string>();
        const size_t space = s.find(' ');
        if (space == std::string::npos) return Error{"tokenizer.json: malformed merge '" + s + "'"};
        spec->merges.emplace_back(s.substr(0, space), s.substr(space + 1));
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        spec->merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      } else {
        return Error{"tokenizer.json: malformed merge " + m.dump()};
      }
    }
  }
  spec->bpe.byte_fallback = bool_or(model, "byte_fallback", false);
  spec->bpe.fuse_unk = bool_or(model, "fuse_unk", false);
  spec->bpe.ignore_merges = bool_or(model, "ignore_merges", false);
  if (model.contains("unk_token") && model["unk_token"].is_string()) {
    const auto it = vocab_ids->find(model["unk_token"].get<std::string>());
    if (it != vocab_ids->end()) spec->bpe.unk_id = it->second;
  }
  return Status::Ok();
}

Status parse_added_tokens(const json& list, TokenizerSpec* spec) {
  if (list.is_null()) return Status::Ok();
  if (!list.is_array()) return Error{"tokenizer.json: added_tokens is not a list"};
  for (const json& t : list) {
    if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() ||
        !t.contains("content") || !t["content"].is_string() || t["id"].get<int64_t>() < 0 ||
        t["id"].get<int64_t>() >= INT32_MAX) {
      return Error{"tokenizer.json: malformed added token " + t.dump()};
    }
    AddedToken a;
    a.id = t["id"].get<int32_t>();
    a.content = t["content"].get<std::string>();
    a.special = bool_or(t, "special", false);
    a.lstrip = bool_or(t, "lstrip", false);
    a.rstrip = bool_or(t, "rstrip", false);
    a.normalized = bool_or(t, "normalized", !a.special);
    a.single_word = bool_or(t, "single_word", false);
    spec->added.push_back(std::move(a));
  }
  return Status::Ok();
}

// The vocabulary as an id-indexed table: model tokens plus added tokens.
Status fill_tokens(const StringIdMap& vocab_ids, TokenizerSpec* spec) {
  size_t n = 0;
  for (const auto& [token, id] : vocab_ids) n = std::max(n, static_cast<size_t>(id) + 1);
  for (const AddedToken& a : spec->added) n = std::max(n, static_cast<size_t>(a.id) + 1);
  if (n == 0) return Error{"tokenizer.json: the vocabulary is empty"};
  spec->tokens.assign(n, "");
  spec->in_model.assign(n, false);
  for (const auto& [token, id] : vocab_ids) {
    spec->tokens[id] = token;
    spec->in_model[id] = true;
  }
  for (const AddedToken& a : spec->added) spec->tokens[a.id] = a.content;
  return Status::Ok();
}

void apply_side_files(const std::string& dir, const StringIdMap& names, TokenizerSpec* spec) {
  auto id_of = [&](const std::string& name) -> int32_t {
    const auto it = names.find(name);
    return name.empty() || it == names.end() ? -1 : it->second;
  };
  const json tok_config = read_side_json(dir, "tokenizer_config.json");
  const json config = read_side_json(dir, "config.json");
  const json gen_config = read_side_json(dir, "generation_config.json");
  const auto n = static_cast<int32_t>(spec->tokens.size());
  auto valid = [&](int32_t id) { return id >= 0 && id < n; };

  spec->bos_id = id_of(token_name(tok_config, "bos_token"));
  spec->eos_id = id_of(token_name(tok_config, "eos_token"));
  const std::vector<int32_t> cfg_bos = ids_of(config, "bos_token_id");
  const std::vector<int32_t> cfg_eos = ids_of(config, "eos_token_id");
  if (spec->bos_id < 0 && !cfg_bos.empty() && valid(cfg_bos[0])) spec->bos_id = cfg_bos[0];
  if (spec->eos_id < 0 && !cfg_eos.empty() && valid(cfg_eos[0])) spec->eos_id = cfg_eos[0];
  for (const json* j : {&config, &gen_config}) {
    for (int32_t id : ids_of(*j, "eos_token_id")) {
      if (valid(id)) spec->extra_stop_ids.push_back(id);
    }
  }
  // transformers rebuilds the post-processor from these flags when the config sets them.
  if (tok_config.is_object() && tok_config.contains("add_bos_token") &&
      tok_config["add_bos_token"].is_boolean()) {
    spec->prefix_ids.clear();
    if (tok_config["add_bos_token"].get<bool>() && spec->bos_id >= 0) {
      spec->prefix_ids.push_back(spec->bos_id);
    }
  }
  if (tok_config.is_object() && tok_config.contains("add_eos_token") &&
      tok_config["add_eos_token"].is_boolean()) {
    spec->suffix_ids.clear();
    if (tok_config["add_eos_token"].get<bool>() && spec->eos_id >= 0) {
      spec->suffix_ids.push_back(spec->eos_id);
    }
  }
}

Result<TokenizerSpec> parse(const std::string& json_text, const std::string& dir) {
  const json root = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded() || !root.is_object()) {
    return Error{"tokenizer.json: not a valid JSON object"};
  }
  static const json kNull;
  auto get = [&](const char* key) -> const json& {
    const auto it = root.find(key);
    return it == root.end() ? kNull : *it;
  };
  TokenizerSpec spec;
  StringIdMap vocab_ids;
  DSPARK_RETURN_IF_ERROR(parse_model(get("model"), &spec, &vocab_ids));
  DSPARK_RETURN_IF_ERROR(parse_added_tokens(get("added_tokens"), &spec));
  DSPARK_RETURN_IF_ERROR(fill_tokens(vocab_ids, &spec));
  DSPARK_RETURN_IF_ERROR(parse_normalizer(get("normalizer"), &spec.normalizers));
  bool byte_level = false;
  DSPARK_RETURN_IF_ERROR(
      parse_pre_tokenizer(get("pre_tokenizer"), &spec.pre_tokenizers, &byte_level));
  DSPARK_RETURN_IF_ERROR(parse_decoder(get("decoder"), &spec.decode));
  spec.bpe.byte_level = byte_level;
  spec.decode.byte_level = spec.decode.byte_level || byte_level;
  spec.kind = byte_level ? TokenizerKind::ByteLevelBpe : TokenizerKind::SentencePieceBpe;

  StringIdMap names = vocab_ids;
  for (const AddedToken& a : spec.added) names.emplace(a.content, a.id);
  PostProcessor post;
  DSPARK_RETURN_IF_ERROR(parse_post_processor(
      get("post_processor"),
      [&](const std::string& name) {
        const auto it = names.find(name);
        return it == names.end() ? -1 : it->second;
      },
      &post));
  spec.prefix_ids = std::move(post.prefix);
  spec.suffix_ids = std::move(post.suffix);
  apply_side_files(dir, names, &spec);
  return spec;
}

}  // namespace

Result<TokenizerSpec> spec_from_hf_json(const std::string& json_text, const std::string& dir) {
  // Every access above checks types first; this catch is the backstop that keeps a malformed
  // file an error value rather than a crash.
  try {
    return parse(json_text, dir);
  } catch (const nlohmann::json::exception& e) {
    return Error{std::string("tokenizer.json: ") + e.what()};
  }
}

}  // namespace dspark::tok
