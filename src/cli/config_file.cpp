// YAML config files and DSPARK_* environment variables as option sources. yaml-cpp (Debian's
// libyaml-cpp-dev) parses the file: YAML's quoting, comments, lists and error positions are a
// parser's job, not ours.
#include "config_file.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

namespace dspark::cli {
namespace {

// Options that make no sense outside the command line (and, in a file, the file itself).
bool reserved(const std::string& name, bool in_file) {
  return name == "help" || name == "check-config" || (in_file && name == "config");
}

// A flag turned on or off by `source`.
void set_flag(Args& args, const std::string& name, bool on, const std::string& source) {
  if (on) {
    args.set(name, "1", source);
  } else {
    args.set_off(name, source);
  }
}

// A flag's boolean text: 1 (on), 0 (off) or -1 (not a boolean).
int parse_bool(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return char(std::tolower(c)); });
  if (text == "1" || text == "true" || text == "yes" || text == "on") return 1;
  if (text == "0" || text == "false" || text == "no" || text == "off" || text.empty()) return 0;
  return -1;
}

// The option value of a YAML node: a scalar's text or a list of scalars joined by commas.
Result<std::string> value_text(const YAML::Node& node, const std::string& where) {
  if (node.IsScalar()) return node.Scalar();
  if (node.IsSequence()) {
    std::string joined;
    for (size_t i = 0; i < node.size(); ++i) {
      if (!node[i].IsScalar()) return Error{where + ": list items must be plain values"};
      if (i > 0) joined += ',';
      joined += node[i].Scalar();
    }
    return joined;
  }
  if (node.IsMap()) return Error{where + ": expected a value, got a mapping (options are flat)"};
  return Error{where + ": no value (remove the key to keep the default)"};
}

}  // namespace

bool file_option(const std::string& name) {
  return !reserved(name, true);
}

Status apply_config_file(const std::string& path, Args& args) {
  std::ifstream in(path);
  if (!in) return Error{"config file '" + path + "' cannot be read"};
  std::stringstream text;
  text << in.rdbuf();
  YAML::Node root;
  try {
    root = YAML::Load(text.str());
  } catch (const YAML::Exception& e) {
    return Error{"config file '" + path + "' is not valid YAML: line " +
                 std::to_string(e.mark.line + 1) + ": " + e.msg};
  }
  if (root.IsNull()) return Status::Ok();  // empty file
  if (!root.IsMap()) return Error{"config file '" + path + "' must be a mapping of option: value"};
  std::set<std::string> seen;  // yaml-cpp keeps a repeated key; the file is ambiguous then
  for (const auto& entry : root) {
    if (!entry.first.IsScalar()) return Error{"config file '" + path + "': keys must be names"};
    const std::string key = entry.first.Scalar();
    const std::string where = "config file '" + path + "', key '" + key + "'";
    if (!seen.insert(key).second) {
      return Error{where + ": given twice (line " + std::to_string(entry.first.Mark().line + 1) +
                   ")"};
    }
    if (!args.declared(key) || reserved(key, true)) {
      return Error{where +
                   ": unknown option (the keys are the long option names of "
                   "'dspark serve --help', without the dashes)"};
    }
    auto value = value_text(entry.second, where);
    if (!value.ok()) return value.error();
    if (args.given(key)) continue;  // on the command line or in the environment
    if (args.is_flag(key)) {
      const int on = parse_bool(*value);
      if (on < 0) return Error{where + ": a flag takes true or false, got '" + *value + "'"};
      set_flag(args, key, on == 1, "config file");
      continue;
    }
    args.set(key, *value, "config file");
  }
  return Status::Ok();
}

Status apply_environment(const std::string& prefix, Args& args) {
  for (const std::string& name : args.names()) {
    if (reserved(name, false) || args.given(name)) continue;
    std::string var = prefix + name;
    std::transform(var.begin(), var.end(), var.begin(),
                   [](unsigned char c) { return c == '-' ? '_' : char(std::toupper(c)); });
    const char* value = std::getenv(var.c_str());
    // Unset and empty are alike: compose files often write `DSPARK_API_KEY=` for "none".
    if (value == nullptr || (*value == '\0' && !args.is_flag(name))) continue;
    if (args.is_flag(name)) {
      const int on = parse_bool(value);
      if (on < 0) {
        return Error{"environment variable " + var + ": a flag takes 1/true/yes/on or " +
                     "0/false/no/off, got '" + value + "'"};
      }
      set_flag(args, name, on == 1, "environment (" + var + ")");
      continue;
    }
    args.set(name, value, "environment (" + var + ")");
  }
  return Status::Ok();
}

}  // namespace dspark::cli
