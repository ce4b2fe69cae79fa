// GGUF reader: metadata of every value type, tensor shapes and data, typed getters, opening
// from disk, and one test per validation rule with the error message it must give.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "dspark/loader.h"
#include "loader/test_writers.h"

namespace dspark {
namespace {

using test::GgufBuilder;
using test::GValue;
using ::testing::HasSubstr;
using Kind = MetaValue::Kind;

std::vector<uint8_t> f32_bytes(size_t n, float start = 0.0f) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = start + static_cast<float>(i);
  return test::bytes_of(v);
}

Result<std::shared_ptr<ModelFile>> parse(const std::vector<uint8_t>& image) {
  return ModelFile::parse_gguf_bytes(image.data(), image.size());
}

std::string parse_error(const std::vector<uint8_t>& image) {
  auto r = parse(image);
  return r.ok() ? std::string("(parsed fine)") : r.error().message;
}

TEST(Gguf, MetadataOfEveryValueType) {
  GgufBuilder b;
  b.kv("u8", GValue::u8(250));
  b.kv("i8", GValue::i8(-120));
  b.kv("u16", GValue::u16(65000));
  b.kv("i16", GValue::i16(-32000));
  b.kv("u32", GValue::u32(4000000000u));
  b.kv("i32", GValue::i32(-2000000000));
  b.kv("u64", GValue::u64(UINT64_MAX));
  b.kv("i64", GValue::i64(INT64_MIN));
  b.kv("f32", GValue::f32(0.1f));
  b.kv("f64", GValue::f64(-1e300));
  b.kv("true", GValue::boolean(true));
  b.kv("false", GValue::boolean(false));
  b.kv("str", GValue::str("h\xc3\xa9llo"));
  b.kv("empty_str", GValue::str(""));
  b.kv("arr_i32", GValue::array(test::kGI32, {GValue::i32(1), GValue::i32(-2)}));
  b.kv("arr_f32", GValue::array(test::kGF32, {GValue::f32(0.5f), GValue::f32(2.0f)}));
  b.kv("arr_str", GValue::array(test::kGString, {GValue::str("a"), GValue::str("bc")}));
  b.kv("arr_u64", GValue::array(test::kGU64, {GValue::u64(7)}));
  b.kv("arr_empty", GValue::array(test::kGU8, {}));
  b.kv("nested",
       GValue::array(test::kGArray, {GValue::array(test::kGI16, {GValue::i16(3), GValue::i16(4)}),
                                     GValue::array(test::kGI16, {})}));
  auto r = parse(b.build());
  ASSERT_TRUE(r.ok()) << r.error().message;
  const ModelFile& f = **r;
  EXPECT_EQ(f.format(), FileFormat::Gguf);
  EXPECT_EQ(f.gguf_version(), 3u);
  EXPECT_EQ(f.metadata().size(), 20u);

  auto expect_kind = [&](const char* key, Kind kind) {
    const MetaValue* v = f.find(key);
    EXPECT_NE(v, nullptr) << key;
    if (v != nullptr) {
      EXPECT_EQ(v->kind, kind) << key;
    }
    return v;
  };
  EXPECT_EQ(expect_kind("u8", Kind::UInt)->u, 250u);
  EXPECT_EQ(expect_kind("i8", Kind::Int)->i, -120);
  EXPECT_EQ(expect_kind("u16", Kind::UInt)->u, 65000u);
  EXPECT_EQ(expect_kind("i16", Kind::Int)->i, -32000);
  EXPECT_EQ(expect_kind("u32", Kind::UInt)->u, 4000000000u);
  EXPECT_EQ(expect_kind("i32", Kind::Int)->i, -2000000000);
  EXPECT_EQ(expect_kind("u64", Kind::UInt)->u, UINT64_MAX);
  EXPECT_EQ(expect_kind("i64", Kind::Int)->i, INT64_MIN);
  EXPECT_EQ(expect_kind("f32", Kind::Float)->f, static_cast<double>(0.1f));
  EXPECT_EQ(expect_kind("f64", Kind::Float)->f, -1e300);
  EXPECT_TRUE(expect_kind("true", Kind::Bool)->b);
  EXPECT_FALSE(expect_kind("false", Kind::Bool)->b);
  EXPECT_EQ(expect_kind("str", Kind::String)->s, "h\xc3\xa9llo");
  EXPECT_EQ(expect_kind("empty_str", Kind::String)->s, "");
  EXPECT_TRUE(expect_kind("arr_empty", Kind::Array)->array.empty());
  const MetaValue* nested = expect_kind("nested", Kind::Array);
  ASSERT_EQ(nested->array.size(), 2u);
  ASSERT_EQ(nested->array[0].kind, Kind::Array);
  ASSERT_EQ(nested->array[0].array.size(), 2u);
  EXPECT_EQ(nested->array[0].array[1].kind, Kind::Int);
  EXPECT_EQ(nested->array[0].array[1].i, 4);
  EXPECT_TRUE(nested->array[1].array.empty());

  EXPECT_EQ(*f.get_int_array("arr_i32"), (std::vector<int64_t>{1, -2}));
  EXPECT_EQ(*f.get_float_array("arr_f32"), (std::vector<double>{0.5, 2.0}));
  EXPECT_EQ(*f.get_float_array("arr_i32"), (std::vector<double>{1.0, -2.0}));
  EXPECT_EQ(*f.get_string_array("arr_str"), (std::vector<std::string>{"a", "bc"}));
  EXPECT_EQ(*f.get_int_array("arr_u64"), (std::vector<int64_t>{7}));
  EXPECT_TRUE(f.get_string_array("arr_empty")->empty());
  EXPECT_EQ(f.find("u8")->as_number(), 250.0);
  EXPECT_EQ(f.find("true")->as_number(), 1.0);
  EXPECT_EQ(f.find("str")->as_number(), std::nullopt);
}

TEST(Gguf, TypedGetters) {
  GgufBuilder b;
  b.kv("n", GValue::u32(42));
  b.kv("neg", GValue::i32(-3));
  b.kv("eps", GValue::f32(1e-5f));
  b.kv("name", GValue::str("llama"));
  b.kv("flag", GValue::boolean(true));
  b.kv("huge", GValue::u64(UINT64_MAX));
  b.kv("mixed", GValue::array(test::kGString, {GValue::str("x")}));
  auto r = parse(b.build());
  ASSERT_TRUE(r.ok()) << r.error().message;
  const ModelFile& f = **r;
  EXPECT_EQ(*f.get_int("n"), 42);
  EXPECT_EQ(*f.get_int("neg"), -3);
  EXPECT_EQ(*f.get_float("n"), 42.0);
  EXPECT_EQ(*f.get_float("eps"), static_cast<double>(1e-5f));
  EXPECT_EQ(*f.get_string("name"), "llama");
  EXPECT_TRUE(*f.get_bool("flag"));
  EXPECT_EQ(f.get_int_or("missing", 7), 7);
  EXPECT_EQ(f.get_int_or("n", 7), 42);
  EXPECT_EQ(f.get_float_or("name", 2.5), 2.5);
  EXPECT_EQ(f.get_string_or("n", "fallback"), "fallback");
  EXPECT_EQ(f.get_string_or("name", "fallback"), "llama");
  EXPECT_FALSE(f.get_bool_or("n", false));
  EXPECT_TRUE(f.get_bool_or("flag", false));

  EXPECT_EQ(f.get_int("missing").error().message, "metadata key 'missing' is missing");
  EXPECT_EQ(f.get_int("name").error().message, "metadata key 'name' is a string, not an integer");
  EXPECT_EQ(f.get_int("eps").error().message, "metadata key 'eps' is a float, not an integer");
  EXPECT_THAT(f.get_int("huge").error().message, HasSubstr("does not fit int64"));
  EXPECT_EQ(f.get_string("n").error().message,
            "metadata key 'n' is an unsigned integer, not a string");
  EXPECT_EQ(f.get_bool("name").error().message, "metadata key 'name' is a string, not a bool");
  EXPECT_EQ(f.get_float("flag").error().message, "metadata key 'flag' is a bool, not a number");
  EXPECT_THAT(f.get_string_array("n").error().message, HasSubstr("not a string"));
  EXPECT_THAT(f.get_int_array("mixed").error().message,
              HasSubstr("element 0 is a string, not an integer element"));
}

TEST(Gguf, TensorShapesAreOutermostFirst) {
  GgufBuilder b;
  b.version = 2;
  b.tensor("matrix", {8, 3}, 0, f32_bytes(24));          // ne [n_in=8, n_out=3]
  b.tensor("cube", {32, 4, 2}, 0, f32_bytes(256, 100));  // ne innermost first
  b.tensor("vec", {5}, 0, f32_bytes(5, -1));
  b.tensor("q", {512, 2}, 12, std::vector<uint8_t>(2 * 2 * 144, 0));  // Q4_K
  auto r = parse(b.build());
  ASSERT_TRUE(r.ok()) << r.error().message;
  const ModelFile& f = **r;
  EXPECT_EQ(f.gguf_version(), 2u);
  ASSERT_EQ(f.tensors().size(), 4u);

  const TensorInfo* m = f.tensor("matrix");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->shape, (std::vector<int64_t>{3, 8}));
  EXPECT_EQ(m->rows(), 3);
  EXPECT_EQ(m->cols(), 8);
  EXPECT_EQ(m->n_elements(), 24);
  EXPECT_EQ(m->n_bytes, 96u);
  float row[8];
  dequantize_row(DType::F32, m->data + 8 * 4, row, 8);  // row 1 holds elements 8..15
  EXPECT_EQ(row[0], 8.0f);
  EXPECT_EQ(row[7], 15.0f);

