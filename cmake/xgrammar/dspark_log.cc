// Implements xgrammar's customizable logging for dspark (see dspark_log.h).
#include "dspark_log.h"

#include <xgrammar/exception.h>

#include <string>
#include <vector>

namespace dspark_xgrammar {
namespace {
thread_local std::vector<std::string>* t_sink = nullptr;
}  // namespace

std::vector<std::string>* set_warning_sink(std::vector<std::string>* sink) {
  std::vector<std::string>* previous = t_sink;
  t_sink = sink;
  return previous;
}

}  // namespace dspark_xgrammar

namespace xgrammar {

[[noreturn]] void LogFatalImpl(const std::string& file, int lineno, const std::string& message) {
  (void)file;
  (void)lineno;
  throw XGrammarError(message);
}

void LogMessageImpl(const std::string& file, int lineno, int level, const std::string& message) {
  (void)file;
  (void)lineno;
  constexpr int kWarning = 2;  // XGRAMMAR_LOG_LEVEL_WARNING
  if (level >= kWarning && dspark_xgrammar::t_sink) dspark_xgrammar::t_sink->push_back(message);
}

}  // namespace xgrammar
