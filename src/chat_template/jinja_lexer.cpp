#include "jinja_lexer.h"

#include <algorithm>
#include <limits>
#include <string_view>

#include "dspark/text.h"
#include "jinja_text.h"
#include "jinja_value.h"

namespace dspark::jinja {
namespace {

// "\r\n" and "\r" become "\n", and one trailing newline is dropped (keep_trailing_newline off).
std::string normalize(const std::string& source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += source[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

bool is_ident_start(unsigned char c) {
  return c == '_' || std::isalpha(c) || c >= 0x80;
}
bool is_ident_char(unsigned char c) {
  return is_ident_start(c) || std::isdigit(c);
}

class Lexer {
 public:
  explicit Lexer(const std::string& source) : src_(normalize(source)) {
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i)
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
  }

  std::vector<Token> run() {
    size_t pos = 0;
    while (pos < src_.size()) pos = lex_data(pos);
    push(Token::Kind::Eof, "", src_.size());
    return std::move(tokens_);
  }

 private:
  [[noreturn]] void fail(size_t pos, const std::string& what) const {
    const auto [line, col] = where(pos);
    throw TemplateError("line " + std::to_string(line) + ", column " + std::to_string(col) + ": " +
                        what);
  }

  std::pair<int, int> where(size_t pos) const {
    const auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), pos);
    const size_t line = static_cast<size_t>(it - line_starts_.begin());
    return {static_cast<int>(line), static_cast<int>(pos - line_starts_[line - 1] + 1)};
  }

  void push(Token::Kind kind, std::string value, size_t pos) {
    const auto [line, col] = where(pos);
    tokens_.push_back(Token{kind, std::move(value), line, col});
  }

  // Length of the Python whitespace character at pos, or 0.
  size_t space_len(size_t pos) const {
    size_t next = pos;
    const size_t len = utf8_valid_len(src_, pos);
    if (len == 0) return 0;
    return py_isspace(utf8_next(src_, &next)) ? len : 0;
  }

  size_t skip_spaces(size_t pos) const {
    while (pos < src_.size()) {
      const size_t len = space_len(pos);
      if (len == 0) break;
      pos += len;
    }
    return pos;
  }

  bool at(size_t pos, std::string_view s) const {
    return pos <= src_.size() && src_.compare(pos, s.size(), s) == 0;
  }

  // Text up to the next tag, then the tag; returns the position after it.
  size_t lex_data(size_t pos) {
    size_t tag = pos;
    while (true) {
      tag = src_.find('{', tag);
      if (tag == std::string::npos || tag + 1 >= src_.size()) {
        push(Token::Kind::Text, src_.substr(pos), pos);
        return src_.size();
      }
      const char c = src_[tag + 1];
      if (c == '{' || c == '%' || c == '#') break;
      ++tag;
    }
    const char kind = src_[tag + 1];
    const char sign = (tag + 2 < src_.size() && (src_[tag + 2] == '-' || src_[tag + 2] == '+'))
                          ? src_[tag + 2]
                          : 0;
    std::string text = src_.substr(pos, tag - pos);
    if (sign == '-') {
      text = py_strip(text, std::nullopt, StripSide::Right);
    } else if (sign != '+' && kind != '{') {
      // lstrip_blocks: drop the indentation before a block or comment tag alone on its line.
      const size_t nl = text.rfind('\n');
      const size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
      const bool line_start = l_pos > 0 || pos == 0 || src_[pos - 1] == '\n';
      if (line_start && l_pos < text.size() && all_space(text, l_pos)) text.resize(l_pos);
    }
    if (!text.empty()) push(Token::Kind::Text, std::move(text), pos);
    const size_t inner = tag + 2 + (sign ? 1 : 0);
    if (kind == '#') return lex_comment(inner);
    if (kind == '%') {
      const size_t raw_end = match_raw_begin(inner);
      if (raw_end != 0) return lex_raw(raw_end, tag);
    }
    return lex_tag(tag, inner, kind == '%');
  }

  bool all_space(const std::string& text, size_t from) const {
    size_t p = from;
    while (p < text.size()) {
      const size_t len = utf8_valid_len(text, p);
      size_t next = p;
      if (len == 0 || !py_isspace(utf8_next(text, &next))) return false;
      p += len;
    }
    return true;
  }

  size_t lex_comment(size_t pos) {
    const size_t end = src_.find("#}", pos);
    if (end == std::string::npos) fail(pos, "missing end of comment tag");
    const char sign = end > pos ? src_[end - 1] : 0;
    size_t after = end + 2;
    if (sign == '-')
      after = skip_spaces(after);
    else if (sign != '+' && after < src_.size() && src_[after] == '\n')
      ++after;  // trim_blocks
    return after;
  }

  // After "{%" (and its sign): "\s*raw\s*(-%}\s*|%})"; returns the position after it or 0.
  size_t match_raw_begin(size_t pos) const {
    pos = skip_spaces(pos);
    if (!at(pos, "raw")) return 0;
    pos = skip_spaces(pos + 3);
    if (at(pos, "-%}")) return skip_spaces(pos + 3);
    if (at(pos, "%}")) return pos + 2;
    return 0;
  }

