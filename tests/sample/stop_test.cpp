// Stop-string matching over streamed pieces, and the finish checker.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "dspark/sample.h"

namespace dspark {
namespace {

struct Streamed {
  std::string text;  // everything emitted, including the final flush
  bool stopped = false;
};

// Feeds pieces in order, checking that what is emitted so far is always a prefix of want.
Streamed stream(const std::vector<std::string>& stops, const std::vector<std::string>& pieces,
                const std::string& want) {
  StopStringMatcher matcher(stops);
  Streamed out;
  for (const std::string& piece : pieces) {
    out.text += matcher.feed(piece);
    EXPECT_EQ(want.compare(0, out.text.size(), out.text), 0) << "emitted past " << want;
  }
  out.stopped = matcher.stopped();
  out.text += matcher.flush();
  return out;
}

// Text before the stop string that completes first (the earliest starting on a tie), or all of
// it, found by trying every end position in turn.
std::string expected_output(const std::string& text, const std::vector<std::string>& stops) {
  for (size_t end = 1; end <= text.size(); ++end) {
    size_t start = end;
    for (const std::string& s : stops) {
      if (s.size() <= end && text.compare(end - s.size(), s.size(), s) == 0) {
        start = std::min(start, end - s.size());
      }
    }
    if (start < end) return text.substr(0, start);
  }
  return text;
}

TEST(StopStringMatcher, StopSplitAtEveryPairOfBoundaries) {
  const std::string text = "Hello, world! STOP here";
  const std::vector<std::string> stops = {"STOP"};
  const std::string want = "Hello, world! ";
  for (size_t i = 0; i <= text.size(); ++i) {
    for (size_t j = i; j <= text.size(); ++j) {
      const Streamed s =
          stream(stops, {text.substr(0, i), text.substr(i, j - i), text.substr(j)}, want);
      EXPECT_TRUE(s.stopped) << i << "," << j;
      EXPECT_EQ(s.text, want) << i << "," << j;
    }
  }
}

TEST(StopStringMatcher, ByteByByteMatchesDirectSearchOnRandomText) {
  std::mt19937 rng(4);
  std::uniform_int_distribution<int> letter(0, 2), len(1, 4), cut(0, 3);
  auto random_text = [&](size_t n) {
    std::string s;
    for (size_t i = 0; i < n; ++i) s += char('a' + letter(rng));
    return s;
  };
  for (int trial = 0; trial < 2000; ++trial) {
    const std::vector<std::string> stops = {random_text(size_t(len(rng))),
                                            random_text(size_t(len(rng)))};
    const std::string text = random_text(30);
    std::vector<std::string> pieces;
    for (size_t i = 0; i < text.size();) {
      const size_t n = std::min(text.size() - i, size_t(cut(rng)));
      pieces.push_back(text.substr(i, n));
      i += n;
    }
    const std::string want = expected_output(text, stops);
    const Streamed s = stream(stops, pieces, want);
    EXPECT_EQ(s.text, want) << text << " / " << stops[0] << " / " << stops[1];
    EXPECT_EQ(s.stopped, want.size() < text.size());
  }
}

TEST(StopStringMatcher, OverlappingCandidatesPickTheFirstToComplete) {
  // "bc" completes before "abcd" could, whatever the pieces: generation stops there.
  EXPECT_EQ(stream({"abcd", "bc"}, {"xa", "b", "cd"}, "xa").text, "xa");
  EXPECT_EQ(stream({"abcd", "bc"}, {"xabcd"}, "xa").text, "xa");
  // A long candidate that fails must release its text, while a shorter one still matches.
  EXPECT_EQ(stream({"abcX", "cd"}, {"ab", "c", "d"}, "ab").text, "ab");
  // Self-overlapping stop string: "aab" inside "aaab".
  EXPECT_EQ(stream({"aab"}, {"a", "a", "a", "b"}, "a").text, "a");
  // Both complete at the same byte: the one starting earlier wins.
  StopStringMatcher matcher({"zz", "yzz"});
  EXPECT_EQ(matcher.feed("xyzz"), "x");
  EXPECT_EQ(matcher.matched(), 1u);
}

TEST(StopStringMatcher, HoldsBackOnlyWhatCouldStartAStop) {
  StopStringMatcher matcher({"END"});
  EXPECT_EQ(matcher.feed("abc E"), "abc ");
  EXPECT_EQ(matcher.feed("N"), "");
  EXPECT_EQ(matcher.feed("x"), "ENx");
  EXPECT_FALSE(matcher.stopped());
  EXPECT_EQ(matcher.feed("EN"), "");
  EXPECT_EQ(matcher.flush(), "EN");
}

TEST(StopStringMatcher, NothingAfterTheStop) {
  StopStringMatcher matcher({"\n\n"});
  EXPECT_EQ(matcher.feed("one\n\ntwo"), "one");
  EXPECT_TRUE(matcher.stopped());
  EXPECT_EQ(matcher.feed("three"), "");
  EXPECT_EQ(matcher.flush(), "");
}

TEST(StopStringMatcher, MultibyteTextStreamsWholeCharacters) {
  const std::string text = "h\xC3\xA9llo \xE2\x86\x92 \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x98\x80!";
  StopStringMatcher matcher({});
  std::string out;
  for (char c : text) {
    const std::string piece = matcher.feed(std::string(1, c));
    // Every emitted chunk ends on a character boundary: the next byte is not a continuation.
    if (!piece.empty()) {
      out += piece;
      ASSERT_LT(out.size(), text.size() + 1);
      if (out.size() < text.size()) {
        EXPECT_NE(static_cast<unsigned char>(text[out.size()]) & 0xC0, 0x80) << out.size();
      }
    }
  }
  out += matcher.flush();
  EXPECT_EQ(out, text);
}

TEST(StopStringMatcher, MultibyteStopSplitInsideCharacters) {
  const std::string text = "caf\xC3\xA9 \xE4\xB8\x96\xE7\x95\x8C end";
  const std::vector<std::string> stops = {"\xE4\xB8\x96\xE7\x95\x8C"};  // a CJK word
  const std::string want = "caf\xC3\xA9 ";
  for (size_t i = 0; i <= text.size(); ++i) {
    for (size_t j = i; j <= text.size(); ++j) {
      const Streamed s =
          stream(stops, {text.substr(0, i), text.substr(i, j - i), text.substr(j)}, want);
      EXPECT_EQ(s.text, want) << i << "," << j;
    }
  }
}

SamplingParams finish_params() {
  SamplingParams p;
  p.max_tokens = 5;
  p.stop_token_ids = {7};
  p.stop = {"###"};
  return p;
}

TEST(FinishChecker, LengthFlushesHeldText) {
  FinishChecker checker(finish_params(), {2});
  EXPECT_EQ(checker.on_token(10, "a").text, "a");
  EXPECT_EQ(checker.on_token(10, "b").text, "b");
  EXPECT_EQ(checker.on_token(10, "c").text, "c");
  EXPECT_EQ(checker.on_token(10, "#").text, "");
  const FinishChecker::Step last = checker.on_token(10, "#");
  EXPECT_EQ(last.text, "##");
  ASSERT_TRUE(last.finish.has_value());
  EXPECT_STREQ(finish_reason_name(*last.finish), "length");
  EXPECT_TRUE(checker.finished());
  EXPECT_EQ(checker.generated(), 5);
  EXPECT_FALSE(checker.on_token(10, "z").finish.has_value());  // finished: ignored
}

TEST(FinishChecker, StopStringAcrossTokensIsNotEmitted) {
  FinishChecker checker(finish_params(), {2});
  EXPECT_EQ(checker.on_token(10, "ok #").text, "ok ");
  const FinishChecker::Step step = checker.on_token(11, "## more");
  EXPECT_EQ(step.text, "");
  EXPECT_EQ(step.finish, FinishReason::kStop);
}

TEST(FinishChecker, StopIdsAndEos) {
  FinishChecker by_id(finish_params(), {2});
  EXPECT_EQ(by_id.on_token(10, "#").text, "");
  const FinishChecker::Step step = by_id.on_token(7, "<stop>");
  EXPECT_EQ(step.text, "#");  // held text is released, the stop token's own text is not
  EXPECT_EQ(step.finish, FinishReason::kStop);

  FinishChecker by_eos(finish_params(), {2});
  EXPECT_EQ(by_eos.on_token(2, "</s>").finish, FinishReason::kStop);

  SamplingParams ignoring = finish_params();
  ignoring.ignore_eos = true;
  FinishChecker past_eos(ignoring, {2});
  const FinishChecker::Step eos_step = past_eos.on_token(2, "</s>");
  EXPECT_FALSE(eos_step.finish.has_value());
  EXPECT_EQ(eos_step.text, "</s>");
  EXPECT_EQ(past_eos.on_token(7, "").finish, FinishReason::kStop);  // other stop ids still end
}

TEST(FinishChecker, MinTokensDefersStopIds) {
  SamplingParams p = finish_params();
  p.min_tokens = 2;
  FinishChecker checker(p, {2});
  EXPECT_FALSE(checker.on_token(2, "x").finish.has_value());
  EXPECT_FALSE(checker.on_token(7, "y").finish.has_value());
  EXPECT_EQ(checker.on_token(7, "z").finish, FinishReason::kStop);
}

}  // namespace
}  // namespace dspark
