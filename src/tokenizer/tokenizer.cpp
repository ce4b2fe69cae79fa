// Public entry points: loading, whole-sequence decode, streaming detokenization.
#include "dspark/tokenizer.h"

#include <fstream>
#include <sstream>

#include "dspark/text.h"
#include "loaders.h"

namespace dspark {

namespace {

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{"tokenizer: cannot open " + path};
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Error{"tokenizer: cannot read " + path};
  return ss.str();
}

std::string parent_dir(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

Result<std::unique_ptr<Tokenizer>> build(Result<tok::TokenizerSpec> spec, const std::string& src) {
  if (!spec.ok()) return Error{spec.error().message + " (" + src + ")"};
  auto tokenizer = tok::build_tokenizer(std::move(spec).value());
  if (!tokenizer.ok()) return Error{tokenizer.error().message + " (" + src + ")"};
  return tokenizer;
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_model_file(const ModelFile& file) {
  if (file.format() == FileFormat::Gguf) return build(tok::spec_from_gguf(file), file.path());
  return from_hf_json(file.dir() + "/tokenizer.json");
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_hf_json(const std::string& path) {
  auto text = read_file(path);
  if (!text.ok()) return text.error();
  return build(tok::spec_from_hf_json(text.value(), parent_dir(path)), path);
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool render_special) const {
  std::string out;
  for (int32_t id : ids) out += token_bytes(id, render_special);
  finish_decode(&out);
  return out;
}

StreamingDetokenizer::StreamingDetokenizer(const Tokenizer& tokenizer, bool render_special)
    : tokenizer_(tokenizer), render_special_(render_special) {}

std::string StreamingDetokenizer::push(int32_t id) {
  pending_ += tokenizer_.token_bytes(id, render_special_);
  // Emit every complete character; bytes that can never become one are replaced now; only a
  // truncated but still completable sequence at the end is held back.
  std::string out;
  size_t pos = 0;
  while (pos < pending_.size()) {
    const size_t n = utf8_valid_len(pending_, pos);
    if (n > 0) {
      out.append(pending_, pos, n);
      pos += n;
    } else if (utf8_incomplete_tail(pending_, pos)) {
      break;
    } else {
      utf8_append(kReplacementChar, &out);
      pos += utf8_maximal_subpart(pending_, pos);
    }
  }
  pending_.erase(0, pos);
  return out;
}

std::string StreamingDetokenizer::flush() {
  std::string out = utf8_sanitize(pending_);
  pending_.clear();
  return out;
}

}  // namespace dspark
