#include "formats/safetensors.h"

#include <gtest/gtest.h>

#include "formats/test_support.h"

namespace medlab {
namespace {

using testing::read_file;
using testing::TempDir;
using testing::write_file;

// A file with the given header text and `data_bytes` zero bytes of tensor data.
std::string raw_file(const std::string& header, size_t data_bytes) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = char((uint64_t(header.size()) >> (8 * i)) & 0xff);
  return bytes + header + std::string(data_bytes, '\0');
}

TEST(Safetensors, RoundTripsEveryDtype) {
  TempDir dir;
  const std::vector<float> f32 = {1.5f, -2.25f, 3.0f, 0.0f, 1e-3f, -7.0f};
  std::vector<uint16_t> f16, bf16;
  for (float v : f32) {
    f16.push_back(f32_to_f16(v));
    bf16.push_back(f32_to_bf16(v));
  }
  const std::string path = dir / "t.safetensors";
  write_safetensors(path,
                    {{"a.f32", DType::F32, {2, 3}, f32.data()},
                     {"b.f16", DType::F16, {6}, f16.data()},
                     {"c.bf16", DType::BF16, {3, 1, 2}, bf16.data()},
                     {"d.empty", DType::F32, {0, 4}, nullptr},
                     {"e.scalar", DType::F32, {}, f32.data()}},
                    {{"format", "pt"}, {"note", "test"}});

  const SafetensorsFile file(path);
  EXPECT_EQ(file.path(), path);
  EXPECT_EQ(file.metadata().at("format"), "pt");
  EXPECT_EQ(file.metadata().at("note"), "test");
  ASSERT_EQ(file.tensors().size(), 5u);
  const TensorView& a = file.tensors().at("a.f32");
  const TensorView& b = file.tensors().at("b.f16");
  const TensorView& c = file.tensors().at("c.bf16");
  EXPECT_EQ(a.dtype, DType::F32);
  EXPECT_EQ(b.dtype, DType::F16);
  EXPECT_EQ(c.dtype, DType::BF16);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(c.shape, (std::vector<int64_t>{3, 1, 2}));
  for (int64_t i = 0; i < 6; ++i) {
    EXPECT_EQ(element_f32(a, i), f32[size_t(i)]);
    EXPECT_EQ(element_f32(b, i), f16_to_f32(f16[size_t(i)]));
    EXPECT_EQ(element_f32(c, i), bf16_to_f32(bf16[size_t(i)]));
  }
  EXPECT_EQ(file.tensors().at("d.empty").numel(), 0);
  EXPECT_EQ(file.tensors().at("e.scalar").numel(), 1);
  EXPECT_EQ(element_f32(file.tensors().at("e.scalar"), 0), 1.5f);

  // Tensor data starts 8-byte aligned, and the layout follows the order written.
  const std::string bytes = read_file(path);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | uint8_t(bytes[size_t(i)]);
  EXPECT_EQ(header_len % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + header_len + 24 + 12 + 12 + 0 + 4);
}

TEST(Safetensors, StreamingWriterChecksTheByteCount) {
  TempDir dir;
  const std::vector<float> values = {1, 2, 3, 4};
  {
    SafetensorsWriter writer(dir / "ok.safetensors", {{"x", DType::F32, {4}, nullptr}});
    writer.append(values.data(), 8);
    writer.append(values.data() + 2, 8);
    writer.finish();
  }
  EXPECT_EQ(element_f32(SafetensorsFile(dir / "ok.safetensors").tensors().at("x"), 3), 4.0f);

  SafetensorsWriter short_writer(dir / "short.safetensors", {{"x", DType::F32, {4}, nullptr}});
  short_writer.append(values.data(), 8);
  EXPECT_ERROR_MENTIONS(short_writer.finish(), dir / "short.safetensors", "8 bytes", "16");

  EXPECT_FALSE(std::filesystem::exists(dir / "short.safetensors"));

  SafetensorsWriter long_writer(dir / "long.safetensors", {{"x", DType::F32, {1}, nullptr}});
  EXPECT_ERROR_MENTIONS(long_writer.append(values.data(), 8), dir / "long.safetensors", "more tensor data");

  // An abandoned write leaves nothing behind.
  { SafetensorsWriter abandoned(dir / "abandoned.safetensors", {{"x", DType::F32, {1}, nullptr}}); }
  EXPECT_FALSE(std::filesystem::exists(dir / "abandoned.safetensors.partial"));
  EXPECT_FALSE(std::filesystem::exists(dir / "abandoned.safetensors"));

  EXPECT_ERROR_MENTIONS(write_safetensors(dir / "dup.safetensors", {{"x", DType::F32, {1}, values.data()},
                                                                    {"x", DType::F32, {1}, values.data()}}),
                        "'x'", "twice");
  EXPECT_ERROR_MENTIONS(write_safetensors(dir / "no/such/dir/x.safetensors", {}), "no/such/dir/x.safetensors",
                        "cannot create");
}

class BadSafetensors : public ::testing::Test {
 protected:
  // Writes `bytes` to a file and returns the error opening it gives.
  std::string open_error(const std::string& bytes) {
    write_file(path_, bytes);
    return testing::error_of([&] { SafetensorsFile file(path_); });
  }
  void expect_error(const std::string& bytes, std::initializer_list<std::string> parts) {
    const std::string message = open_error(bytes);
    EXPECT_EQ(message.rfind(path_, 0), 0u) << "error should start with the path: " << message;
    for (const std::string& part : parts)
      EXPECT_NE(message.find(part), std::string::npos) << "error: " << message << "\nshould mention: " << part;
  }

