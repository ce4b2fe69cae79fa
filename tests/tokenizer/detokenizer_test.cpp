// StreamingDetokenizer: multi-byte characters split across tokens, invalid UTF-8, flush.
#include <gtest/gtest.h>

#include "test_util.h"

namespace dspark::tok {
namespace {

const std::string kFffd = "\xEF\xBF\xBD";

class Streaming : public ::testing::Test {
 protected:
  void SetUp() override {
    tok_ = testing::build(testing::byte_level_spec({}, {special_token()}));
    ASSERT_TRUE(tok_);
  }
  static AddedToken special_token() {
    AddedToken t;
    t.content = "<|end|>";
    t.special = true;
    return t;
  }
  // Byte b's token id in byte_level_spec is b.
  std::vector<std::string> push_bytes(StreamingDetokenizer& d, const std::string& bytes) {
    std::vector<std::string> out;
    for (unsigned char c : bytes) out.push_back(d.push(c));
    return out;
  }
  std::unique_ptr<Tokenizer> tok_;
};

TEST_F(Streaming, HoldsBackSplitCharacters) {
  StreamingDetokenizer d(*tok_);
  // "é" (2 bytes), "€" (3), "😀" (4), one byte per token.
  EXPECT_EQ(push_bytes(d, "\xC3\xA9"), (std::vector<std::string>{"", "\xC3\xA9"}));
  EXPECT_EQ(push_bytes(d, "\xE2\x82\xAC"), (std::vector<std::string>{"", "", "\xE2\x82\xAC"}));
  EXPECT_EQ(push_bytes(d, "\xF0\x9F\x98\x80"),
            (std::vector<std::string>{"", "", "", "\xF0\x9F\x98\x80"}));
  EXPECT_EQ(d.flush(), "");
}

TEST_F(Streaming, EmitsCompletePrefixOfAToken) {
  auto spec = testing::byte_level_spec({{"a", "\xE4"}});  // token "a" + first byte of 你
  auto t = testing::build(spec);
  ASSERT_TRUE(t);
  StreamingDetokenizer d(*t);
  EXPECT_EQ(d.push(256), "a");
  EXPECT_EQ(d.push(0xBD), "");
  EXPECT_EQ(d.push(0xA0), "\xE4\xBD\xA0");
}

TEST_F(Streaming, InvalidBytesBecomeReplacementCharacters) {
  StreamingDetokenizer d(*tok_);
  EXPECT_EQ(d.push(0xFF), kFffd);  // can never start a character: replaced at once
  EXPECT_EQ(d.push(0xC3), "");     // may still complete
  EXPECT_EQ(d.push('A'), kFffd + "A");
  EXPECT_EQ(d.push(0xE2), "");
  EXPECT_EQ(d.push(0x82), "");
  EXPECT_EQ(d.flush(), kFffd);  // the truncated sequence is one replacement
  EXPECT_EQ(d.flush(), "");
}

TEST_F(Streaming, SpecialTokensFollowRenderFlag) {
  const int32_t end = tok_->token_id("<|end|>");
  StreamingDetokenizer hidden(*tok_);
  StreamingDetokenizer shown(*tok_, true);
  EXPECT_EQ(hidden.push(end), "");
  EXPECT_EQ(shown.push(end), "<|end|>");
}

TEST_F(Streaming, ConcatenationEqualsDecodeForValidText) {
  const std::string text =
      "Hi \xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x92\xBB!";
  const auto ids = tok_->encode(text, false, false);
  StreamingDetokenizer d(*tok_);
  std::string streamed;
  for (int32_t id : ids) streamed += d.push(id);
  streamed += d.flush();
  EXPECT_EQ(streamed, text);
  EXPECT_EQ(tok_->decode(ids, false), text);
}

TEST_F(Streaming, DecodeKeepsRawBytes) {
  EXPECT_EQ(tok_->decode({0xC3}, false), "\xC3");
}

}  // namespace
}  // namespace dspark::tok
