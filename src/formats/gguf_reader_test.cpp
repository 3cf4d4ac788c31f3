// GGUF reader: valid files from GgufWriter read back exactly; hostile ones (made by corrupting valid
// files at the byte positions the spec gives) are refused with an error naming the file and the key
// or tensor, never a crash.
#include "formats/gguf_reader.h"

#include <gtest/gtest.h>

#include <cstring>

#include "core/quant.h"
#include "formats/gguf_writer.h"
#include "formats/test_support.h"

namespace medlab {
namespace {

using testing::read_file;
using testing::TempDir;
using testing::write_file;

// A small file with every metadata kind medlab writes and one tensor of each type of the writer.
std::string write_sample(const TempDir& dir) {
  const std::string path = dir / "sample.gguf";
  GgufWriter w(path);
  w.add_string("general.architecture", "gemma3");
  w.add_u32("answer.u32", 42);
  w.add_i32("answer.i32", -7);
  w.add_u64("answer.u64", 1ull << 40);
  w.add_f32("answer.f32", 0.25f);
  w.add_bool("answer.bool", true);
  w.add_strings("answer.strings", {"a", "", "\xe2\x96\x81x"});
  w.add_f32s("answer.f32s", {-1.5f, 2.0f});
  w.add_i32s("answer.i32s", {3, -4, 5});
  w.add_tensor("t.f32", GgufType::F32, {3, 2});
  w.add_tensor("t.b16", GgufType::BF16, {5});
  w.add_tensor("t.q80", GgufType::Q8_0, {64, 2});
  std::vector<float> f32 = {1, 2, 3, 4, 5, 6};
  std::vector<uint16_t> bf16 = {0x3f80, 0x4000, 0x4040, 0x4080, 0x40a0};
  std::vector<float> q(128);
  for (size_t i = 0; i < q.size(); ++i) q[i] = float(i) / 10 - 6;
  std::vector<uint8_t> q8(2 * 2 * sizeof(BlockQ8_0));
  gguf_encode_row(GgufType::Q8_0, q.data(), 128, q8.data());
  w.begin_tensor("t.f32"), w.write(f32.data(), 24), w.end_tensor();
  w.begin_tensor("t.b16"), w.write(bf16.data(), 10), w.end_tensor();
  w.begin_tensor("t.q80"), w.write(q8.data(), q8.size()), w.end_tensor();
  w.finish();
  return path;
}

// Position just after the first length-prefixed occurrence of `s` in the file's bytes.
size_t after_string(const std::string& bytes, const std::string& s) {
  std::string prefixed(8, '\0');
  const uint64_t n = s.size();
  std::memcpy(prefixed.data(), &n, 8);
  prefixed += s;
  const size_t at = bytes.find(prefixed);
  EXPECT_NE(at, std::string::npos) << s;
  return at + prefixed.size();
}

template <class T>
void poke(std::string& bytes, size_t at, T value) {
  std::memcpy(bytes.data() + at, &value, sizeof value);
}

// Tensor info after the name: u32 n_dims, n_dims u64 dims, u32 type, u64 offset.
size_t type_at(const std::string& bytes, const std::string& tensor, uint32_t n_dims) {
  return after_string(bytes, tensor) + 4 + 8 * n_dims;
}

class GgufReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = write_sample(dir_);
    bytes_ = read_file(path_);
  }
  // Writes the corrupted bytes and expects the reader to refuse them, naming the file and `parts`.
  void expect_refused(const std::string& bytes, std::initializer_list<std::string> parts) {
    const std::string bad = dir_ / "bad.gguf";
    write_file(bad, bytes);
    const std::string message = testing::error_of([&] { GgufFile f(bad); });
    EXPECT_NE(message.find(bad), std::string::npos) << message;
    for (const std::string& part : parts) EXPECT_NE(message.find(part), std::string::npos) << message << "\nshould mention: " << part;
  }
  TempDir dir_;
  std::string path_, bytes_;
};