  TempDir dir_;
  std::string path_ = dir_ / "bad.safetensors";
};

TEST_F(BadSafetensors, MissingFile) {
  EXPECT_ERROR_MENTIONS(SafetensorsFile(dir_ / "absent.safetensors"), dir_ / "absent.safetensors", "cannot open");
}

TEST_F(BadSafetensors, ShorterThanTheLengthField) { expect_error("abc", {"3 bytes", "8-byte"}); }

TEST_F(BadSafetensors, EmptyFile) { expect_error("", {"0 bytes"}); }

TEST_F(BadSafetensors, HeaderLengthPastTheEnd) {
  std::string bytes = raw_file(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4);
  bytes[0] = char(0xff);
  bytes[1] = char(0xff);
  expect_error(bytes, {"header length", "past the end"});
}

TEST_F(BadSafetensors, AbsurdHeaderLength) {
  std::string bytes = raw_file("{}", 0);
  bytes[7] = char(0x7f);
  expect_error(bytes, {"header length", "past the end"});

  // A header length inside the file but over the cap: a sparse 17 MiB file costs no disk.
  bytes = raw_file("{}", 0);
  const uint64_t length = 17ull << 20;
  for (int i = 0; i < 8; ++i) bytes[size_t(i)] = char((length >> (8 * i)) & 0xff);
  write_file(path_, bytes);
  std::filesystem::resize_file(path_, 8 + length);
  EXPECT_ERROR_MENTIONS(SafetensorsFile{path_}, path_, "exceeds the 16 MiB limit");
}

TEST_F(BadSafetensors, TruncatedData) {
  write_safetensors(path_, {{"w", DType::F32, {4, 4}, std::vector<float>(16).data()}});
  const std::string full = read_file(path_);
  expect_error(full.substr(0, full.size() - 10), {"'w'", "past the end", "truncated"});
}

TEST_F(BadSafetensors, MalformedJson) { expect_error(raw_file(R"({"x": {"dtype": "F32",)", 0), {"not valid JSON"}); }

TEST_F(BadSafetensors, HeaderNotAnObject) { expect_error(raw_file("[1, 2]", 0), {"must be a JSON object"}); }

TEST_F(BadSafetensors, EntryMissingAField) {
  expect_error(raw_file(R"({"x":{"dtype":"F32","shape":[1]}})", 4), {"'x'", "data_offsets"});
}

TEST_F(BadSafetensors, UnsupportedDtypeIsNamed) {
  expect_error(raw_file(R"({"scale":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}})", 4),
               {"'scale'", "F8_E4M3", "not supported"});
  expect_error(raw_file(R"({"ids":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", 8), {"'ids'", "I64"});
}

TEST_F(BadSafetensors, UnknownDtypeIsNamed) {
  expect_error(raw_file(R"({"x":{"dtype":"Q4_K","shape":[1],"data_offsets":[0,4]}})", 4),
               {"'x'", "unknown dtype 'Q4_K'"});
}

TEST_F(BadSafetensors, OffsetsPastTheEnd) {
  expect_error(raw_file(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 8),
               {"'x'", "[4, 12]", "past the end"});
}

TEST_F(BadSafetensors, OffsetsReversed) {
  expect_error(raw_file(R"({"x":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", 8), {"'x'", "end before"});
}

TEST_F(BadSafetensors, WrongByteCount) {
  expect_error(raw_file(R"({"x":{"dtype":"BF16","shape":[3],"data_offsets":[0,8]}})", 8),
               {"'x'", "8 bytes", "needs 6"});
}

TEST_F(BadSafetensors, OverlappingTensors) {
  expect_error(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                        12),
               {"'a'", "'b'", "overlap"});
}

TEST_F(BadSafetensors, UnclaimedBytes) {
  expect_error(raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                        R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                        12),
               {"bytes 4 to 8", "'b'"});
  expect_error(raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 12), {"last 8 data bytes"});
}

TEST_F(BadSafetensors, ShapeOverflow) {
  expect_error(raw_file(R"({"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", 0),
               {"'x'", "more elements than can be addressed"});
  expect_error(raw_file(R"({"x":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}})", 0),
               {"'x'", "more bytes than can be addressed"});
  expect_error(raw_file(R"({"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})", 0), {"'x'", "non-negative"});
}

TEST_F(BadSafetensors, BadMetadata) {
  expect_error(raw_file(R"({"__metadata__":{"format":3}})", 0), {"__metadata__.format", "must be a string"});
}

}  // namespace
}  // namespace medlab