  const TensorInfo* c = f.tensor("cube");
  EXPECT_EQ(c->shape, (std::vector<int64_t>{2, 4, 32}));
  EXPECT_EQ(c->rows(), 8);
  EXPECT_EQ(c->cols(), 32);
  float first;
  std::memcpy(&first, c->data, 4);
  EXPECT_EQ(first, 100.0f);

  const TensorInfo* v = f.tensor("vec");
  EXPECT_EQ(v->shape, (std::vector<int64_t>{5}));
  EXPECT_EQ(v->rows(), 1);
  EXPECT_EQ(v->cols(), 5);

  const TensorInfo* q = f.tensor("q");
  EXPECT_EQ(q->type, DType::Q4_K);
  EXPECT_EQ(q->shape, (std::vector<int64_t>{2, 512}));
  EXPECT_EQ(q->n_bytes, 576u);
  EXPECT_EQ(f.tensor("absent"), nullptr);
  EXPECT_EQ(f.total_tensor_bytes(), 96u + 1024u + 20u + 576u);
}

TEST(Gguf, HonoursGeneralAlignment) {
  GgufBuilder b;
  b.alignment = 64;
  b.kv("general.alignment", GValue::u32(64));
  b.tensor("a", {3}, 0, f32_bytes(3));
  b.tensor("b", {16}, 0, f32_bytes(16, 50));
  auto r = parse(b.build());
  ASSERT_TRUE(r.ok()) << r.error().message;
  float first;
  std::memcpy(&first, (*r)->tensor("b")->data, 4);
  EXPECT_EQ(first, 50.0f);
  EXPECT_EQ(((*r)->tensor("b")->data - (*r)->tensor("a")->data), 64);
}

