// GPT-2's byte <-> unicode mapping: byte-level BPE vocabularies spell every byte as a printable
// character (printable Latin-1 bytes as themselves, the other 68 bytes as U+0100 onwards), so a
// token string such as "Ġthe" stands for the bytes " the".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace dspark::tok {

// The character that spells byte b.
char32_t byte_to_unicode(uint8_t b);
// The byte a character spells, or -1 for a character outside the 256-character alphabet.
int unicode_to_byte(char32_t cp);

// Bytes -> their byte-level spelling (UTF-8).
std::string bytes_to_byte_level(std::string_view bytes);
// Byte-level spelling -> bytes. False (and out untouched) when some character is not in the
// alphabet or s is not valid UTF-8.
bool byte_level_to_bytes(std::string_view s, std::string* out);

}  // namespace dspark::tok
