// Shared by the gtests parameterized over tiny model names (tests/model, tests/spec).
#pragma once

#include <gtest/gtest.h>

#include <cctype>
#include <string>

namespace dspark::test {

// The test name for a file name parameter ("llama-q4_0.gguf" -> "llama_q4_0_gguf"): gtest names
// take only letters, digits and '_'.
inline std::string param_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string n = info.param;
  for (char& ch : n) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return n;
}

}  // namespace dspark::test
