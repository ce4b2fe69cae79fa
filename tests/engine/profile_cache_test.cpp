// The speculation start-up profile kept between runs: the file's round trip, misses on another
// key or a damaged file, and an engine that reads a matching profile instead of timing again.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "engine/profile_cache.h"
#include "engine_helpers.h"

namespace dspark {
namespace {

using engine::LatencyProfile;

std::string temp_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("dspark_profile_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  return dir.string();
}

std::string contents(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(LatencyProfileFile, RoundTripsForItsKeyOnly) {
  const std::string dir = temp_dir("roundtrip");
  const std::string path = dir + "/nested/profile.txt";  // folders are created
  LatencyProfile p{{1, 2, 4}, {0.001, 0.0015, 0.0031}, {0.0002, 0.0003, 0.0005}};
  ASSERT_TRUE(engine::write_profile(path, "model=a threads=2", p).ok());
  auto back = engine::read_profile(path, "model=a threads=2");
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->sizes, p.sizes);
  for (size_t i = 0; i < p.sizes.size(); ++i) {
    EXPECT_DOUBLE_EQ(back->target[i], p.target[i]);
    EXPECT_DOUBLE_EQ(back->draft[i], p.draft[i]);
  }
  EXPECT_FALSE(engine::read_profile(path, "model=a threads=4").has_value());
  EXPECT_FALSE(engine::read_profile(dir + "/absent.txt", "model=a threads=2").has_value());
  std::filesystem::remove_all(dir);
}

TEST(LatencyProfileFile, DamagedOrInconsistentProfilesAreMisses) {
  const std::string dir = temp_dir("damaged");
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/p.txt";
  const std::string head = "dspark-latency-profile 1\nkey k\n";
  for (const std::string body :
       {"sizes 1 2\ntarget 0.1\n", "sizes 2 1\ntarget 0.1 0.2\n", "sizes 1 2\ntarget 0.1 -3\n",
        "sizes 1 x\ntarget 0.1 0.2\n", "sizes 1 2\ntarget 0.1 0.2\ndraft 0.1\n", ""}) {
    std::ofstream(path, std::ios::trunc) << head << body;
    EXPECT_FALSE(engine::read_profile(path, "k").has_value()) << body;
  }
  std::ofstream(path, std::ios::trunc) << "something else\nkey k\nsizes 1\ntarget 0.1\n";
  EXPECT_FALSE(engine::read_profile(path, "k").has_value());
  // Nothing inconsistent is written, and a key cannot break the format.
  EXPECT_FALSE(engine::write_profile(path, "k", LatencyProfile{{2, 1}, {0.1, 0.2}, {}}).ok());
  EXPECT_FALSE(engine::write_profile(path, "a\nb", LatencyProfile{{1}, {0.1}, {}}).ok());
  std::filesystem::remove_all(dir);
}

// A speculating engine writes its measured profile; a later one with the same key reads it
// (the file stays as it was), one with another key measures and replaces it.
TEST(LatencyProfileFile, EnginesReuseTheProfileOfTheirKey) {
  test::Loaded l = test::load_model(test::tiny_model_path("llama-f32.gguf"));
  ASSERT_TRUE(l.error.empty()) << l.error;
  const std::string dir = temp_dir("engine");
  engine::EngineConfig c = test::engine_config(l, 64, 4, true);
  c.spec.method = engine::SpecMethod::kNgram;
  c.spec.profile_cache = dir + "/profile.txt";
  c.spec.profile_key = "first";
  {
    auto e = engine::Engine::create(c);
    ASSERT_TRUE(e.ok()) << e.error().message;
  }
  auto measured = engine::read_profile(c.spec.profile_cache, "first");
  ASSERT_TRUE(measured.has_value());
  EXPECT_GE(measured->sizes.size(), 3u);
  EXPECT_TRUE(measured->draft.empty());

  const LatencyProfile planted{{1, 2, 4, 8}, {0.5, 0.6, 0.7, 0.8}, {}};
  ASSERT_TRUE(engine::write_profile(c.spec.profile_cache, "first", planted).ok());
  const std::string before = contents(c.spec.profile_cache);
  {
    auto e = engine::Engine::create(c);
    ASSERT_TRUE(e.ok()) << e.error().message;
  }
  EXPECT_EQ(contents(c.spec.profile_cache), before);

  c.spec.profile_key = "second";
  {
    auto e = engine::Engine::create(c);
    ASSERT_TRUE(e.ok()) << e.error().message;
  }
  EXPECT_TRUE(engine::read_profile(c.spec.profile_cache, "second").has_value());
  EXPECT_FALSE(engine::read_profile(c.spec.profile_cache, "first").has_value());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace dspark