  // Raw block body up to "{% endraw %}", emitted verbatim (with the usual whitespace control
  // on the endraw tag).
  size_t lex_raw(size_t pos, size_t tag_pos) {
    size_t search = pos;
    while (true) {
      const size_t open = src_.find("{%", search);
      if (open == std::string::npos) fail(tag_pos, "missing end of raw directive");
      size_t p = open + 2;
      const char sign = (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) ? src_[p] : 0;
      if (sign) ++p;
      p = skip_spaces(p);
      if (!at(p, "endraw")) {
        search = open + 2;
        continue;
      }
      p = skip_spaces(p + 6);
      size_t after;
      if (at(p, "+%}")) {
        after = p + 3;
      } else if (at(p, "-%}")) {
        after = skip_spaces(p + 3);
      } else if (at(p, "%}")) {
        after = p + 2;
        if (after < src_.size() && src_[after] == '\n') ++after;
      } else {
        search = open + 2;
        continue;
      }
      std::string text = src_.substr(pos, open - pos);
      if (sign == '-') {
        text = py_strip(text, std::nullopt, StripSide::Right);
      } else if (sign != '+') {
        const size_t nl = text.rfind('\n');
        const size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
        const bool line_start = l_pos > 0 || src_[pos - 1] == '\n';
        if (line_start && l_pos < text.size() && all_space(text, l_pos)) text.resize(l_pos);
      }
      if (!text.empty()) push(Token::Kind::Text, std::move(text), pos);
      return after;
    }
  }

  size_t lex_tag(size_t tag, size_t pos, bool block) {
    push(block ? Token::Kind::BlockBegin : Token::Kind::VarBegin, "", tag);
    std::vector<char> balance;
    while (true) {
      if (pos >= src_.size()) fail(tag, "unexpected end of template: tag is not closed");
      if (balance.empty()) {
        if (block) {
          if (at(pos, "+%}")) return end_tag(Token::Kind::BlockEnd, pos, pos + 3);
          if (at(pos, "-%}")) return end_tag(Token::Kind::BlockEnd, pos, skip_spaces(pos + 3));
          if (at(pos, "%}")) {
            size_t after = pos + 2;
            if (after < src_.size() && src_[after] == '\n') ++after;  // trim_blocks
            return end_tag(Token::Kind::BlockEnd, pos, after);
          }
        } else {
          if (at(pos, "-}}")) return end_tag(Token::Kind::VarEnd, pos, skip_spaces(pos + 3));
          if (at(pos, "}}")) return end_tag(Token::Kind::VarEnd, pos, pos + 2);
        }
      }
      if (const size_t len = space_len(pos)) {
        pos += len;
        continue;
      }
      const unsigned char c = static_cast<unsigned char>(src_[pos]);
      if (std::isdigit(c)) {
        pos = lex_number(pos);
      } else if (is_ident_start(c)) {
        size_t end = pos;
        while (end < src_.size() && is_ident_char(static_cast<unsigned char>(src_[end])) &&
               space_len(end) == 0)
          ++end;
        push(Token::Kind::Name, src_.substr(pos, end - pos), pos);
        pos = end;
      } else if (c == '\'' || c == '"') {
        pos = lex_string(pos);
      } else {
        pos = lex_operator(pos, &balance);
      }
    }
  }

  size_t end_tag(Token::Kind kind, size_t pos, size_t after) {
    push(kind, "", pos);
    return after;
  }

  size_t digits(size_t pos, std::string* out) const {
    while (pos < src_.size()) {
      const char c = src_[pos];
      if (std::isdigit(static_cast<unsigned char>(c))) {
        *out += c;
      } else if (!(c == '_' && pos + 1 < src_.size() &&
                   std::isdigit(static_cast<unsigned char>(src_[pos + 1])))) {
        break;
      }
      ++pos;
    }
    return pos;
  }

