// Text as bytes, shared by the tokenizer and the chat template interpreter: byte ranges of a
// text, and UTF-8 decoding, encoding, validation, and replacing invalid bytes by U+FFFD the way
// Python's and Rust's lossy decoders do (one U+FFFD per maximal invalid subpart), so ids for
// invalid input match Hugging Face on the lossily decoded text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dspark {

// Bytes [begin, end) of a text.
struct ByteSpan {
  size_t begin = 0;
  size_t end = 0;
};

inline constexpr char32_t kReplacementChar = 0xFFFD;

// Length of the well-formed UTF-8 sequence starting at s[pos]: 1..4, or 0 when the bytes there
// do not start a valid character (including a truncated one at the end of s).
size_t utf8_valid_len(std::string_view s, size_t pos);

// Bytes at s[pos] that form the longest prefix of some valid sequence (the "maximal subpart"):
// at least 1. Equals utf8_valid_len when that is non-zero.
size_t utf8_maximal_subpart(std::string_view s, size_t pos);

// True when the bytes from pos to the end are a proper prefix of a valid sequence, i.e. more
// bytes could still complete the character.
bool utf8_incomplete_tail(std::string_view s, size_t pos);

bool utf8_is_valid(std::string_view s);

// s with every maximal invalid subpart replaced by U+FFFD.
std::string utf8_sanitize(std::string_view s);

// Decodes the character at s[pos] and advances pos past it. s[pos] should start a valid
// character; on invalid input the result is meaningless but reads stay inside s.
char32_t utf8_next(std::string_view s, size_t* pos);

void utf8_append(char32_t cp, std::string* out);

// Rust's char::is_whitespace (the Unicode White_Space property).
bool is_unicode_whitespace(char32_t cp);

}  // namespace dspark
