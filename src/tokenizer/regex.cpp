#define PCRE2_CODE_UNIT_WIDTH 8
#include "regex.h"

#include <pcre2.h>

#include "dspark/text.h"

namespace dspark::tok {

struct Regex::Code {
  pcre2_code* code = nullptr;
  ~Code() { pcre2_code_free(code); }
};

namespace {

// One match-data block per thread, reused by every pattern (only the whole-match pair is read).
pcre2_match_data* thread_match_data() {
  struct Holder {
    pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
    ~Holder() { pcre2_match_data_free(data); }
  };
  thread_local Holder holder;
  return holder.data;
}

// pcre2_match, falling back to the interpreter when the JIT runs out of stack (very long runs of
// one character class can need more than the default JIT stack).
int run_match(const pcre2_code* code, std::string_view text, size_t start, uint32_t options,
              pcre2_match_data* md) {
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  int rc =
      pcre2_match(code, subject, text.size(), start, options | PCRE2_NO_UTF_CHECK, md, nullptr);
  if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
    rc = pcre2_match(code, subject, text.size(), start, options | PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
                     md, nullptr);
  }
  return rc;
}

}  // namespace

// Oniguruma (Hugging Face's engine) reads an unescaped '[' inside a class as a nested class, a
// union (BLOOM's " ?[^(\s|[.,!?])]+"); PCRE2 reads it as a literal. A nested non-negated class
// is flattened into its parent, which means the same; "[:" (POSIX classes) is left alone.
std::string flatten_nested_classes(const std::string& pattern) {
  std::string out;
  out.reserve(pattern.size());
  int depth = 0;         // class nesting: 0 outside any class
  bool at_open = false;  // just after a class's '[' or '[^' (where ']' is a literal)
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      out += pattern.substr(i, 2);
      ++i;
      at_open = false;
      continue;
    }
    const bool nested_open = depth > 0 && c == '[' && i + 1 < pattern.size() &&
                             pattern[i + 1] != ':' && pattern[i + 1] != '^';
    if (depth > 0 && c == '[' && i + 1 < pattern.size() && pattern[i + 1] == ':') {
      const size_t end = pattern.find(":]", i + 2);  // a POSIX class, copied whole
      if (end != std::string::npos) {
        out += pattern.substr(i, end + 2 - i);
        i = end + 1;
        at_open = false;
        continue;
      }
    }
    if (nested_open) {
      ++depth;  // dropped: its members join the enclosing class
      at_open = true;
      continue;
    }
    if (c == '[' && depth == 0) {
      ++depth;
      out += c;
      at_open = true;
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      continue;
    }
    if (c == ']' && depth > 0 && !at_open) {
      if (--depth > 0) continue;  // the end of a flattened nested class
    }
    out += c;
    at_open = false;
  }
  return out;
}

Result<Regex> Regex::compile(const std::string& pattern, bool literal) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  // PCRE2_LITERAL refuses PCRE2_UCP (which only matters for character classes anyway).
  const uint32_t options = literal ? PCRE2_UTF | PCRE2_LITERAL : PCRE2_UTF | PCRE2_UCP;
  const std::string source = literal ? pattern : flatten_nested_classes(pattern);
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(source.data()), source.size(),
                                   options, &error, &offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    return Error{"tokenizer: cannot compile regex '" + pattern + "' at offset " +
                 std::to_string(offset) + ": " + reinterpret_cast<const char*>(message)};
  }
  // The JIT is an optimisation only: when it is unavailable pcre2_match interprets.
  (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  Regex re;
  auto holder = std::make_shared<Code>();
  holder->code = code;
  re.code_ = std::move(holder);
  re.pattern_ = pattern;
  return re;
}

void Regex::find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>* out) const {
  pcre2_match_data* md = thread_match_data();
  size_t pos = 0;
  size_t last_end = std::string_view::npos;  // end of the last non-empty match
  while (pos < text.size()) {
    const int rc = run_match(code_->code, text, pos, 0, md);
    if (rc < 0) break;  // no further match (other errors cannot occur on valid UTF-8)
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t begin = ov[0], end = ov[1];
    if (end > begin) {
      out->emplace_back(begin, end);
      pos = last_end = end;
    } else {
      // Kept unless it touches the previous match (as Oniguruma's iterator does): a zero-width
      // split point such as SuperBPE's digit-group lookahead.
      if (begin < text.size() && begin != last_end) out->emplace_back(begin, begin);
      if (begin >= text.size()) break;
      pos = begin;
      (void)utf8_next(text, &pos);  // step over one character
    }
  }
}

bool Regex::matches_at_start(std::string_view text) const {
  return run_match(code_->code, text, 0, PCRE2_ANCHORED, thread_match_data()) >= 0;
}

}  // namespace dspark::tok
