// Hostile model files: crafted safetensors and GGUF headers and config.json files whose counts, lengths
// and sizes would, if believed, make medlab allocate gigabytes. Each must be refused with an error that
// names the file and the field at fault, and the largest single allocation made while refusing it must
// stay under 64 MiB. This binary replaces the global operator new to measure that; the first test shows
// the measure sees a large allocation, so the others cannot pass by measuring nothing.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <new>

#include <nlohmann/json.hpp>

#include "formats/checkpoint.h"
#include "formats/gguf_reader.h"
#include "formats/gguf_writer.h"
#include "formats/safetensors.h"
#include "formats/test_checkpoint.h"
#include "formats/test_support.h"

namespace {

std::atomic<bool> metering{false};
std::atomic<size_t> largest{0};

void* allocate(size_t n) {
  if (metering.load(std::memory_order_relaxed)) {
    size_t seen = largest.load(std::memory_order_relaxed);
    while (n > seen && !largest.compare_exchange_weak(seen, n, std::memory_order_relaxed)) {
    }
  }
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}

}  // namespace

void* operator new(size_t n) { return allocate(n); }
void* operator new[](size_t n) { return allocate(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

namespace medlab {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::TempDir;
using testing::write_file;

constexpr size_t kAllocationLimit = 64 << 20;

// The largest single allocation `f` makes through operator new.
size_t largest_allocation(const std::function<void()>& f) {
  largest = 0;
  metering = true;
  try {
    f();
  } catch (...) {
    metering = false;
    throw;
  }
  metering = false;
  return largest;
}

// `open` must throw an Error naming every part, without allocating more than the limit at once.
void expect_refused_cheaply(const std::function<void()>& open, const std::vector<std::string>& parts) {
  std::string message;
  const size_t biggest = largest_allocation([&] { message = testing::error_of(open); });
  for (const std::string& part : parts)
    EXPECT_NE(message.find(part), std::string::npos) << "error: " << message << "\nshould mention: " << part;
  EXPECT_LT(biggest, kAllocationLimit) << "refusing took one allocation of " << biggest << " bytes: " << message;
}

TEST(AllocationMeter, SeesALargeAllocation) {
  const size_t big = size_t(100) << 20;
  std::string kept;
  EXPECT_GE(largest_allocation([&] { kept.assign(big, 'x'); }), big);
  EXPECT_EQ(kept.back(), 'x');
  EXPECT_LT(largest_allocation([] {}), 1024u);
}

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  std::memcpy(s.data(), &v, 8);
  return s;
}

std::string le32(uint32_t v) {
  std::string s(4, '\0');
  std::memcpy(s.data(), &v, 4);
  return s;
}

// safetensors: the u64 header length, then the header.
std::string safetensors_bytes(const std::string& header) { return le64(header.size()) + header; }

class HostileSafetensors : public ::testing::Test {
 protected:
  void expect_refused(const std::string& bytes, std::initializer_list<std::string> parts) {
    write_file(path_, bytes);
    std::vector<std::string> all(parts);
    all.push_back(path_);
    expect_refused_cheaply([&] { SafetensorsFile f(path_); }, all);
  }
  TempDir dir_;
  std::string path_ = dir_ / "hostile.safetensors";
};

TEST_F(HostileSafetensors, HeaderLengthsNear2To64) {
  for (uint64_t length : {~uint64_t(0), ~uint64_t(0) - 7, uint64_t(1) << 63})
    expect_refused(le64(length) + "{}", {"header length", "past the end"});
}

TEST_F(HostileSafetensors, HeadersThatAreNotAnObjectOfTensors) {
  expect_refused(safetensors_bytes(std::string("\x00\xff\xfe{", 4)), {"not valid JSON"});
  expect_refused(safetensors_bytes(R"("a string")"), {"must be a JSON object"});
  // 7.5 million numbers would be a 128 MiB vector of JSON values; 7.5 million nested arrays overflowed the
  // stack before the parser was stopped at a depth of 8.
  std::string numbers = "[0";
  for (size_t i = 0; i < (15u << 20) / 2; ++i) numbers += ",0";
  expect_refused(safetensors_bytes(numbers + "]"), {"array of more than 64 items"});
  const size_t depth = (15u << 20) / 2;
  expect_refused(safetensors_bytes(std::string(depth, '[') + std::string(depth, ']')), {"nests deeper than 8"});
  // A shape of a thousand dimensions.
  std::string dims = "[1";
  for (int i = 0; i < 1000; ++i) dims += ",1";
  expect_refused(safetensors_bytes(R"({"x":{"dtype":"F32","shape":)" + dims + R"(],"data_offsets":[0,4]}})"),
                 {"array of more than 64 items"});
}

TEST_F(HostileSafetensors, AbsurdMetadataStrings) {
  const std::string long_value(2u << 20, 'm');
  expect_refused(safetensors_bytes(R"({"__metadata__":{"format":"pt","notes":")" + long_value + R"("}})"),
                 {"__metadata__.notes", "2097152 bytes", "1 MiB"});
}

TEST_F(HostileSafetensors, VeryManyTensors) {
  std::string header = "{";
  for (int i = 0; i < 70000; ++i)
    header += (i ? ",\"t" : "\"t") + std::to_string(i) + R"(":{"dtype":"F32","shape":[0],"data_offsets":[0,0]})";
  expect_refused(safetensors_bytes(header + "}"), {"70000 entries", "65536 tensors"});
}

TEST_F(HostileSafetensors, ShapesAndOffsetsThatOverflow) {
  // The element product wraps to 0 in 64 bits; the byte count wraps to 0 at 2^62 F32 elements.
  expect_refused(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,0]}})"),
                 {"'w'", "more elements than can be addressed"});
  expect_refused(safetensors_bytes(R"({"w":{"dtype":"BF16","shape":[9223372036854775807],"data_offsets":[0,0]}})"),
                 {"'w'", "more bytes than can be addressed"});
  expect_refused(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,0]}})"),
                 {"'w'", "more elements than can be addressed"});
  expect_refused(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[18446744073709551608,0]}})"),
                 {"'w'", "end before they begin"});
  expect_refused(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551615]}})"),
                 {"'w'", "past the end"});
  expect_refused(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})") + "....",
                 {"'w'", "non-negative integers"});
}

