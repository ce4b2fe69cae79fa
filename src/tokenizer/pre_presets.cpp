// tokenizer.ggml.pre -> the text pipeline of the model family's original tokenizer.json.
// One table: each row lists the names llama.cpp accepts for a family (src/llama-vocab.cpp) and
// the normalizers, pre-tokenizer steps and BPE flags of that family's tokenizer.json. Patterns
// are the tokenizer.json originals (Oniguruma syntax that PCRE2 reads the same way).
#include <string_view>
#include <utility>
#include <vector>

#include "loaders.h"

namespace dspark::tok {

namespace {

// Llama 3's Split pattern (Meta-Llama-3-8B tokenizer.json).
const char* const kLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen2's: as Llama 3's but single digits.
const char* const kQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Mistral's Tekken (Mistral-Nemo): case-aware words, single digits.
const char* const kTekken =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// OpenAI o200k (Xenova/gpt-4o): Tekken's words with contractions, digits in threes.
const char* const kGpt4o =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Seed-Coder: Qwen2's with newlines kept out of punctuation runs.
const char* const kSeedCoder =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Ling / BailingMoE (possessive quantifiers, as in its tokenizer.json).
const char* const kBailing =
    R"('(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+)";
// BLOOM (also Poro, GPT3-Finnish, Viking). The original " ?[^(\s|[.,!?…。，、।۔،])]+" nests a
// class, which Oniguruma reads as a union; this is the same set written flat.
const char* const kBloom =
    R"( ?[^(\s|.,!?\x{2026}\x{3002}\x{FF0C}\x{3001}\x{964}\x{6D4}\x{60C})]+)";
// DeepSeek LLM / Coder / V3 Split patterns (their tokenizer.json Sequence, in order).
const char* const kDsNewline = R"([\r\n])";
const char* const kDsLatin =
    R"(\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+)";
const char* const kDsPunct =
    R"(\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+)";
const char* const kDsTrailingSpace = R"(\s+$)";
const char* const kDsCjk = R"([\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+)";
const char* const kDsCoderLetters = R"(\s?\p{L}+)";
const char* const kDsCoderPunct = R"(\s?\p{P}+)";
const char* const kDsV3Digits = R"(\p{N}{1,3})";
const char* const kDsV3Cjk = R"([\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+)";
const char* const kDsV3Main =
    R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// One pre-tokenizer step of a table row.
struct StepDef {
  enum Kind { Split, Digits, DigitRuns, Punctuation, ByteLevel, ByteLevelRegex } kind;
  const char* pattern = nullptr;  // Split: the regex, Isolated behaviour
  // Digits: one by one; DigitRuns: runs; Punctuation: HF's, Contiguous behaviour.
};

struct PreDef {
  std::vector<std::string_view> names;
  bool nfc;
  std::vector<StepDef> steps;
  bool ignore_merges = false;
  bool add_bos = false;   // default when the file has no tokenizer.ggml.add_bos_token
  bool add_sep = false;   // default when the file has no tokenizer.ggml.add_sep_token
  bool drop_bos = false;  // the family never adds BOS (llama.cpp clears its BOS id)
};

using S = StepDef;
constexpr S kByteLevel{S::ByteLevel};         // ByteLevel(use_regex=false)
constexpr S kByteLevelRe{S::ByteLevelRegex};  // ByteLevel(use_regex=true): GPT-2's pattern
constexpr S kDigits{S::Digits};               // Digits(individual_digits=true)

// The table (namespace scope, read only after static initialisation).
const std::vector<PreDef> kTable = {
    // GPT-2 and families that reuse its ByteLevel pre-tokenizer unchanged.
    {{"gpt2", "default", "gpt-2", "phi-2", "jais", "jina-es", "jina-de", "jina-v2-es", "jina-v2-de",
      "a.x-4.0", "mellum", "exaone4", "trillion", "granite-docling"},
     false,
     {kByteLevelRe}},
    // RoBERTa-style embedders: as GPT-2, and a SEP token after the text.
    {{"jina-v2-code", "roberta-bpe"}, false, {kByteLevelRe}, false, false, true},
    // GPT-NeoX's tokenizer (MPT, OLMo): NFC, then GPT-2's ByteLevel.
    {{"mpt", "olmo"}, true, {kByteLevelRe}},
    // StarCoder and its descendants: single digits, then GPT-2's ByteLevel.
    {{"smollm", "starcoder", "refact", "codeshell", "exaone", "mellum2"},
     false,
     {kDigits, kByteLevelRe}},
    {{"command-r"}, true, {kDigits, kByteLevelRe}},
    // tiiuae/falcon-7b: the steps after ByteLevel see byte-mapped text (see pre_tokenize).
    {{"falcon"},
     false,
     {{S::Punctuation}, kByteLevelRe, {S::DigitRuns}, {S::Split, "[0-9][0-9][0-9]"}}},
    // tiiuae/Falcon3-7B-Base (llama.cpp gives it Llama 3's pattern; its tokenizer.json has
    // this). llama.cpp's ignore_merges and BOS defaults for it are kept.
    {{"falcon3"}, false, {{S::Punctuation}, kByteLevelRe, kDigits}, true, true},
    {{"llama-bpe", "llama3", "llama-v3", "pixtral", "midm-2.0", "lfm2"},
     false,
     {{S::Split, kLlama3}, kByteLevel},
     true,
     true},
    {{"dbrx", "smaug-bpe"}, false, {{S::Split, kLlama3}, kByteLevel}},
    {{"chatglm-bpe", "glm4"}, false, {{S::Split, kLlama3}, kByteLevel}, false, false, false, true},
    {{"qwen2", "deepseek-r1-qwen"}, true, {{S::Split, kQwen2}, kByteLevel}},
    {{"stablelm2", "megrez"}, false, {{S::Split, kQwen2}, kByteLevel}},
    {{"tekken"}, false, {{S::Split, kTekken}, kByteLevel}, true, true},
    {{"gpt-4o", "llama4", "kanana2", "minimax-m2", "talkie"},
     false,
     {{S::Split, kGpt4o}, kByteLevel}},
    {{"seed-coder"}, false, {{S::Split, kSeedCoder}, kByteLevel}},
    {{"bailingmoe", "bailingmoe2", "llada-moe"}, false, {{S::Split, kBailing}, kByteLevel}},
    {{"bloom", "poro-chat", "gpt3-finnish"}, false, {{S::Split, kBloom}, kByteLevel}},
    {{"viking"}, false, {{S::Split, kBloom}, kDigits, kByteLevel}},
    // UW/OLMo2-8B-SuperBPE-t180k: no whitespace split (its tokens span words); digit runs cut
    // into threes from the right by a zero-width split.
    {{"superbpe"}, false, {{S::DigitRuns}, {S::Split, R"((?=(\d{3})+(?!\d)))"}, kByteLevel}},
    {{"deepseek-llm"},
     false,
     {{S::Split, kDsNewline},
      {S::Split, kDsLatin},
      {S::Split, kDsPunct},
      {S::Split, kDsTrailingSpace},
      {S::Split, kDsCjk},
      kDigits,
      kByteLevel}},
    {{"deepseek-coder"},
     false,
     {{S::Split, kDsNewline},
      {S::Split, kDsCoderLetters},
      {S::Split, kDsCoderPunct},
      {S::Split, kDsCjk},
      kDigits,
      kByteLevel}},
    {{"deepseek-v3"},
     false,
     {{S::Split, kDsV3Digits}, {S::Split, kDsV3Cjk}, {S::Split, kDsV3Main}, kByteLevel}},
};

Result<PreTokenizerStep> build_step(const StepDef& s) {
  switch (s.kind) {
    case StepDef::Split:
      return make_split_step(s.pattern, false, SplitBehavior::Isolated, false);
    case StepDef::Digits:
      return make_digits_step(true);
    case StepDef::DigitRuns:
      return make_digits_step(false);
    case StepDef::Punctuation:
      return make_punctuation_step(SplitBehavior::Contiguous);
    case StepDef::ByteLevel:
      return make_byte_level_step(false, false);
    case StepDef::ByteLevelRegex:
      return make_byte_level_step(false, true);
  }
  return Error{"tokenizer: bad pre-tokenizer table entry"};
}

Result<PrePreset> build_preset(const PreDef& def) {
  PrePreset p;
  if (def.nfc) p.normalizers.push_back({NormalizerStep::Kind::Nfc, "", ""});
  for (const StepDef& s : def.steps) {
    auto step = build_step(s);
    if (!step.ok()) return step.error();
    p.pre_tokenizers.push_back(std::move(step).value());
  }
  p.ignore_merges = def.ignore_merges;
  p.add_bos_default = def.add_bos;
  p.add_sep_default = def.add_sep;
  p.drop_bos = def.drop_bos;
  return p;
}

}  // namespace

std::vector<std::string> gguf_pre_names() {
  std::vector<std::string> names;
  for (const PreDef& def : kTable) names.insert(names.end(), def.names.begin(), def.names.end());
  return names;
}

Result<PrePreset> gguf_pre_preset(const std::string& pre) {
  for (const PreDef& def : kTable) {
    for (std::string_view name : def.names) {
      if (name == pre) return build_preset(def);
    }
  }
  std::string known;
  for (const std::string& name : gguf_pre_names()) known += (known.empty() ? "" : ", ") + name;
  return Error{"tokenizer: unsupported tokenizer.ggml.pre '" + pre + "' (supported: " + known +
               ")"};
}

}  // namespace dspark::tok
