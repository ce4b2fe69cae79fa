// Safetensors files and Hugging Face folders: tensors, config.json flattening, sharded indexes,
// and one test per validation rule with the error message it must give.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "dspark/loader.h"
#include "loader/test_writers.h"

namespace dspark {
namespace {

using test::StTensor;
using ::testing::HasSubstr;
using Kind = MetaValue::Kind;

std::vector<uint8_t> u16_bytes(std::initializer_list<uint16_t> v) {
  return test::bytes_of(std::vector<uint16_t>(v));
}

std::vector<StTensor> sample_tensors() {
  return {
      {"w", "F32", {2, 3}, test::bytes_of(std::vector<float>{1, 2, 3, 4, 5, 6})},
      {"h", "F16", {4}, u16_bytes({0x3c00, 0xc000, 0x0000, 0x7bff})},
      {"b", "BF16", {2, 1, 2}, u16_bytes({0x3f80, 0xc040, 0x0000, 0x4000})},
  };
}

Result<std::shared_ptr<ModelFile>> parse(const std::vector<uint8_t>& image,
                                         const std::string& config = "") {
  return ModelFile::parse_safetensors_bytes(image.data(), image.size(), config);
}

std::string parse_error(const std::vector<uint8_t>& image, const std::string& config = "") {
  auto r = parse(image, config);
  return r.ok() ? std::string("(parsed fine)") : r.error().message;
}

TEST(Safetensors, ParsesTensorsInFileOrder) {
  auto r = parse(test::safetensors_image(sample_tensors(), R"({"format":"pt"})"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  const ModelFile& f = **r;
  EXPECT_EQ(f.format(), FileFormat::Safetensors);
  EXPECT_EQ(f.gguf_version(), 0u);
  ASSERT_EQ(f.tensors().size(), 3u);
  EXPECT_EQ(f.tensors()[0].name, "w");
  EXPECT_EQ(f.tensors()[1].name, "h");
  EXPECT_EQ(f.tensors()[2].name, "b");
  EXPECT_EQ(*f.get_string("safetensors.format"), "pt");

  const TensorInfo* w = f.tensor("w");
  EXPECT_EQ(w->type, DType::F32);
  EXPECT_EQ(w->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(w->rows(), 2);
  EXPECT_EQ(w->cols(), 3);
  EXPECT_EQ(w->n_bytes, 24u);
  float row[3];
  dequantize_row(w->type, w->data + 12, row, 3);
  EXPECT_EQ(row[0], 4.0f);
  EXPECT_EQ(row[2], 6.0f);

  const TensorInfo* h = f.tensor("h");
  EXPECT_EQ(h->type, DType::F16);
  float hv[4];
  dequantize_row(h->type, h->data, hv, 4);
  EXPECT_EQ(hv[1], -2.0f);
  EXPECT_EQ(hv[3], 65504.0f);

  const TensorInfo* b = f.tensor("b");
  EXPECT_EQ(b->type, DType::BF16);
  EXPECT_EQ(b->rows(), 2);
  float bv[4];
  dequantize_row(b->type, b->data, bv, 4);
  EXPECT_EQ(bv[1], -3.0f);
  EXPECT_EQ(bv[3], 2.0f);
  EXPECT_EQ(f.total_tensor_bytes(), 24u + 8u + 8u);
}

TEST(Safetensors, FlattensConfigJson) {
  const std::string config = R"({
    "hidden_size": 576, "rms_norm_eps": 1e-05, "tie_word_embeddings": true,
    "model_type": "llama", "neg": -7, "big": 18446744073709551615, "absent": null,
    "rope_scaling": {"factor": 8.0, "inner": {"deep": "x"}, "nothing": null},
    "eos_token_id": [1, 2], "grid": [[1, 2], [3]], "mixed": [{"a": 1}, null, "s"]
  })";
  auto r = parse(test::safetensors_image(sample_tensors()), config);
  ASSERT_TRUE(r.ok()) << r.error().message;
  const ModelFile& f = **r;
  EXPECT_EQ(*f.get_int("hf.hidden_size"), 576);
  EXPECT_EQ(f.find("hf.hidden_size")->kind, Kind::Int);
  EXPECT_EQ(*f.get_float("hf.rms_norm_eps"), 1e-05);
  EXPECT_TRUE(*f.get_bool("hf.tie_word_embeddings"));
  EXPECT_EQ(*f.get_string("hf.model_type"), "llama");
  EXPECT_EQ(*f.get_int("hf.neg"), -7);
  EXPECT_EQ(f.find("hf.big")->kind, Kind::UInt);
  EXPECT_EQ(f.find("hf.big")->u, UINT64_MAX);
  EXPECT_EQ(f.find("hf.absent"), nullptr);
  EXPECT_EQ(*f.get_float("hf.rope_scaling.factor"), 8.0);
  EXPECT_EQ(*f.get_string("hf.rope_scaling.inner.deep"), "x");
  EXPECT_EQ(f.find("hf.rope_scaling.nothing"), nullptr);
  EXPECT_EQ(f.find("hf.rope_scaling"), nullptr);
  EXPECT_EQ(*f.get_int_array("hf.eos_token_id"), (std::vector<int64_t>{1, 2}));
  const MetaValue* grid = f.find("hf.grid");
  ASSERT_NE(grid, nullptr);
  ASSERT_EQ(grid->array.size(), 2u);
  EXPECT_EQ(grid->array[0].array[1].i, 2);
  EXPECT_EQ(*f.get_string_array("hf.mixed"), (std::vector<std::string>{R"({"a":1})", "null", "s"}));
}

TEST(Safetensors, ConfigJsonErrors) {
  const auto image = test::safetensors_image(sample_tensors());
  EXPECT_EQ(parse_error(image, "{"), "config.json is not valid JSON");
  EXPECT_EQ(parse_error(image, "[1]"), "config.json is not a JSON object");
  EXPECT_EQ(parse_error(image, R"({"a": 1, "a": 2})"), "config.json repeats the key 'a'");
  EXPECT_EQ(parse_error(image, R"({"a": {"b": 1}, "a.b": 2})"),
            "config.json: key 'hf.a.b' appears twice after flattening");
  std::string deep = "{\"k\":" + std::string(40, '[') + std::string(40, ']') + "}";
  EXPECT_EQ(parse_error(image, deep), "config.json: 'hf.k' nests deeper than 16");
  std::string deep_obj;
  for (int i = 0; i < 40; ++i) deep_obj += "{\"k\":";
  deep_obj += "1" + std::string(40, '}');
  EXPECT_THAT(parse_error(image, deep_obj), HasSubstr("nests deeper than 16"));
}

std::string tensor_header(const std::string& name, const std::string& body) {
  return "{\"" + name + "\":{" + body + "}}";
}

TEST(SafetensorsErrors, HeaderProblems) {
  const std::vector<uint8_t> data(24, 0);
  EXPECT_EQ(parse_error({1, 2, 3}), "file of 3 bytes is too small for a safetensors header");
  auto image = test::safetensors_image(sample_tensors());
  test::patch<uint64_t>(&image, 0, image.size());
  EXPECT_EQ(parse_error(image), "header length " + std::to_string(image.size()) +
                                    " extends past end of file (size " +
                                    std::to_string(image.size()) + ")");
  EXPECT_EQ(parse_error(test::safetensors_image("{\"w\":", data)),
            "safetensors header is not valid JSON");
  EXPECT_EQ(parse_error(test::safetensors_image("[]", data)),
            "safetensors header is not a JSON object");
  EXPECT_EQ(parse_error(
                test::safetensors_image(R"({"w":{"dtype":"F32","shape":[6],"data_offsets":[0,24]},)"
                                        R"("w":{"dtype":"F32","shape":[6],"data_offsets":[0,24]}})",
                                        data)),
            "safetensors header repeats the key 'w'");
  EXPECT_EQ(parse_error(test::safetensors_image(R"({"__metadata__":{"a":1}})", {})),
            "\"__metadata__\" entry 'a' is not a string");
  EXPECT_EQ(parse_error(test::safetensors_image(R"({"__metadata__":[]})", {})),
            "\"__metadata__\" is not an object");
  EXPECT_EQ(parse_error(test::safetensors_image(R"({"":{}})", {})), "a tensor has an empty name");
}

TEST(SafetensorsErrors, TensorEntryProblems) {
  const std::vector<uint8_t> data(24, 0);
  auto err = [&](const std::string& body) {
    return parse_error(test::safetensors_image(tensor_header("w", body), data));
  };
  EXPECT_EQ(err(R"("dtype":"F32","shape":[6],"data_offsets":[0,24])"), "(parsed fine)");
  EXPECT_EQ(parse_error(test::safetensors_image(R"({"w":5})", data)),
            "tensor 'w': header entry is not an object");
  EXPECT_EQ(err(R"("shape":[6],"data_offsets":[0,24])"),
            "tensor 'w': missing or non-string \"dtype\"");
  EXPECT_EQ(err(R"("dtype":"I64","shape":[3],"data_offsets":[0,24])"),
            "tensor 'w': dtype 'I64' is not supported (only F32, F16, BF16, I32)");
  EXPECT_EQ(err(R"("dtype":"F32","data_offsets":[0,24])"),
            "tensor 'w': missing or non-array \"shape\"");
  for (const char* shape : {"[-6]", "[6.0]", "[0, 6]", "[\"6\"]", "[9223372036854775808]"}) {
    EXPECT_EQ(err(std::string(R"("dtype":"F32","shape":)") + shape + R"(,"data_offsets":[0,24])"),
              "tensor 'w': shape entries must be positive integers")
        << shape;
  }
  EXPECT_EQ(err(R"("dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,24])"),
            "tensor 'w': element count overflows");
  EXPECT_EQ(err(R"("dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,24])"),
            "tensor 'w': byte size overflows");
  EXPECT_EQ(err(R"("dtype":"F32","shape":[6],"data_offsets":[0])"),
            "tensor 'w': \"data_offsets\" must be an array of two integers");
  EXPECT_EQ(err(R"("dtype":"F32","shape":[6],"data_offsets":[-1,24])"),
            "tensor 'w': data_offsets must be non-negative integers");
  EXPECT_EQ(err(R"("dtype":"F32","shape":[6],"data_offsets":[24,0])"),
            "tensor 'w': data_offsets [24, 0) do not lie within the 24-byte data region");
  EXPECT_EQ(err(R"("dtype":"F32","shape":[6],"data_offsets":[0,18446744073709551615])"),
            "tensor 'w': data_offsets [0, 18446744073709551615) do not lie within the 24-byte "
            "data region");
  EXPECT_EQ(err(R"("dtype":"F32","shape":[5],"data_offsets":[0,24])"),
            "tensor 'w': data_offsets span 24 bytes but shape and dtype F32 need 20");
}

TEST(SafetensorsErrors, TensorsMustTileTheData) {
  const std::vector<uint8_t> data(32, 0);
  auto err = [&](const std::string& header) {
    return parse_error(test::safetensors_image(header, data));
  };
  EXPECT_EQ(err(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                R"("b":{"dtype":"F32","shape":[4],"data_offsets":[16,32]}})"),
            "(parsed fine)");
  EXPECT_EQ(err(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                R"("b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})"),
            "tensor 'b' starts at data byte 8 but the previous tensor ends at 16 (tensors must "
            "tile the data without gaps or overlaps)");
  EXPECT_THAT(err(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                  R"("b":{"dtype":"F32","shape":[4],"data_offsets":[16,32]}})"),
              HasSubstr("tensor 'b' starts at data byte 16 but the previous tensor ends at 8"));
  EXPECT_EQ(err(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})"),
            "tensors cover 16 bytes but the data region holds 32");
}

