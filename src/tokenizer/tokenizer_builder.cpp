// build_tokenizer: checks a TokenizerSpec, resolves merges to ids (or derives them from
// SentencePiece scores), precomputes each token's decoded bytes and the stop ids.
#include <algorithm>

#include "bpe_tokenizer.h"
#include "byte_unicode.h"
#include "dspark/text.h"

namespace dspark::tok {

namespace {

size_t char_count(std::string_view s) {
  return static_cast<size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<uint8_t>(c) & 0xC0) != 0x80; }));
}

// Hugging Face's merges for a SentencePiece vocabulary without a merge list (transformers'
// generate_merges): every split of a token into two vocabulary tokens, ordered by the token's
// score (best first), then longer left part, then longer right part, then token id, then the
// ids of the parts.
std::vector<Merge> merges_from_scores(const TokenizerSpec& spec, const StringIdMap& vocab) {
  struct Candidate {
    Merge merge;
    float score;
    size_t len_left, len_right;
  };
  std::vector<Candidate> all;
  std::vector<Candidate> local;
  for (size_t id = 0; id < spec.tokens.size(); ++id) {
    const std::string& t = spec.tokens[id];
    if (!spec.in_model[id] || !utf8_is_valid(t)) continue;  // text never splits into such
    local.clear();
    size_t pos = 0;
    while (pos < t.size()) {
      (void)utf8_next(t, &pos);
      if (pos >= t.size()) break;
      const auto l = vocab.find(std::string_view(t).substr(0, pos));
      const auto r = vocab.find(std::string_view(t).substr(pos));
      if (l == vocab.end() || r == vocab.end()) continue;
      local.push_back({{l->second, r->second, static_cast<int32_t>(id)},
                       spec.scores[id],
                       char_count(l->first),
                       char_count(r->first)});
    }
    std::sort(local.begin(), local.end(), [](const Candidate& a, const Candidate& b) {
      return std::pair(a.merge.left, a.merge.right) < std::pair(b.merge.left, b.merge.right);
    });
    all.insert(all.end(), local.begin(), local.end());
  }
  std::stable_sort(all.begin(), all.end(), [](const Candidate& a, const Candidate& b) {
    if (a.score != b.score) return a.score > b.score;
    if (a.len_left != b.len_left) return a.len_left > b.len_left;
    return a.len_right > b.len_right;
  });
  std::vector<Merge> merges;
  merges.reserve(all.size());
  for (const Candidate& c : all) merges.push_back(c.merge);
  return merges;
}