  size_t lex_number(size_t start) {
    auto is_digit_at = [&](size_t p) {
      return p < src_.size() && std::isdigit(static_cast<unsigned char>(src_[p]));
    };
    if (src_[start] == '0' && start + 1 < src_.size()) {
      const char p = static_cast<char>(std::tolower(static_cast<unsigned char>(src_[start + 1])));
      const int base = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 0;
      if (base) {
        size_t pos = start + 2;
        uint64_t v = 0;
        bool any = false;
        while (pos < src_.size()) {
          const char c = static_cast<char>(std::tolower(static_cast<unsigned char>(src_[pos])));
          int d = -1;
          if (c >= '0' && c <= '9') d = c - '0';
          if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
          if (c == '_') {
            ++pos;
            continue;
          }
          if (d < 0 || d >= base) break;
          if (v > (static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) - d) / base)
            fail(start, "integer literal too large");
          v = v * base + d;
          any = true;
          ++pos;
        }
        if (!any) fail(start, "invalid integer literal");
        push(Token::Kind::Int, std::to_string(v), start);
        return pos;
      }
    }
    std::string text;
    size_t pos = digits(start, &text);
    bool is_float = false;
    if (pos + 1 < src_.size() && src_[pos] == '.' && is_digit_at(pos + 1)) {
      text += '.';
      pos = digits(pos + 1, &text);
      is_float = true;
    }
    if (pos < src_.size() && (src_[pos] == 'e' || src_[pos] == 'E')) {
      size_t p = pos + 1;
      std::string exp = "e";
      if (p < src_.size() && (src_[p] == '+' || src_[p] == '-')) exp += src_[p++];
      if (is_digit_at(p)) {
        pos = digits(p, &exp);
        text += exp;
        is_float = true;
      }
    }
    if (!is_float) {
      if (text.size() > 1 && text[0] == '0' && text.find_first_not_of('0') != std::string::npos)
        fail(start, "leading zeros in decimal integer literals are not permitted");
      const std::string max = std::to_string(std::numeric_limits<int64_t>::max());
      const size_t nz = std::min(text.find_first_not_of('0'), text.size() - 1);
      const std::string_view sig = std::string_view(text).substr(nz);
      if (sig.size() > max.size() || (sig.size() == max.size() && sig > max))
        fail(start, "integer literal too large");
    }
    push(is_float ? Token::Kind::Float : Token::Kind::Int, text, start);
    return pos;
  }

  size_t lex_string(size_t start) {
    const char quote = src_[start];
    std::string out;
    size_t pos = start + 1;
    auto hex_value = [&](size_t p, int n) -> uint32_t {
      uint32_t v = 0;
      for (int i = 0; i < n; ++i) {
        const char c = p + i < src_.size() ? static_cast<char>(std::tolower(src_[p + i])) : char{0};
        int d = -1;
        if (c >= '0' && c <= '9') d = c - '0';
        if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        if (d < 0) fail(p - 2, "truncated \\x/\\u/\\U escape in string literal");
        v = v * 16 + static_cast<uint32_t>(d);
      }
      return v;
    };
    while (true) {
      if (pos >= src_.size()) fail(start, "unterminated string literal");
      const char c = src_[pos];
      if (c == quote) return push_string(std::move(out), start, pos + 1);
      if (c != '\\') {
        out += c;
        ++pos;
        continue;
      }
      if (pos + 1 >= src_.size()) fail(start, "unterminated string literal");
      const char e = src_[pos + 1];
      pos += 2;
      switch (e) {
        case '\n':
          break;
        case '\\':
        case '\'':
        case '"':
          out += e;
          break;
        case 'a':
          out += '\a';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'v':
          out += '\v';
          break;
        case 'x':
          utf8_append(hex_value(pos, 2), &out);
          pos += 2;
          break;
        case 'u':
          utf8_append(hex_value(pos, 4), &out);
          pos += 4;
          break;
        case 'U': {
          const uint32_t v = hex_value(pos, 8);
          if (v > 0x10FFFF) fail(pos - 2, "illegal Unicode character in \\U escape");
          utf8_append(v, &out);
          pos += 8;
          break;
        }
        case 'N':
          fail(pos - 2, "\\N{...} escapes are not supported");
        default:
          if (e >= '0' && e <= '7') {
            uint32_t v = static_cast<uint32_t>(e - '0');
            for (int i = 0; i < 2 && pos < src_.size() && src_[pos] >= '0' && src_[pos] <= '7'; ++i)
              v = v * 8 + static_cast<uint32_t>(src_[pos++] - '0');
            utf8_append(v, &out);
          } else {
            out += '\\';
            out += e;
          }
      }
    }
  }

  size_t push_string(std::string value, size_t start, size_t after) {
    push(Token::Kind::String, std::move(value), start);
    return after;
  }

  size_t lex_operator(size_t pos, std::vector<char>* balance) {
    static const char* two[] = {"//", "**", "==", "!=", ">=", "<="};
    for (const char* op : two) {
      if (at(pos, op)) {
        push(Token::Kind::Op, op, pos);
        return pos + 2;
      }
    }
    const char c = src_[pos];
    static const std::string_view singles = "+-/*%~[](){}><=.:|,;";
    if (singles.find(c) == std::string_view::npos) {
      fail(pos, std::string("unexpected character '") +
                    src_.substr(pos, std::max<size_t>(1, utf8_valid_len(src_, pos))) + "' in tag");
    }
    if (c == '(' || c == '[' || c == '{') balance->push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
    if (c == ')' || c == ']' || c == '}') {
      if (balance->empty()) fail(pos, std::string("unexpected '") + c + "'");
      if (balance->back() != c)
        fail(pos, std::string("unexpected '") + c + "', expected '" + balance->back() + "'");
      balance->pop_back();
    }
    push(Token::Kind::Op, std::string(1, c), pos);
    return pos + 1;
  }

  std::string src_;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> lex(const std::string& source) {
  return Lexer(source).run();
}

}  // namespace dspark::jinja