TEST_F(GgufReaderTest, ReadsWhatTheWriterWrote) {
  const GgufFile f(path_);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.string("general.architecture"), "gemma3");
  EXPECT_EQ(f.u32("answer.u32"), 42u);
  EXPECT_EQ(f.integer("answer.i32"), -7);
  EXPECT_EQ(f.integer("answer.u64"), int64_t(1) << 40);
  EXPECT_EQ(f.number("answer.f32"), 0.25);
  EXPECT_TRUE(f.boolean("answer.bool", false));
  EXPECT_FALSE(f.boolean("absent.bool", false));
  EXPECT_EQ(f.strings("answer.strings"), (std::vector<std::string>{"a", "", "\xe2\x96\x81x"}));
  EXPECT_EQ(f.numbers("answer.f32s"), (std::vector<double>{-1.5, 2.0}));
  EXPECT_EQ(f.integers("answer.i32s"), (std::vector<int64_t>{3, -4, 5}));
  ASSERT_EQ(f.tensors().size(), 3u);

  const GgufTensor* t = f.find_tensor("t.f32");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dtype, DType::F32);
  EXPECT_EQ(t->ne, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(static_cast<const float*>(t->data)[5], 6.0f);
  const GgufTensor* b = f.find_tensor("t.b16");
  EXPECT_EQ(b->dtype, DType::BF16);
  EXPECT_EQ(b->bytes, 10u);
  EXPECT_EQ(static_cast<const uint16_t*>(b->data)[4], 0x40a0);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b->data) % 32, reinterpret_cast<uintptr_t>(t->data) % 32);
  const GgufTensor* q = f.find_tensor("t.q80");
  EXPECT_EQ(q->dtype, DType::Q8_0);
  EXPECT_EQ(q->bytes, 2 * 2 * sizeof(BlockQ8_0));
  std::vector<float> back(128);
  dequantize_row(DType::Q8_0, q->data, back.data(), 128);
  EXPECT_NEAR(back[127], 6.7f, 0.03f);
  EXPECT_EQ(f.find_tensor("absent"), nullptr);
}

TEST_F(GgufReaderTest, WrongKindOrMissingKeyIsNamed) {
  const GgufFile f(path_);
  EXPECT_ERROR_MENTIONS(f.string("answer.u32"), path_, "answer.u32", "string", "u32");
  EXPECT_ERROR_MENTIONS(f.integer("nope"), path_, "'nope' is missing");
  EXPECT_ERROR_MENTIONS(f.u32("answer.i32"), "answer.i32", "-7");
  EXPECT_ERROR_MENTIONS(f.strings("answer.f32s"), "answer.f32s", "array of f32");
}

TEST_F(GgufReaderTest, EveryTruncationIsRefused) {
  // Cut anywhere in the header, or before the last tensor's data ends (t.q80's 136 bytes, then 24 of padding).
  const size_t data_end = bytes_.size() - 24;
  for (size_t n = 0; n < data_end; n += (n < 600 ? 1 : 7)) {
    const std::string bad = dir_ / "cut.gguf";
    write_file(bad, bytes_.substr(0, n));
    EXPECT_THROW(GgufFile g(bad), Error) << "cut at " << n << " of " << data_end;
  }
}

TEST_F(GgufReaderTest, BadMagicAndVersion) {
  std::string b = bytes_;
  b[0] = 'X';
  expect_refused(b, {"not a GGUF file"});
  b = bytes_;
  poke<uint32_t>(b, 4, 2);
  expect_refused(b, {"version 2"});
}

TEST_F(GgufReaderTest, HugeCountsAndLengths) {
  std::string b = bytes_;
  poke<uint64_t>(b, 8, uint64_t(1) << 60);  // tensor count
  expect_refused(b, {"tensor count"});
  b = bytes_;
  poke<uint64_t>(b, 16, uint64_t(1) << 60);  // metadata count
  expect_refused(b, {"metadata count"});
  b = bytes_;
  poke<uint64_t>(b, 24, uint64_t(1) << 62);  // the first key's length
  expect_refused(b, {"metadata key 0", "runs past the end"});
  b = bytes_;
  poke<uint64_t>(b, after_string(b, "answer.strings") + 8, uint64_t(1) << 61);  // array count
  expect_refused(b, {"answer.strings", "cannot fit"});
  b = bytes_;
  poke<uint64_t>(b, after_string(b, "answer.strings") + 12, uint64_t(1) << 50);  // first element's length
  expect_refused(b, {"answer.strings", "runs past the end"});
}