Result<std::vector<Merge>> resolve_merges(const TokenizerSpec& spec, const StringIdMap& vocab) {
  std::vector<Merge> merges;
  merges.reserve(spec.merges.size());
  for (const auto& [left, right] : spec.merges) {
    const auto l = vocab.find(left);
    const auto r = vocab.find(right);
    const auto m = vocab.find(left + right);
    if (l == vocab.end() || r == vocab.end() || m == vocab.end()) {
      return Error{"tokenizer: merge '" + left + " " + right +
                   "' uses a token that is not in the vocabulary"};
    }
    merges.push_back({l->second, r->second, m->second});
  }
  return merges;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// What a token decodes to, before special-token hiding.
std::string decoded_bytes(const std::string& token, const DecodeOptions& d) {
  if (d.byte_level) {
    std::string bytes;
    // A token spelled outside the byte alphabet (an added token) decodes to its own text.
    return byte_level_to_bytes(token, &bytes) ? bytes : token;
  }
  if (d.byte_tokens && token.size() == 6 && token.compare(0, 3, "<0x") == 0 && token[5] == '>') {
    const int hi = hex_digit(token[3]), lo = hex_digit(token[4]);
    if (hi >= 0 && lo >= 0) return std::string(1, static_cast<char>(hi * 16 + lo));
  }
  if (d.space_marker.empty()) return token;
  std::string out;
  size_t pos = 0;
  while (true) {
    const size_t hit = token.find(d.space_marker, pos);
    if (hit == std::string::npos) break;
    out.append(token, pos, hit - pos);
    out.push_back(' ');
    pos = hit + d.space_marker.size();
  }
  out.append(token, pos);
  return out;
}

// EOS, the ids the model files name, and the end-of-turn tokens the vocabulary has as added
// tokens (a plain vocabulary entry spelled "</s>", as in Qwen2's, is ordinary text).
std::vector<int32_t> stop_ids_for(const TokenizerSpec& spec) {
  std::vector<int32_t> stops;
  auto add = [&](int32_t id) {
    if (id >= 0 && std::find(stops.begin(), stops.end(), id) == stops.end()) stops.push_back(id);
  };
  add(spec.eos_id);
  for (int32_t id : spec.extra_stop_ids) add(id);
  for (const char* name :
       {"<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>", "<end_of_turn>", "</s>"}) {
    for (const AddedToken& t : spec.added) {
      if (t.content == name) add(t.id);
    }
  }
  return stops;
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> build_tokenizer(TokenizerSpec spec) {
  const size_t n = spec.tokens.size();
  if (n == 0) return Error{"tokenizer: the vocabulary is empty"};
  if (n > static_cast<size_t>(INT32_MAX)) return Error{"tokenizer: the vocabulary is too large"};
  if (spec.in_model.size() != n) return Error{"tokenizer: in_model does not match the vocabulary"};
  if (spec.merges_from_scores && spec.scores.size() != n) {
    return Error{"tokenizer: " + std::to_string(spec.scores.size()) + " scores for " +
                 std::to_string(n) + " tokens"};
  }
  auto in_range = [&](int32_t id) { return id >= 0 && static_cast<size_t>(id) < n; };
  for (const AddedToken& t : spec.added) {
    if (!in_range(t.id)) {
      return Error{"tokenizer: added token '" + t.content + "' has id " + std::to_string(t.id) +
                   " outside the vocabulary of " + std::to_string(n)};
    }
  }
  for (const auto* list : {&spec.prefix_ids, &spec.suffix_ids, &spec.extra_stop_ids}) {
    for (int32_t id : *list) {
      if (!in_range(id))
        return Error{"tokenizer: special token id " + std::to_string(id) +
                     " is outside the vocabulary"};
    }
  }
  if (spec.bos_id >= 0 && !in_range(spec.bos_id)) return Error{"tokenizer: BOS id out of range"};
  if (spec.eos_id >= 0 && !in_range(spec.eos_id)) return Error{"tokenizer: EOS id out of range"};
  if (spec.bos_id < -1 || spec.eos_id < -1) return Error{"tokenizer: negative BOS/EOS id"};
  if (spec.bpe.unk_id >= 0 && !in_range(spec.bpe.unk_id)) {
    return Error{"tokenizer: unknown-token id out of range"};
  }

  // The BPE model's vocabulary: keyed by raw bytes for byte-level models.
  StringIdMap text_vocab;  // model tokens by their stored text (merges are written that way)
  StringIdMap model_vocab;
  for (size_t id = 0; id < n; ++id) {
    if (!spec.in_model[id] || spec.tokens[id].empty()) continue;
    const auto id32 = static_cast<int32_t>(id);
    text_vocab.emplace(spec.tokens[id], id32);
    if (spec.bpe.byte_level) {
      std::string raw;
      if (byte_level_to_bytes(spec.tokens[id], &raw)) model_vocab.emplace(std::move(raw), id32);
    } else {
      model_vocab.emplace(spec.tokens[id], id32);
    }
  }
  std::vector<Merge> merges;
  if (spec.merges_from_scores) {
    merges = merges_from_scores(spec, text_vocab);
  } else {
    auto resolved = resolve_merges(spec, text_vocab);
    if (!resolved.ok()) return resolved.error();
    merges = std::move(resolved).value();
  }
  auto model = std::make_unique<BpeModel>(spec.bpe, std::move(model_vocab), merges);

  StringIdMap token_to_id;
  for (size_t id = 0; id < n; ++id) token_to_id.emplace(spec.tokens[id], static_cast<int32_t>(id));
  for (const AddedToken& t : spec.added) token_to_id.emplace(t.content, t.id);
  std::vector<bool> special(n, false);
  std::vector<std::string> bytes(n);
  for (size_t id = 0; id < n; ++id) bytes[id] = decoded_bytes(spec.tokens[id], spec.decode);
  for (const AddedToken& t : spec.added) {
    if (t.special) special[t.id] = true;
  }
  std::vector<int32_t> stops = stop_ids_for(spec);

  std::unique_ptr<BpeTokenizer> tok(new BpeTokenizer(std::move(spec), std::move(model)));
  tok->token_bytes_ = std::move(bytes);
  tok->special_ = std::move(special);
  tok->token_to_id_ = std::move(token_to_id);
  tok->stop_ids_ = std::move(stops);
  return std::unique_ptr<Tokenizer>(std::move(tok));
}

}  // namespace dspark::tok
