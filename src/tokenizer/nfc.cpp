#include "nfc.h"

#include <algorithm>
#include <cstdint>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "dspark/text.h"

namespace dspark::tok {

namespace {

struct CccRange {
  char32_t first, last;
  uint8_t ccc;
};
struct Decomposition {
  char32_t cp, a, b;  // b == 0: a one-code-point decomposition
};

#include "nfc_tables.inc"

// Hangul syllables compose and decompose algorithmically (Unicode 3.12).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28;
constexpr char32_t kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

uint8_t ccc_of(char32_t cp) {
  if (cp < 0x300) return 0;
  const auto* end = std::end(kCccRanges);
  const auto* it = std::upper_bound(std::begin(kCccRanges), end, cp,
                                    [](char32_t c, const CccRange& r) { return c < r.first; });
  if (it == std::begin(kCccRanges)) return 0;
  --it;
  return cp <= it->last ? it->ccc : 0;
}

const Decomposition* decomposition_of(char32_t cp) {
  const auto* end = std::end(kDecompositions);
  const auto* it = std::lower_bound(std::begin(kDecompositions), end, cp,
                                    [](const Decomposition& d, char32_t c) { return d.cp < c; });
  return it != end && it->cp == cp ? it : nullptr;
}

uint64_t pair_key(char32_t a, char32_t b) {
  return (static_cast<uint64_t>(a) << 32) | b;
}

const std::unordered_map<uint64_t, char32_t>& compositions() {
  static const std::unordered_map<uint64_t, char32_t> map = [] {
    const std::unordered_set<char32_t> excluded(std::begin(kNoRecompose), std::end(kNoRecompose));
    std::unordered_map<uint64_t, char32_t> m;
    for (const Decomposition& d : kDecompositions) {
      if (d.b != 0 && !excluded.count(d.cp)) m.emplace(pair_key(d.a, d.b), d.cp);
    }
    return m;
  }();
  return map;
}

void decompose(char32_t cp, std::vector<char32_t>* out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const char32_t s = cp - kSBase;
    out->push_back(kLBase + s / kNCount);
    out->push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount != 0) out->push_back(kTBase + s % kTCount);
    return;
  }
  const Decomposition* d = cp >= 0xC0 ? decomposition_of(cp) : nullptr;
  if (d == nullptr) {
    out->push_back(cp);
    return;
  }
  decompose(d->a, out);
  if (d->b != 0) decompose(d->b, out);
}

// 0 when the pair does not compose.
char32_t compose(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount) {
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  }
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase &&
      b < kTBase + kTCount) {
    return a + (b - kTBase);
  }
  const auto& map = compositions();
  const auto it = map.find(pair_key(a, b));
  return it == map.end() ? 0 : it->second;
}

}  // namespace

std::string nfc_normalize(std::string_view s) {
  // Below U+0300 every character is its own NFC form and nothing combines with it, which is
  // the same as every byte being below 0xCC (the lead byte of U+0300).
  if (std::all_of(s.begin(), s.end(), [](char c) { return static_cast<uint8_t>(c) < 0xCC; })) {
    return std::string(s);
  }
  std::vector<char32_t> cps;
  cps.reserve(s.size());
  size_t pos = 0;
  while (pos < s.size()) decompose(utf8_next(s, &pos), &cps);

  // Canonical ordering: stable sort of each run of non-starters by combining class.
  std::vector<uint8_t> ccc(cps.size());
  for (size_t i = 0; i < cps.size(); ++i) ccc[i] = ccc_of(cps[i]);
  for (size_t i = 1; i < cps.size(); ++i) {
    for (size_t j = i; j > 0 && ccc[j] != 0 && ccc[j - 1] > ccc[j]; --j) {
      std::swap(cps[j], cps[j - 1]);
      std::swap(ccc[j], ccc[j - 1]);
    }
  }

  // Canonical composition: a character joins the last starter unless blocked by a character of
  // equal or higher class in between (or by any starter).
  std::vector<char32_t> out;
  out.reserve(cps.size());
  size_t starter = 0;
  int last_ccc = -1;  // -1: nothing yet; 256: the text starts with a non-starter
  for (size_t i = 0; i < cps.size(); ++i) {
    const int c = ccc[i];
    if (last_ccc >= 0) {
      const bool adjacent_or_unblocked = last_ccc == 0 || last_ccc < c;
      if (adjacent_or_unblocked && last_ccc != 256) {
        const char32_t composite = compose(out[starter], cps[i]);
        if (composite != 0) {
          out[starter] = composite;
          continue;
        }
      }
    }
    if (c == 0) starter = out.size();
    last_ccc = (last_ccc < 0 && c != 0) ? 256 : c;
    out.push_back(cps[i]);
  }

  std::string result;
  result.reserve(s.size());
  for (char32_t cp : out) utf8_append(cp, &result);
  return result;
}

}  // namespace dspark::tok
