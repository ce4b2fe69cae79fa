#include "hf_json_parts.h"

#include <functional>

namespace dspark::tok {

namespace {

using nlohmann::json;

std::string type_of(const json& j) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) return "";
  return j["type"].get<std::string>();
}

bool bool_or(const json& j, const char* key, bool fallback) {
  return j.contains(key) && j[key].is_boolean() ? j[key].get<bool>() : fallback;
}

// A {"String": s} or {"Regex": r} pattern object.
Status parse_pattern(const json& j, std::string* pattern, bool* literal) {
  if (j.is_object() && j.contains("String") && j["String"].is_string()) {
    *pattern = j["String"].get<std::string>();
    *literal = true;
    return Status::Ok();
  }
  if (j.is_object() && j.contains("Regex") && j["Regex"].is_string()) {
    *pattern = j["Regex"].get<std::string>();
    *literal = false;
    return Status::Ok();
  }
  return Error{"tokenizer.json: a pattern must be {\"String\": ...} or {\"Regex\": ...}"};
}

Result<SplitBehavior> parse_behavior(const json& j) {
  const std::string b = j.is_string() ? j.get<std::string>() : "";
  if (b == "Removed") return SplitBehavior::Removed;
  if (b == "Isolated") return SplitBehavior::Isolated;
  if (b == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (b == "Contiguous") return SplitBehavior::Contiguous;
  return Error{"tokenizer.json: unknown Split behavior '" + b + "'"};
}

// Metaspace's prepend rule: "prepend_scheme" in current files, "add_prefix_space" in old ones.
PreTokenizerStep::Prepend parse_prepend(const json& j) {
  if (j.contains("prepend_scheme") && j["prepend_scheme"].is_string()) {
    const std::string s = j["prepend_scheme"].get<std::string>();
    if (s == "first") return PreTokenizerStep::Prepend::First;
    if (s == "never") return PreTokenizerStep::Prepend::Never;
    return PreTokenizerStep::Prepend::Always;
  }
  return bool_or(j, "add_prefix_space", true) ? PreTokenizerStep::Prepend::Always
                                              : PreTokenizerStep::Prepend::Never;
}

std::string replacement_of(const json& j) {
  if (j.contains("replacement") && j["replacement"].is_string()) {
    return j["replacement"].get<std::string>();
  }
  return "\xE2\x96\x81";  // U+2581, the default
}

Status push(Result<PreTokenizerStep> step, std::vector<PreTokenizerStep>* out) {
  if (!step.ok()) return step.error();
  out->push_back(std::move(step).value());
  return Status::Ok();
}

}  // namespace

Status parse_normalizer(const json& j, std::vector<NormalizerStep>* out) {
  if (j.is_null()) return Status::Ok();
  const std::string type = type_of(j);
  if (type == "Sequence" && j.contains("normalizers") && j["normalizers"].is_array()) {
    for (const json& part : j["normalizers"]) DSPARK_RETURN_IF_ERROR(parse_normalizer(part, out));
    return Status::Ok();
  }
  if (type == "NFC") {
    out->push_back({NormalizerStep::Kind::Nfc, "", ""});
    return Status::Ok();
  }
  if (type == "Prepend" && j.contains("prepend") && j["prepend"].is_string()) {
    out->push_back({NormalizerStep::Kind::Prepend, j["prepend"].get<std::string>(), ""});
    return Status::Ok();
  }
  if (type == "Replace" && j.contains("pattern") && j.contains("content") &&
      j["content"].is_string()) {
    std::string pattern;
    bool literal = false;
    DSPARK_RETURN_IF_ERROR(parse_pattern(j["pattern"], &pattern, &literal));
    if (!literal) return Error{"tokenizer.json: Replace normalizer with a Regex is unsupported"};
    out->push_back({NormalizerStep::Kind::Replace, pattern, j["content"].get<std::string>()});
    return Status::Ok();
  }
  return Error{"tokenizer.json: unsupported normalizer '" + (type.empty() ? j.dump() : type) + "'"};
}

Status parse_pre_tokenizer(const json& j, std::vector<PreTokenizerStep>* out,
                           bool* has_byte_level) {
  if (j.is_null()) return Status::Ok();
  const std::string type = type_of(j);
  if (type == "Sequence" && j.contains("pretokenizers") && j["pretokenizers"].is_array()) {
    for (const json& part : j["pretokenizers"]) {
      DSPARK_RETURN_IF_ERROR(parse_pre_tokenizer(part, out, has_byte_level));
    }
    return Status::Ok();
  }
  if (type == "ByteLevel") {
    *has_byte_level = true;
    return push(
        make_byte_level_step(bool_or(j, "add_prefix_space", true), bool_or(j, "use_regex", true)),
        out);
  }
  if (type == "Split" && j.contains("pattern")) {
    std::string pattern;
    bool literal = false;
    DSPARK_RETURN_IF_ERROR(parse_pattern(j["pattern"], &pattern, &literal));
    auto behavior = parse_behavior(j.contains("behavior") ? j["behavior"] : json());
    if (!behavior.ok()) return behavior.error();
    return push(make_split_step(pattern, literal, behavior.value(), bool_or(j, "invert", false)),
                out);
  }
  if (type == "Digits") return push(make_digits_step(bool_or(j, "individual_digits", false)), out);
  if (type == "Punctuation") {
    auto behavior = j.contains("behavior") ? parse_behavior(j["behavior"])
                                           : Result<SplitBehavior>(SplitBehavior::Isolated);
    if (!behavior.ok()) return behavior.error();
    return push(make_punctuation_step(behavior.value()), out);
  }
  if (type == "Metaspace") {
    return push(make_metaspace_step(replacement_of(j), parse_prepend(j), bool_or(j, "split", true)),
                out);
  }
  return Error{"tokenizer.json: unsupported pre_tokenizer '" + (type.empty() ? j.dump() : type) +
               "'"};
}

