// The Hermes tool-call parser.
#include "tool_calls.h"

#include <algorithm>
#include <random>

#include "ordered_json.h"

namespace dspark::server {

namespace {

constexpr std::string_view kOpen = "<tool_call>";
constexpr std::string_view kClose = "</tool_call>";

bool is_space(char c) {
  return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// The length of the longest end of `text` that is a proper beginning of "<tool_call>".
size_t partial_open(std::string_view text) {
  for (size_t n = std::min(text.size(), kOpen.size() - 1); n > 0; --n) {
    if (text.substr(text.size() - n) == kOpen.substr(0, n)) return n;
  }
  return 0;
}

// A block's JSON as a call: an object with a non-empty string "name" and the arguments
// ("arguments", or "parameters" as some models write; absent: {}). False: not a call.
bool parse_call(std::string_view body, ToolCall* call) {
  OrderedJson j;
  if (!parse_ordered(trim(body), OrderedLimits{}, &j).empty() || !j.is_object()) return false;
  auto name = j.find("name");
  if (name == j.end() || !name->is_string() || name->get_ref<const std::string&>().empty()) {
    return false;
  }
  call->name = name->get<std::string>();
  auto args = j.find("arguments");
  if (args == j.end()) args = j.find("parameters");
  call->arguments = args == j.end() || args->is_null()
                        ? "{}"
                        : args->dump(-1, ' ', false, OrderedJson::error_handler_t::replace);
  return true;
}

}  // namespace

std::string new_tool_call_id() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr std::string_view kAlnum =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id += kAlnum[rng() % kAlnum.size()];
  return id;
}

ToolCallParser::ToolCallParser(size_t max_calls) : max_calls_(max_calls) {}

ToolCallParser::Delta ToolCallParser::feed(std::string_view text) {
  Delta out;
  buf_.append(text);
  while (true) {
    if (in_block_) {
      const size_t end = buf_.find(kClose, searched_);
      if (end == std::string::npos) {
        // The end tag may still begin in the last kClose.size() - 1 bytes.
        searched_ = buf_.size() >= kClose.size() ? buf_.size() - kClose.size() + 1 : 0;
        break;
      }
      const std::string body = buf_.substr(0, end);
      buf_.erase(0, end + kClose.size());
      in_block_ = false;
      searched_ = 0;
      close_block(body, &out);
      continue;
    }
    const size_t open = buf_.find(kOpen);
    if (open == std::string::npos) {
      const size_t keep = partial_open(buf_);
      emit_text(std::string_view(buf_).substr(0, buf_.size() - keep), &out);
      buf_.erase(0, buf_.size() - keep);
      break;
    }
    emit_text(std::string_view(buf_).substr(0, open), &out);
    buf_.erase(0, open + kOpen.size());
    in_block_ = true;
    searched_ = 0;
  }
  return out;
}

ToolCallParser::Delta ToolCallParser::finish() {
  Delta out;
  // An unclosed block is text, tag included; so is a held "<tool_c" that never completed.
  emit_text(in_block_ ? std::string(kOpen) + buf_ : buf_, &out);
  buf_.clear();
  in_block_ = false;
  if (n_calls_ == 0) out.content += held_space_;
  held_space_.clear();
  return out;
}

void ToolCallParser::emit_text(std::string_view text, Delta* out) {
  size_t end = text.size();
  while (end > 0 && is_space(text[end - 1])) --end;
  if (end == 0) {
    held_space_.append(text);
    return;
  }
  out->content += held_space_;
  out->content.append(text.substr(0, end));
  held_space_.assign(text.substr(end));
}

void ToolCallParser::close_block(std::string_view body, Delta* out) {
  ToolCall call;
  if (!parse_call(body, &call)) {
    emit_text(std::string(kOpen) + std::string(body) + std::string(kClose), out);
    return;
  }
  if (n_calls_ >= max_calls_) return;
  ++n_calls_;
  out->calls.push_back(std::move(call));
}

void ToolCallParser::Delta::append(Delta&& later) {
  content += later.content;
  for (ToolCall& call : later.calls) calls.push_back(std::move(call));
}

ParsedOutput parse_tool_calls(std::string_view text, size_t max_calls) {
  ToolCallParser parser(max_calls);
  ToolCallParser::Delta all = parser.feed(text);
  all.append(parser.finish());
  ParsedOutput out;
  out.content = std::move(all.content);
  out.calls = std::move(all.calls);
  for (ToolCall& c : out.calls) c.id = new_tool_call_id();
  if (!out.calls.empty()) out.content = std::string(trim(out.content));
  return out;
}

}  // namespace dspark::server
