// Robustness of the chat template interpreter: mutated real templates and random fragment soup
// must parse or fail cleanly, and render or fail cleanly (run under ASan/UBSan to catch memory
// errors). Deterministic: fixed seeds.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "dspark/chat_template.h"

namespace dspark::chat {
namespace {

const char* kContext = R"({
  "messages": [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hé ✓ 😀"},
    {"role": "assistant", "content": "<think>r</think>ok", "tool_calls": [
      {"type": "function", "function": {"name": "f", "arguments": {"a": [1, 2.5, null]}}}]},
    {"role": "tool", "content": "42"},
    {"role": "user", "content": ""}
  ],
  "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
  "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>"
})";

const std::vector<std::string> kFragments = {
    "{{",
    "}}",
    "{%",
    "%}",
    "{#",
    "#}",
    "{%-",
    "-%}",
    "{{-",
    "-}}",
    "{%+",
    "+%}",
    " for m in messages ",
    " endfor ",
    " if ",
    " endif ",
    " else ",
    " elif ",
    " set ",
    " ns = namespace(a=1, b=[]) ",
    " ns.a = ns.a + 1 ",
    " macro f(a, b=2) ",
    " endmacro ",
    "f(1)",
    "f(f(1))",
    "loop.index0",
    "loop.last",
    "messages[0]",
    "messages[::-1]",
    "messages[1:]",
    "[-1]",
    "|",
    " tojson ",
    " trim ",
    " length ",
    " default('x') ",
    " items ",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "'",
    "\"",
    "\\",
    "~",
    "+",
    "-",
    "*",
    "**",
    "//",
    "%",
    "==",
    " is defined ",
    " is not none ",
    " in ",
    " not ",
    " and ",
    " or ",
    "range(",
    "range(9)",
    "raise_exception('boom')",
    "strftime_now('%Y')",
    " ",
    "\n",
    "\t",
    "x",
    "m.content",
    "m.content.split('</think>')[-1].lstrip('\\n')",
    "1e309",
    "0x",
    "9999999999999999999",
    "'\\u00e9'",
    "'\\x'",
    "{% raw %}",
    "{% endraw %}",
    " break ",
    " continue ",
    " with x=1 ",
    " endwith ",
    " filter upper ",
    " endfilter ",
    " set t ",
    " endset ",
    "|map(attribute='role')",
    "|selectattr('role','equalto','user')|list",
    "\xff\xfe",
    "\xc3",
    std::string(1, '\0'),
    ":",
    ",",
    ".",
    "=",
};

std::vector<std::string> seed_templates() {
  std::vector<std::string> seeds;
  const std::filesystem::path dir =
      std::filesystem::path(DSPARK_SOURCE_DIR) / "tests" / "chat_template" / "chat_templates";
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    seeds.push_back(ss.str());
  }
  std::sort(seeds.begin(), seeds.end());
  return seeds;
}

struct Tally {
  int parsed = 0, parse_failed = 0, rendered = 0, render_failed = 0;
};

void exercise(const std::string& source, Tally* tally) {
  auto t = ChatTemplate::parse(source);
  if (!t.ok()) {
    ++tally->parse_failed;
    EXPECT_FALSE(t.error().message.empty());
    return;
  }
  ++tally->parsed;
  auto out = t->render_json(kContext);
  if (out.ok())
    ++tally->rendered;
  else
    ++tally->render_failed;
  std::vector<Message> msgs = {{"user", "hi", std::nullopt}, {"assistant", "", "n"}};
  auto plain = t->render(msgs, RenderOptions{});
  if (!plain.ok()) {
    EXPECT_FALSE(plain.error().message.empty());
  }
}

TEST(ChatTemplateFuzz, MutatedTemplatesNeverCrash) {
  const auto seeds = seed_templates();
  ASSERT_FALSE(seeds.empty());
  std::mt19937 rng(1234);
  auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  Tally tally;
  for (int iter = 0; iter < 1500; ++iter) {
    std::string s = seeds[pick(seeds.size())];
    const int n_mutations = 1 + static_cast<int>(pick(6));
    for (int k = 0; k < n_mutations; ++k) {
      const size_t pos = s.empty() ? 0 : pick(s.size() + 1);
      switch (pick(5)) {
        case 0:  // delete a range
          if (!s.empty() && pos < s.size())
            s.erase(pos, 1 + pick(std::min<size_t>(40, s.size() - pos)));
          break;
        case 1:  // insert a fragment
          s.insert(pos, kFragments[pick(kFragments.size())]);
          break;
        case 2:  // duplicate a slice
          if (!s.empty() && pos < s.size())
            s.insert(pick(s.size() + 1), s.substr(pos, 1 + pick(60)));
          break;
        case 3:  // overwrite a byte
          if (!s.empty() && pos < s.size()) s[pos] = static_cast<char>(pick(256));
          break;
        default:  // truncate
          s.resize(pos);
      }
    }
    exercise(s, &tally);
  }
  // Both outcomes must actually occur, or the test exercises less than it claims.
  EXPECT_GT(tally.parsed, 100);
  EXPECT_GT(tally.parse_failed, 100);
  EXPECT_GT(tally.rendered, 50);
}

TEST(ChatTemplateFuzz, FragmentSoupNeverCrashes) {
  std::mt19937 rng(99);
  auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  Tally tally;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string s;
    const size_t n = 1 + pick(30);
    for (size_t k = 0; k < n; ++k) s += kFragments[pick(kFragments.size())];
    exercise(s, &tally);
  }
  EXPECT_GT(tally.parsed, 100);
  EXPECT_GT(tally.parse_failed, 100);
}

}  // namespace
}  // namespace dspark::chat