class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() /
            ("dspark_st_test_" + std::to_string(getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string write(const std::string& name, const std::vector<uint8_t>& bytes) const {
    const std::string p = (path_ / name).string();
    std::ofstream(p, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
    return p;
  }
  std::string write(const std::string& name, const std::string& text) const {
    return write(name, std::vector<uint8_t>(text.begin(), text.end()));
  }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

const char* kConfig = R"({"hidden_size": 8, "rope_scaling": {"factor": 2.0}})";

TEST(HfFolder, SingleFile) {
  TempDir dir;
  dir.write("config.json", kConfig);
  const std::string st = dir.write("model.safetensors", test::safetensors_image(sample_tensors()));
  for (const std::string& path : {dir.path(), st, dir.path() + "/config.json"}) {
    auto r = ModelFile::open(path);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ((*r)->format(), FileFormat::Safetensors);
    EXPECT_EQ((*r)->path(), path == st ? st : dir.path());
    EXPECT_EQ((*r)->dir(), dir.path());
    EXPECT_EQ(*(*r)->get_int("hf.hidden_size"), 8);
    EXPECT_EQ(*(*r)->get_float("hf.rope_scaling.factor"), 2.0);
    EXPECT_EQ((*r)->tensors().size(), 3u);
  }
}

TEST(HfFolder, ShardedIndex) {
  TempDir dir;
  dir.write("config.json", kConfig);
  auto t = sample_tensors();
  dir.write("model-00001-of-00002.safetensors", test::safetensors_image({t[0], t[1]}));
  dir.write("model-00002-of-00002.safetensors", test::safetensors_image({t[2]}));
  dir.write("model.safetensors.index.json", R"({"metadata": {"total_size": 40}, "weight_map": {
      "w": "model-00001-of-00002.safetensors", "h": "model-00001-of-00002.safetensors",
      "b": "model-00002-of-00002.safetensors"}})");
  auto r = ModelFile::open_safetensors(dir.path());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ((*r)->tensors().size(), 3u);
  float bv[4];
  const TensorInfo* b = (*r)->tensor("b");
  ASSERT_NE(b, nullptr);
  dequantize_row(b->type, b->data, bv, 4);
  EXPECT_EQ(bv[1], -3.0f);
  EXPECT_TRUE(ModelFile::open(dir.path() + "/model.safetensors.index.json").ok());
}

TEST(HfFolder, Errors) {
  TempDir dir;
  auto t = sample_tensors();
  EXPECT_EQ(ModelFile::open(dir.path()).error().message, "no config.json in '" + dir.path() + "'");
  dir.write("config.json", kConfig);
  EXPECT_EQ(ModelFile::open(dir.path()).error().message,
            "no model.safetensors or model.safetensors.index.json in '" + dir.path() + "'");
  EXPECT_EQ(ModelFile::open(dir.path() + "/nothing").error().message,
            "cannot open '" + dir.path() + "/nothing': No such file or directory");

  const std::string shard = dir.write("s1.safetensors", test::safetensors_image({t[0], t[1]}));
  auto index_error = [&](const std::string& index) {
    dir.write("model.safetensors.index.json", index);
    auto r = ModelFile::open(dir.path());
    return r.ok() ? std::string("(opened fine)") : r.error().message;
  };
  const std::string idx = dir.path() + "/model.safetensors.index.json";
  EXPECT_EQ(index_error(R"({"weight_map": {"w": "s1.safetensors", "h": "s1.safetensors"}})"),
            "(opened fine)");
  EXPECT_EQ(index_error(R"({"weight_map": {}})"),
            "'" + idx + "': missing or empty \"weight_map\" object");
  EXPECT_EQ(index_error("{"), "'" + idx + "': safetensors index is not valid JSON");
  EXPECT_EQ(index_error(R"({"weight_map": {"w": 1}})"),
            "'" + idx + "': weight_map entry 'w' is not a string");
  EXPECT_EQ(
      index_error(R"({"weight_map": {"w": "../s1.safetensors"}})"),
      "'" + idx + "': shard name '../s1.safetensors' for tensor 'w' is not a plain file name");
  EXPECT_EQ(index_error(R"({"weight_map": {"w": "s1.safetensors"}})"),
            "'" + shard +
                "': tensor 'h' is not mapped to this shard by "
                "model.safetensors.index.json");
  EXPECT_EQ(index_error(R"({"weight_map": {"w": "s1.safetensors", "h": "s1.safetensors",
                                           "x": "s1.safetensors"}})"),
            "'" + shard +
                "': tensor 'x' is mapped here by model.safetensors.index.json but the "
                "shard lacks it");
  EXPECT_THAT(index_error(R"({"weight_map": {"w": "missing.safetensors"}})"),
              HasSubstr("cannot open '" + dir.path() + "/missing.safetensors'"));
  // Same tensor in two shards, each listed consistently by the index for its own shard only.
  dir.write("s2.safetensors", test::safetensors_image({t[0]}));
  EXPECT_THAT(index_error(R"({"weight_map": {"w": "s2.safetensors", "h": "s1.safetensors"}})"),
              HasSubstr("tensor 'w' is not mapped to this shard"));

  std::filesystem::remove(idx);
  auto bad = test::safetensors_image({t[0]});
  bad.pop_back();
  const std::string broken = dir.write("model.safetensors", bad);
  EXPECT_EQ(ModelFile::open(dir.path()).error().message,
            "'" + broken +
                "': tensor 'w': data_offsets [0, 24) do not lie within the 23-byte "
                "data region");
  dir.write("config.json", "{\"a\": }");
  EXPECT_EQ(ModelFile::open(dir.path()).error().message,
            "'" + dir.path() + "/config.json': config.json is not valid JSON");
}

}  // namespace
}  // namespace dspark
