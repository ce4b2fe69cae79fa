#include "tokenizer/nfc.h"

#include <gtest/gtest.h>

namespace dspark::tok {
namespace {

TEST(Nfc, AsciiAndPrecomposedUnchanged) {
  EXPECT_EQ(nfc_normalize("plain ascii"), "plain ascii");
  EXPECT_EQ(nfc_normalize("caf\xC3\xA9"), "caf\xC3\xA9");
  EXPECT_EQ(nfc_normalize("\xE4\xBD\xA0\xE5\xA5\xBD"), "\xE4\xBD\xA0\xE5\xA5\xBD");  // 你好
}

TEST(Nfc, ComposesCombiningMarks) {
  EXPECT_EQ(nfc_normalize("e\xCC\x81"), "\xC3\xA9");     // e + U+0301 -> é
  EXPECT_EQ(nfc_normalize("A\xCC\x8A"), "\xC3\x85");     // A + ring -> Å
  EXPECT_EQ(nfc_normalize("\xE2\x84\xAB"), "\xC3\x85");  // Angstrom sign (singleton)
  EXPECT_EQ(nfc_normalize("\xE1\xB8\x8B\xCC\xA3"), "\xE1\xB8\x8D\xCC\x87");  // ḋ+◌̣ -> ḍ+◌̇
}

TEST(Nfc, ReordersNonStarters) {
  // q + dot above (230) + dot below (220): reordered, nothing composes with q.
  EXPECT_EQ(nfc_normalize("q\xCC\x87\xCC\xA3"), "q\xCC\xA3\xCC\x87");
}

TEST(Nfc, CompositionExclusionsStayDecomposed) {
  EXPECT_EQ(nfc_normalize("\xE0\xA5\x98"), "\xE0\xA4\x95\xE0\xA4\xBC");  // U+0958
}

TEST(Nfc, Hangul) {
  // U+1100 U+1161 U+11A8 (jamo) -> U+AC01 각
  EXPECT_EQ(nfc_normalize("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8"), "\xEA\xB0\x81");
  EXPECT_EQ(nfc_normalize("\xEA\xB0\x81"), "\xEA\xB0\x81");
}

TEST(Nfc, LeadingCombiningMarkIsKept) {
  EXPECT_EQ(nfc_normalize("\xCC\x81"
                          "e"),
            "\xCC\x81"
            "e");
}

}  // namespace
}  // namespace dspark::tok
