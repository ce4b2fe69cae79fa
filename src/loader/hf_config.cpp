// config.json of a Hugging Face folder, flattened into metadata: "hf.<key>", nested objects
// joined by "." ({"rope_scaling": {"factor": 8}} -> "hf.rope_scaling.factor"), arrays as Array.
// A null member is left out (absent and null mean the same in these configs); an object or null
// inside an array has no MetaValue kind, so it is kept as its compact JSON text.
#include "json_util.h"
#include "model_file_impl.h"

namespace dspark::loader {

namespace {

using nlohmann::json;

constexpr int kMaxDepth = 16;

Status to_meta(const json& v, const std::string& key, int depth, MetaValue* out) {
  if (depth > kMaxDepth) {
    return Error{"config.json: '" + key + "' nests deeper than " + std::to_string(kMaxDepth)};
  }
  switch (v.type()) {
    case json::value_t::boolean:
      out->kind = MetaValue::Kind::Bool;
      out->b = v.get<bool>();
      break;
    case json::value_t::number_integer:
      out->kind = MetaValue::Kind::Int;
      out->i = v.get<int64_t>();
      break;
    case json::value_t::number_unsigned: {
      const uint64_t u = v.get<uint64_t>();
      if (u <= static_cast<uint64_t>(INT64_MAX)) {
        out->kind = MetaValue::Kind::Int;
        out->i = static_cast<int64_t>(u);
      } else {
        out->kind = MetaValue::Kind::UInt;
        out->u = u;
      }
      break;
    }
    case json::value_t::number_float:
      out->kind = MetaValue::Kind::Float;
      out->f = v.get<double>();
      break;
    case json::value_t::string:
      out->kind = MetaValue::Kind::String;
      out->s = v.get<std::string>();
      break;
    case json::value_t::array:
      out->kind = MetaValue::Kind::Array;
      out->array.resize(v.size());
      for (size_t k = 0; k < v.size(); ++k) {
        DSPARK_RETURN_IF_ERROR(to_meta(v[k], key, depth + 1, &out->array[k]));
      }
      break;
    default:  // object or null inside an array
      out->kind = MetaValue::Kind::String;
      out->s = v.dump(-1, ' ', false, json::error_handler_t::replace);
      break;
  }
  return Status::Ok();
}

Status flatten(const json& obj, const std::string& prefix, int depth,
               std::map<std::string, MetaValue>* out) {
  if (depth > kMaxDepth) {
    return Error{"config.json: '" + prefix + "' nests deeper than " + std::to_string(kMaxDepth)};
  }
  for (const auto& [name, value] : obj.items()) {
    const std::string key = prefix + "." + name;
    if (value.is_null()) continue;
    if (value.is_object()) {
      DSPARK_RETURN_IF_ERROR(flatten(value, key, depth + 1, out));
      continue;
    }
    MetaValue meta;
    DSPARK_RETURN_IF_ERROR(to_meta(value, key, depth + 1, &meta));
    if (!out->try_emplace(key, std::move(meta)).second) {
      return Error{"config.json: key '" + key + "' appears twice after flattening"};
    }
  }
  return Status::Ok();
}

}  // namespace

Status flatten_config_json(const std::string& text, std::map<std::string, MetaValue>* out) {
  auto root = parse_json(text, "config.json");
  if (!root.ok()) return root.error();
  if (!root->is_object()) return Error{"config.json is not a JSON object"};
  return flatten(*root, "hf", 0, out);
}

}  // namespace dspark::loader