// GGUF v3, byte by byte: magic, version, tensor count, metadata count, then what `rest` holds.
std::string gguf_bytes(uint64_t n_tensors, uint64_t n_kv, const std::string& rest) {
  return "GGUF" + le32(3) + le64(n_tensors) + le64(n_kv) + rest;
}
std::string gguf_string(const std::string& s) { return le64(s.size()) + s; }
// A u32 metadata pair.
std::string gguf_u32(const std::string& key, uint32_t v) { return gguf_string(key) + le32(4) + le32(v); }
// Tensor info: name, dims, type, offset.
std::string gguf_tensor(const std::string& name, std::vector<uint64_t> dims, uint32_t type, uint64_t offset) {
  std::string s = gguf_string(name) + le32(uint32_t(dims.size()));
  for (uint64_t d : dims) s += le64(d);
  return s + le32(type) + le64(offset);
}

class HostileGguf : public ::testing::Test {
 protected:
  void expect_refused(const std::string& bytes, std::initializer_list<std::string> parts) {
    write_file(path_, bytes);
    std::vector<std::string> all(parts);
    all.push_back(path_);
    expect_refused_cheaply([&] { GgufFile f(path_); }, all);
  }
  TempDir dir_;
  std::string path_ = dir_ / "hostile.gguf";
};