// A valid two-tensor image to break in the tests below.
GgufBuilder two_tensors() {
  GgufBuilder b;
  b.kv("general.architecture", GValue::str("llama"));
  b.tensor("w", {32, 2}, 0, f32_bytes(64));
  b.tensor("v", {32}, 0, f32_bytes(32));
  return b;
}

TEST(GgufErrors, HeaderProblems) {
  auto image = two_tensors().build();
  ASSERT_TRUE(parse(image).ok());

  auto bad = image;
  bad[0] = 'X';
  EXPECT_EQ(parse_error(bad), "not a GGUF file (bad magic)");
  EXPECT_EQ(parse_error({'G', 'G'}), "not a GGUF file (bad magic)");
  bad = image;
  test::patch<uint32_t>(&bad, 4, 1);
  EXPECT_EQ(parse_error(bad), "unsupported GGUF version 1 (need 2 or 3)");
  test::patch<uint32_t>(&bad, 4, 0x03000000);
  EXPECT_EQ(parse_error(bad), "big-endian GGUF files are not supported");
  EXPECT_THAT(parse_error(std::vector<uint8_t>(image.begin(), image.begin() + 10)),
              HasSubstr("truncated: tensor count at offset 8 needs 8 bytes"));
  bad = image;
  test::patch<uint64_t>(&bad, 8, UINT64_MAX);  // tensor count
  EXPECT_THAT(parse_error(bad), HasSubstr("more than the"));
  bad = image;
  test::patch<uint64_t>(&bad, 16, 1ull << 40);  // metadata count
  EXPECT_THAT(parse_error(bad), HasSubstr("metadata entries and 2 tensors, more than the"));
}

