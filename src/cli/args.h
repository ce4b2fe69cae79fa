// A small command-line option parser for the dspark subcommands: --name VALUE, --name=VALUE,
// short aliases (-m), flags, and clear errors for unknown options or bad numbers.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "dspark/status.h"

namespace dspark::cli {

// Stores a parsed option value in out (converted to its type), or returns the parse error.
template <class T, class V>
Status take(const Result<V>& result, T& out) {
  if (!result.ok()) return result.error();
  out = static_cast<T>(*result);
  return Status::Ok();
}

class Args {
 public:
  // Declares an option; `value_name` empty means a flag without a value.
  Args& option(const std::string& name, const std::string& short_name,
               const std::string& value_name, const std::string& help,
               const std::string& default_value = "");
  Status parse(int argc, char** argv);  // argv[0] is the subcommand name
  std::string usage(const std::string& command, const std::string& summary) const;

  bool has(const std::string& name) const;  // given (on the command line or through set())
  std::string str(const std::string& name) const;
  Result<int64_t> integer(const std::string& name, int64_t min, int64_t max) const;
  Result<double> number(const std::string& name, double min, double max) const;

  // The declared options in declaration order, and whether one is a flag (takes no value).
  const std::vector<std::string>& names() const { return order_; }
  bool declared(const std::string& name) const { return specs_.count(name) > 0; }
  bool is_flag(const std::string& name) const;
  // Gives a declared option a value (a flag: "1") from `source` (a config file, the environment)
  // as if it had been on the command line; where each given value came from: source() is
  // "command line" for parse()'s, "" for an option not given.
  void set(const std::string& name, const std::string& value, const std::string& source);
  std::string source(const std::string& name) const;
  // Whether any source (command line, set(), set_off()) decided the option.
  bool given(const std::string& name) const { return sources_.count(name) > 0; }
  // Records that `source` turned a flag off (it stays absent: has() is false).
  void set_off(const std::string& name, const std::string& source) { sources_[name] = source; }

 private:
  struct Spec {
    std::string short_name, value_name, help, default_value;
  };
  std::map<std::string, Spec> specs_;
  std::vector<std::string> order_;
  std::map<std::string, std::string> values_;
  std::map<std::string, std::string> sources_;  // name -> where its value came from
};

}  // namespace dspark::cli
