#include "args.h"

#include <cerrno>
#include <cstdlib>
#include <sstream>

namespace dspark::cli {

Args& Args::option(const std::string& name, const std::string& short_name,
                   const std::string& value_name, const std::string& help,
                   const std::string& default_value) {
  specs_[name] = Spec{short_name, value_name, help, default_value};
  order_.push_back(name);
  return *this;
}

Status Args::parse(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string name, value;
    bool inline_value = false;
    if (arg.rfind("--", 0) == 0) {
      name = arg.substr(2);
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        inline_value = true;
      }
    } else if (arg.size() > 1 && arg[0] == '-') {
      for (const auto& [long_name, spec] : specs_) {
        if (!spec.short_name.empty() && arg.substr(1) == spec.short_name) name = long_name;
      }
      if (name.empty()) return Error{"unknown option '" + arg + "' (see --help)"};
    } else {
      return Error{"unexpected argument '" + arg + "' (see --help)"};
    }
    auto it = specs_.find(name);
    if (it == specs_.end()) return Error{"unknown option '--" + name + "' (see --help)"};
    if (it->second.value_name.empty()) {
      if (inline_value) return Error{"option '--" + name + "' takes no value"};
      values_[name] = "1";
      sources_[name] = "command line";
      continue;
    }
    if (!inline_value) {
      if (i + 1 >= argc) return Error{"option '--" + name + "' needs a value"};
      value = argv[++i];
    }
    values_[name] = value;
    sources_[name] = "command line";
  }
  return Status::Ok();
}

std::string Args::usage(const std::string& command, const std::string& summary) const {
  std::ostringstream out;
  out << "usage: dspark " << command << " [options]\n" << summary << "\n\noptions:\n";
  for (const auto& name : order_) {
    const Spec& spec = specs_.at(name);
    std::ostringstream left;
    left << "  ";
    if (spec.short_name.empty()) {
      left << "    ";
    } else {
      left << '-' << spec.short_name << ", ";
    }
    left << "--" << name;
    if (!spec.value_name.empty()) left << ' ' << spec.value_name;
    const size_t width = left.str().size();
    out << left.str() << std::string(width < 30 ? 30 - width : 1, ' ') << spec.help;
    if (!spec.default_value.empty()) out << " (default: " << spec.default_value << ")";
    out << "\n";
  }
  return out.str();
}

bool Args::is_flag(const std::string& name) const {
  auto it = specs_.find(name);
  return it != specs_.end() && it->second.value_name.empty();
}

void Args::set(const std::string& name, const std::string& value, const std::string& source) {
  values_[name] = value;
  sources_[name] = source;
}

std::string Args::source(const std::string& name) const {
  auto it = sources_.find(name);
  return it == sources_.end() ? "" : it->second;
}

bool Args::has(const std::string& name) const {
  return values_.count(name) > 0;
}

std::string Args::str(const std::string& name) const {
  if (auto it = values_.find(name); it != values_.end()) return it->second;
  return specs_.at(name).default_value;
}

Result<int64_t> Args::integer(const std::string& name, int64_t min, int64_t max) const {
  const std::string text = str(name);
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE || v < min || v > max) {
    return Error{"--" + name + " must be an integer in [" + std::to_string(min) + ", " +
                 std::to_string(max) + "], got '" + text + "'"};
  }
  return int64_t(v);
}

Result<double> Args::number(const std::string& name, double min, double max) const {
  const std::string text = str(name);
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno == ERANGE || !(v >= min && v <= max)) {
    std::ostringstream msg;
    msg << "--" << name << " must be a number in [" << min << ", " << max << "], got '" << text
        << "'";
    return Error{msg.str()};
  }
  return v;
}

}  // namespace dspark::cli