TEST_F(GgufReaderTest, UnknownOrMalformedValues) {
  std::string b = bytes_;
  poke<uint32_t>(b, after_string(b, "answer.u32"), 99);
  expect_refused(b, {"answer.u32", "unknown value type 99"});
  b = bytes_;
  poke<uint32_t>(b, after_string(b, "answer.i32s") + 4, 9);  // array of arrays
  expect_refused(b, {"answer.i32s", "arrays of arrays"});
  b = bytes_;
  poke<uint8_t>(b, after_string(b, "answer.bool") + 4, 2);
  expect_refused(b, {"answer.bool", "not 0 or 1"});
  b = bytes_;
  const size_t key = after_string(b, "answer.i32") - 3;  // "answer.i32" -> "answer.u32": a repeated key
  b[key] = 'u';
  expect_refused(b, {"'answer.u32' appears twice"});
  b = bytes_;
  poke<uint32_t>(b, after_string(b, "general.alignment") + 4, 24);
  expect_refused(b, {"general.alignment 24"});
}

TEST_F(GgufReaderTest, UnsupportedTensorTypesAreRefusedByName) {
  std::string b = bytes_;
  poke<uint32_t>(b, type_at(b, "t.q80", 2), 3);
  expect_refused(b, {"t.q80", "q4_1", "not supported"});
  b = bytes_;
  poke<uint32_t>(b, type_at(b, "t.q80", 2), 16);
  expect_refused(b, {"t.q80", "iq2_xxs"});
  b = bytes_;
  poke<uint32_t>(b, type_at(b, "t.q80", 2), 1234);
  expect_refused(b, {"t.q80", "type 1234"});
}

TEST_F(GgufReaderTest, BadShapes) {
  std::string b = bytes_;
  poke<uint32_t>(b, after_string(b, "t.f32"), 5);
  expect_refused(b, {"t.f32", "5 dimensions"});
  b = bytes_;
  poke<uint64_t>(b, after_string(b, "t.f32") + 4, 0);
  expect_refused(b, {"t.f32", "dimension 0 is 0"});
  b = bytes_;
  poke<uint64_t>(b, after_string(b, "t.q80") + 4, 48);  // 48 is not whole q8_0 blocks
  expect_refused(b, {"t.q80", "row length 48"});
  b = bytes_;
  poke<uint64_t>(b, after_string(b, "t.f32") + 4, uint64_t(1) << 20);  // too big for the file
  poke<uint64_t>(b, after_string(b, "t.f32") + 12, uint64_t(1) << 20);
  expect_refused(b, {"t.f32", "outside"});
}

TEST_F(GgufReaderTest, BadOffsets) {
  const GgufFile good(path_);
  const uint64_t bf16_offset = good.find_tensor("t.b16")->offset;
  std::string b = bytes_;
  poke<uint64_t>(b, type_at(b, "t.q80", 2) + 4, bf16_offset);  // on top of t.bf16
  expect_refused(b, {"t.b16", "t.q80", "overlap"});
  b = bytes_;
  poke<uint64_t>(b, type_at(b, "t.b16", 1) + 4, 8);
  expect_refused(b, {"t.b16", "not a multiple of 32"});
  b = bytes_;
  poke<uint64_t>(b, type_at(b, "t.q80", 2) + 4, uint64_t(1) << 40);
  expect_refused(b, {"t.q80", "outside"});
  b = bytes_;
  poke<uint64_t>(b, type_at(b, "t.q80", 2) + 4, ~uint64_t(0) - 31);  // offset + size overflows 64 bits
  expect_refused(b, {"t.q80", "outside"});
  b = bytes_;
  b.replace(after_string(b, "t.b16") - 5, 5, "t.f32");  // two tensors named t.f32
  expect_refused(b, {"t.f32", "appears twice"});
}

}  // namespace
}  // namespace medlab
