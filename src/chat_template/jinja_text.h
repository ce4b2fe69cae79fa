// Python str semantics on UTF-8 strings: lengths, indices and slices count code points, and
// strip/split/case use Python's notion of whitespace and case, as jinja2 templates see them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dspark::jinja {

bool py_isspace(char32_t cp);  // str.isspace() for one character

std::vector<char32_t> code_points(std::string_view s);
std::string from_code_points(const std::vector<char32_t>& cps, size_t begin, size_t end);
size_t cp_length(std::string_view s);

enum class StripSide { Left, Right, Both };
// str.strip/lstrip/rstrip; chars nullopt strips whitespace.
std::string py_strip(std::string_view s, const std::optional<std::string>& chars, StripSide side);
// str.split / str.rsplit; sep nullopt splits on whitespace runs. maxsplit < 0: no limit.
std::vector<std::string> py_split(std::string_view s, const std::optional<std::string>& sep,
                                  int64_t maxsplit, bool from_right);
std::vector<std::string> py_splitlines(std::string_view s);
std::string py_replace(std::string_view s, std::string_view old, std::string_view with,
                       int64_t count);
std::string py_upper(std::string_view s);
std::string py_lower(std::string_view s);
std::string py_capitalize(std::string_view s);
std::string py_title(std::string_view s);  // str.title()
// Character classes as str.isupper/islower/isdigit/isalpha/isalnum/isspace.
bool py_is(std::string_view s, std::string_view cls);

// Python's repr of a str: quotes chosen like Python's, non-printables escaped.
std::string py_repr_string(std::string_view s);

}  // namespace dspark::jinja
