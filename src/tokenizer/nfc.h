// Unicode NFC normalization (canonical decomposition, canonical ordering, canonical
// composition), as the Hugging Face "NFC" normalizer applies it (Qwen2 tokenizers use it).
#pragma once

#include <string>
#include <string_view>

namespace dspark::tok {

// s must be valid UTF-8. Text with no code point at or above U+0300 is returned unchanged.
std::string nfc_normalize(std::string_view s);

}  // namespace dspark::tok