TEST(GgufErrors, MetadataProblems) {
  {
    GgufBuilder b = two_tensors();
    b.build();
    auto image = b.build();
    test::patch<uint64_t>(&image, b.u64_fields()[2], UINT64_MAX - 3);  // first key length
    EXPECT_THAT(parse_error(image), HasSubstr("key of metadata entry 0 length 18446744073709551612 "
                                              "at offset 24 extends past end of file (size "));
  }
  {
    GgufBuilder b;
    b.kv("arr", GValue::array(test::kGU32, {GValue::u32(1)}));
    auto image = b.build();
    test::patch<uint64_t>(&image, b.u64_fields()[3], 1ull << 61);  // array count
    EXPECT_THAT(parse_error(image), HasSubstr("metadata 'arr': array of 2305843009213693952 "
                                              "elements cannot fit"));
  }
  {
    GValue v = GValue::u8(1);
    for (int depth = 0; depth < 10; ++depth) v = GValue::array(v.type, {v});
    GgufBuilder b;
    b.kv("deep", v);
    EXPECT_EQ(parse_error(b.build()), "metadata 'deep': arrays nested deeper than 8");
  }
  {
    GgufBuilder b;
    b.kv("x", GValue::u8(1));
    auto image = b.build();
    test::patch<uint32_t>(&image, b.u32_fields()[1], 13);
    EXPECT_EQ(parse_error(image), "metadata 'x': unknown value type 13");
    test::patch<uint32_t>(&image, b.u32_fields()[1], test::kGBool);
    image[b.u32_fields()[1] + 4] = 2;  // the value byte follows its type
    EXPECT_EQ(parse_error(image), "metadata 'x': bool value 2 is neither 0 nor 1");
  }
  {
    GgufBuilder b;
    b.kv("x", GValue::array(test::kGU8, {}));
    auto image = b.build();
    test::patch<uint32_t>(&image, b.u32_fields()[1] + 4, 77);  // element type after the type
    EXPECT_EQ(parse_error(image), "metadata 'x': unknown array element type 77");
  }
  {
    GgufBuilder b;
    b.kv("dup", GValue::u8(1));
    b.kv("dup", GValue::u8(2));
    EXPECT_EQ(parse_error(b.build()), "duplicate metadata key 'dup'");
  }
  for (const GValue& bad_alignment : {GValue::u32(3), GValue::u32(0), GValue::str("32"),
                                      GValue::u64(1ull << 40), GValue::i32(-32)}) {
    GgufBuilder b;
    b.kv("general.alignment", bad_alignment);
    EXPECT_EQ(parse_error(b.build()), "general.alignment must be a power of two in 1..2^30");
  }
}