Status parse_decoder(const json& j, DecodeOptions* out) {
  if (j.is_null()) return Status::Ok();
  const std::string type = type_of(j);
  if (type == "Sequence" && j.contains("decoders") && j["decoders"].is_array()) {
    for (const json& part : j["decoders"]) DSPARK_RETURN_IF_ERROR(parse_decoder(part, out));
    return Status::Ok();
  }
  if (type == "ByteLevel") {
    out->byte_level = true;
    return Status::Ok();
  }
  if (type == "ByteFallback") {
    out->byte_tokens = true;
    return Status::Ok();
  }
  if (type == "Fuse") return Status::Ok();  // joining token strings is what decode does anyway
  if (type == "Replace" && j.contains("pattern") && j.contains("content") &&
      j["content"].is_string()) {
    std::string pattern;
    bool literal = false;
    DSPARK_RETURN_IF_ERROR(parse_pattern(j["pattern"], &pattern, &literal));
    if (!literal || j["content"].get<std::string>() != " ") {
      return Error{"tokenizer.json: only Replace(<marker> -> \" \") decoders are supported"};
    }
    out->space_marker = pattern;
    return Status::Ok();
  }
  if (type == "Strip") {
    const bool space =
        j.contains("content") && j["content"].is_string() && j["content"].get<std::string>() == " ";
    const bool end_zero = !j.contains("stop") || (j["stop"].is_number_integer() && j["stop"] == 0);
    if (!space || !end_zero || !j.contains("start") || !j["start"].is_number_integer()) {
      return Error{"tokenizer.json: only Strip(\" \", start=n, stop=0) decoders are supported"};
    }
    out->strip_leading_spaces = j["start"].get<int>();
    return Status::Ok();
  }
  if (type == "Metaspace") {
    out->space_marker = replacement_of(j);
    if (parse_prepend(j) != PreTokenizerStep::Prepend::Never) out->strip_leading_spaces = 1;
    return Status::Ok();
  }
  return Error{"tokenizer.json: unsupported decoder '" + (type.empty() ? j.dump() : type) + "'"};
}

Status parse_post_processor(const json& j,
                            const std::function<int32_t(const std::string&)>& token_id,
                            PostProcessor* out) {
  if (j.is_null()) return Status::Ok();
  const std::string type = type_of(j);
  if (type == "Sequence" && j.contains("processors") && j["processors"].is_array()) {
    for (const json& part : j["processors"]) {
      DSPARK_RETURN_IF_ERROR(parse_post_processor(part, token_id, out));
    }
    return Status::Ok();
  }
  if (type == "ByteLevel") return Status::Ok();  // only adjusts offsets
  if (type == "TemplateProcessing" && j.contains("single") && j["single"].is_array()) {
    out->prefix.clear();
    out->suffix.clear();
    bool seen_sequence = false;
    for (const json& item : j["single"]) {
      if (item.contains("Sequence")) {
        seen_sequence = true;
        continue;
      }
      if (!item.contains("SpecialToken") || !item["SpecialToken"].contains("id") ||
          !item["SpecialToken"]["id"].is_string()) {
        return Error{"tokenizer.json: malformed TemplateProcessing item " + item.dump()};
      }
      const std::string name = item["SpecialToken"]["id"].get<std::string>();
      std::vector<int32_t> ids;
      const json& specials = j.contains("special_tokens") ? j["special_tokens"] : json();
      if (specials.is_object() && specials.contains(name) && specials[name].contains("ids") &&
          specials[name]["ids"].is_array()) {
        for (const json& id : specials[name]["ids"]) {
          if (!id.is_number_integer()) return Error{"tokenizer.json: bad special token id"};
          ids.push_back(id.get<int32_t>());
        }
      } else {
        const int32_t id = token_id(name);
        if (id < 0) return Error{"tokenizer.json: template token '" + name + "' is unknown"};
        ids.push_back(id);
      }
      auto& dst = seen_sequence ? out->suffix : out->prefix;
      dst.insert(dst.end(), ids.begin(), ids.end());
    }
    return Status::Ok();
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    auto id_of = [&](const char* key) -> int32_t {
      const json& v = j.contains(key) ? j[key] : json();
      return v.is_array() && v.size() == 2 && v[1].is_number_integer() ? v[1].get<int32_t>() : -1;
    };
    const int32_t cls = id_of("cls"), sep = id_of("sep");
    if (cls < 0 || sep < 0) return Error{"tokenizer.json: " + type + " without cls/sep"};
    out->prefix = {cls};
    out->suffix = {sep};
    return Status::Ok();
  }
  return Error{"tokenizer.json: unsupported post_processor '" + (type.empty() ? j.dump() : type) +
               "'"};
}

}  // namespace dspark::tok
