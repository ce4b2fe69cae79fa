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

  bool has(const std::string& name) const;  // given on the command line
  std::string str(const std::string& name) const;
  Result<int64_t> integer(const std::string& name, int64_t min, int64_t max) const;
  Result<double> number(const std::string& name, double min, double max) const;

 private:
  struct Spec {
    std::string short_name, value_name, help, default_value;
  };
  std::map<std::string, Spec> specs_;
  std::vector<std::string> order_;
  std::map<std::string, std::string> values_;
};

}  // namespace dspark::cli