TEST_F(HostileGguf, CountsNear2To64) {
  const std::string padding(4096, '\0');
  expect_refused(gguf_bytes(~uint64_t(0), 0, padding), {"tensor count 18446744073709551615"});
  expect_refused(gguf_bytes(0, ~uint64_t(0), padding), {"metadata count 18446744073709551615"});
  // 800000 tensor infos fit in the 27 MiB that follow, but reserving them would take 70 MB at once.
  expect_refused(gguf_bytes(800000, 0, std::string(27u << 20, '\0')), {"tensor count 800000", "limit of 65536"});
}

TEST_F(HostileGguf, StringLengths) {
  expect_refused(gguf_bytes(0, 1, le64(uint64_t(1) << 63) + "key" + std::string(64, '\0')), {"metadata key 0", "runs past the end"});
  expect_refused(gguf_bytes(0, 1, gguf_string(std::string(70000, 'k')) + le32(4) + le32(1)),
                 {"metadata key 0", "limit of 65535"});
  expect_refused(gguf_bytes(0, 1, gguf_string("s") + le32(8) + le64(uint64_t(1) << 63) + "abc"),
                 {"metadata 's'", "runs past the end"});
  expect_refused(gguf_bytes(1, 0, gguf_tensor(std::string(1000, 'n'), {4}, 0, 0)), {"tensor 0 name", "limit of 63"});
}

TEST_F(HostileGguf, ArrayCounts) {
  const std::string array_of_u8 = gguf_string("a") + le32(9) + le32(0);
  expect_refused(gguf_bytes(0, 1, array_of_u8 + le64(uint64_t(1) << 60) + "xyz"), {"metadata 'a'", "cannot fit"});
  expect_refused(gguf_bytes(0, 1, array_of_u8 + le64(~uint64_t(0)) + "xyz"), {"metadata 'a'", "cannot fit"});
  // Three million empty strings fit in the 24 MB that follow; reserving them would take 96 MB at once.
  const std::string array_of_strings = gguf_string("tokens") + le32(9) + le32(8);
  expect_refused(gguf_bytes(0, 1, array_of_strings + le64(3000000) + std::string(24u << 20, '\0')),
                 {"metadata 'tokens'", "3000000 elements exceed the limit of 1048576"});
}

TEST_F(HostileGguf, Dimensions) {
  const std::string data(64, '\0');
  expect_refused(gguf_bytes(1, 0, gguf_tensor("w", {uint64_t(1) << 40, uint64_t(1) << 40}, 0, 0) + data),
                 {"'w'", "too many elements"});
  expect_refused(gguf_bytes(1, 0, gguf_tensor("w", {~uint64_t(0)}, 0, 0) + data), {"'w'", "dimension 0 is"});
  expect_refused(gguf_bytes(1, 0, gguf_tensor("w", {}, 0, 0) + data), {"'w'", "0 dimensions"});
  expect_refused(gguf_bytes(1, 0, gguf_tensor("w", {1, 1, 1, 1, 1}, 0, 0) + data), {"'w'", "5 dimensions"});
  expect_refused(gguf_bytes(1, 0, gguf_tensor("w", {4}, 0xffffffff, 0) + data), {"'w'", "type 4294967295"});
}

TEST_F(HostileGguf, Alignment) {
  const std::string tensor = gguf_tensor("w", {4}, 0, 0) + std::string(64, '\0');
  expect_refused(gguf_bytes(1, 1, gguf_u32("general.alignment", 0) + tensor), {"general.alignment 0"});
  expect_refused(gguf_bytes(1, 1, gguf_u32("general.alignment", 0x80000001u) + tensor),
                 {"general.alignment 2147483649", "power of two"});
  expect_refused(gguf_bytes(1, 1, gguf_string("general.alignment") + le32(10) + le64(32) + tensor),
                 {"general.alignment must be a u32"});
  expect_refused(gguf_bytes(1, 1, gguf_u32("general.alignment", 1u << 31) + gguf_tensor("w", {4}, 0, 0)),
                 {"truncated", "2147483648"});
}

class HostileConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    write_test_checkpoint({"tiny-text", 3, DType::BF16, ""}, dir_.path().string());
    config_ = json::parse(testing::read_file(dir_ / "config.json"));
  }
  // Opens the checkpoint with `edit` applied to its config.json.
  void expect_refused(const std::function<void(json&)>& edit, std::initializer_list<std::string> parts) {
    json config = config_;
    edit(config);
    write_file(dir_ / "config.json", config.dump());
    std::vector<std::string> all(parts);
    all.push_back(dir_.path().string());
    expect_refused_cheaply([&] { Checkpoint::open(dir_.path().string()); }, all);
  }
  TempDir dir_;
  json config_;
};

TEST_F(HostileConfig, DisagreesWithTheWeights) {
  const int64_t hidden = config_["hidden_size"], layers = config_["num_hidden_layers"];
  const int64_t vocab = config_["vocab_size"], head_dim = config_["head_dim"];
  expect_refused([&](json& c) { c["hidden_size"] = hidden * 2; },
                 {"'model.embed_tokens.weight'", "expected [" + std::to_string(vocab) + ", " +
                                                     std::to_string(hidden * 2) + "] from config.json"});
  expect_refused([&](json& c) { c["num_hidden_layers"] = layers + 1; },
                 {"missing tensor 'model.layers." + std::to_string(layers) + "."});
  expect_refused([&](json& c) { c["vocab_size"] = vocab + 1; }, {"'model.embed_tokens.weight'", "expected"});
  expect_refused([&](json& c) { c["head_dim"] = head_dim * 2; }, {"'model.layers.0.self_attn.q_proj.weight'", "expected"});
  expect_refused([&](json& c) { c["num_key_value_heads"] = c["num_attention_heads"]; },
                 {"'model.layers.0.self_attn.k_proj.weight'", "expected"});
}

TEST_F(HostileConfig, AbsurdValues) {
  expect_refused([](json& c) { c["hidden_size"] = int64_t(1) << 40; },
                 {"config.json", "hidden_size must be at most 16777216, found 1099511627776"});
  // A billion layers would be a 125 MB vector of layer kinds, then 13 billion expected tensor names.
  expect_refused([](json& c) { c["num_hidden_layers"] = 1000000000; },
                 {"config.json", "num_hidden_layers must be at most 1024"});
  expect_refused([](json& c) { c["num_attention_heads"] = -8; }, {"config.json", "num_attention_heads must be positive"});
  expect_refused([](json& c) { c["num_key_value_heads"] = -1; }, {"config.json", "num_key_value_heads must be positive"});
  expect_refused([](json& c) { c["vocab_size"] = int64_t(1) << 62; }, {"config.json", "vocab_size must be at most"});
  expect_refused([](json& c) { c["max_position_embeddings"] = int64_t(1) << 40; },
                 {"config.json", "max_position_embeddings must be at most"});
  expect_refused([](json& c) { c["padding"] = std::string(5u << 20, ' '); }, {"config.json", "4 MiB"});
}

TEST(HostileGgufConfig, AbsurdBlockCount) {
  TempDir dir;
  const std::string path = dir / "model.gguf";
  GgufWriter w(path);
  w.add_string("general.architecture", "gemma3");
  w.add_u32("gemma3.embedding_length", 8);
  w.add_u32("gemma3.feed_forward_length", 16);
  w.add_u32("gemma3.block_count", 1000000000);
  w.add_u32("gemma3.attention.head_count", 2);
  w.add_u32("gemma3.context_length", 128);
  w.add_f32("gemma3.attention.layer_norm_rms_epsilon", 1e-6f);
  w.add_tensor("token_embd.weight", GgufType::F32, {8, 4});
  const std::vector<float> embed(32);
  w.begin_tensor("token_embd.weight"), w.write(embed.data(), embed.size() * 4), w.end_tensor();
  w.finish();
  expect_refused_cheaply([&] { Checkpoint::open(path); },
                         {path, "'gemma3.block_count' must be at most 1024, found 1000000000"});
}

}  // namespace
}  // namespace medlab