TEST(GgufErrors, TensorInfoProblems) {
  auto build_with = [](auto&& edit) {
    GgufBuilder b;
    b.tensor("w", {64, 2}, 0, f32_bytes(128));
    edit(&b);
    return b.build();
  };
  auto no_edit = [](GgufBuilder*) {};
  EXPECT_TRUE(parse(build_with(no_edit)).ok());

  GgufBuilder b;
  b.tensor("w", {64, 2}, 0, f32_bytes(128));
  auto image = b.build();
  const size_t n_dims_pos = b.u32_fields()[1];
  const size_t dim0_pos = n_dims_pos + 4, dim1_pos = n_dims_pos + 12, type_pos = n_dims_pos + 20;

  auto bad = image;
  test::patch<uint32_t>(&bad, n_dims_pos, 5);
  EXPECT_EQ(parse_error(bad), "tensor 'w': n_dims 5 exceeds 4");
  bad = image;
  test::patch<uint64_t>(&bad, dim1_pos, 0);
  EXPECT_EQ(parse_error(bad), "tensor 'w': dimension 1 is 0 (must be in 1..2^63-1)");
  bad = image;
  test::patch<uint64_t>(&bad, dim0_pos, UINT64_MAX);
  EXPECT_THAT(parse_error(bad), HasSubstr("tensor 'w': dimension 0 is 18446744073709551615"));
  bad = image;
  test::patch<uint64_t>(&bad, dim0_pos, 1ull << 62);
  EXPECT_EQ(parse_error(bad), "tensor 'w': element count overflows");
  bad = image;
  test::patch<uint64_t>(&bad, dim0_pos, 1ull << 61);
  EXPECT_EQ(parse_error(bad), "tensor 'w': byte size overflows");
  bad = image;
  test::patch<uint32_t>(&bad, type_pos, 19);
  EXPECT_EQ(parse_error(bad), "tensor 'w': unknown or unsupported tensor type 19");
  bad = image;
  test::patch<uint32_t>(&bad, type_pos, 2);  // Q4_0: 64 elements per row are 2 blocks, fine
  EXPECT_TRUE(parse(bad).ok());
  test::patch<uint64_t>(&bad, dim0_pos, 48);
  EXPECT_EQ(parse_error(bad),
            "tensor 'w': row of 48 elements is not a multiple of the Q4_0 block size 32");
  bad = image;
  test::patch<uint64_t>(&bad, b.offset_field(0), 4);
  EXPECT_EQ(parse_error(bad), "tensor 'w': data offset 4 is not a multiple of the alignment 32");
  bad = image;
  test::patch<uint64_t>(&bad, b.offset_field(0), UINT64_MAX - 31);
  EXPECT_THAT(parse_error(bad), HasSubstr("extends past end of file"));
  bad = image;
  bad.resize(bad.size() - 4);
  const uint64_t data_start = image.size() - 512;
  EXPECT_EQ(parse_error(bad), "tensor 'w': data [" + std::to_string(data_start) + ", " +
                                  std::to_string(data_start + 512) +
                                  ") extends past end of file (size " + std::to_string(bad.size()) +
                                  ")");
  bad = image;
  test::patch<uint64_t>(&bad, b.u64_fields()[2], 0);  // empty tensor name
  EXPECT_THAT(parse_error(bad), HasSubstr("tensor 0 has an empty name"));
}

TEST(GgufErrors, OverlapsAndDuplicates) {
  GgufBuilder b = two_tensors();
  auto image = b.build();
  auto bad = image;
  test::patch<uint64_t>(&bad, b.offset_field(1), 224);  // "v" starts inside "w" [0, 256)
  EXPECT_THAT(parse_error(bad), HasSubstr("tensors 'w' ["));
  EXPECT_THAT(parse_error(bad), HasSubstr(") overlap"));

  GgufBuilder dup;
  dup.tensor("w", {8}, 0, f32_bytes(8));
  dup.tensor("w", {8}, 0, f32_bytes(8));
  EXPECT_EQ(parse_error(dup.build()), "duplicate tensor name 'w'");
}

class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() /
            ("dspark_loader_test_" + std::to_string(getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name, const std::vector<uint8_t>& bytes) const {
    const std::string p = (path_ / name).string();
    std::ofstream(p, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
    return p;
  }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

TEST(Gguf, OpensAndMapsFiles) {
  TempDir dir;
  const std::string path = dir.file("tiny.gguf", two_tensors().build());
  for (auto open : {&ModelFile::open, &ModelFile::open_gguf}) {
    auto r = open(path);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ((*r)->format(), FileFormat::Gguf);
    EXPECT_EQ((*r)->path(), path);
    EXPECT_EQ((*r)->dir(), dir.path());
    EXPECT_EQ(*(*r)->get_string("general.architecture"), "llama");
    float v0;
    std::memcpy(&v0, (*r)->tensor("v")->data, 4);
    EXPECT_EQ(v0, 0.0f);
  }
  // A file with the magic is GGUF whatever its name.
  EXPECT_TRUE(ModelFile::open(dir.file("model.bin", two_tensors().build())).ok());

  auto broken = two_tensors().build();
  broken.resize(broken.size() - 1);
  const std::string broken_path = dir.file("broken.gguf", broken);
  EXPECT_THAT(ModelFile::open(broken_path).error().message,
              HasSubstr("'" + broken_path + "': tensor 'v': data ["));
  EXPECT_THAT(ModelFile::open(dir.path() + "/absent.gguf").error().message,
              HasSubstr("cannot open"));
  EXPECT_THAT(ModelFile::open_gguf(dir.file("empty.gguf", {})).error().message,
              HasSubstr("is empty"));
  EXPECT_THAT(ModelFile::open(dir.file("junk.bin", {1, 2, 3, 4, 5})).error().message,
              HasSubstr("is neither a GGUF file"));
}

}  // namespace
}  // namespace dspark
