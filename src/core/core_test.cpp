#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "core/thread_pool.h"

namespace medlab {
namespace {

TEST(DType, HalfRoundTripsEveryFiniteValue) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00u) == 0x7c00u) continue;  // inf/NaN
    EXPECT_EQ(f32_to_f16(f16_to_f32(uint16_t(h))), h) << h;
  }
}

TEST(DType, HalfKnownValues) {
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(1e6f), 0x7c00);
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie rounds to even
}

TEST(DType, BFloat16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);   // tie, even stays
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);  // tie, odd rounds up
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::nanf("")))));
}

TEST(ThreadPool, SlicesCoverTheRangeOnceAlignedToGrain) {
  for (int threads : {1, 2, 3, 7}) {
    ThreadPool pool(threads);
    for (int64_t n : {1, 5, 16, 100, 1001}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      pool.parallel_for(
          n,
          [&](int64_t b, int64_t e) {
            EXPECT_EQ(b % 4, 0);
            for (int64_t i = b; i < e; ++i) hits[size_t(i)]++;
          },
          4);
      for (auto& h : hits) EXPECT_EQ(h.load(), 1);
    }
  }
}

TEST(ThreadPool, ChunksCoverTheRangeOnceAlignedToGrain) {
  for (int threads : {1, 2, 3, 7}) {
    ThreadPool pool(threads);
    for (int64_t n : {1, 5, 16, 100, 1001, 100000}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      std::atomic<int> calls{0};
      pool.parallel_chunks(
          n,
          [&](int64_t b, int64_t e) {
            EXPECT_EQ(b % 4, 0);
            EXPECT_LT(b, e);
            calls++;
            for (int64_t i = b; i < e; ++i) hits[size_t(i)]++;
          },
          4);
      for (auto& h : hits) EXPECT_EQ(h.load(), 1);
      // Several chunks per thread once the range allows them, so a slow thread can be made up for.
      if (threads > 1 && n >= 1001) {
        EXPECT_GE(calls.load(), 4 * threads);
      }
    }
  }
}

TEST(ThreadPool, OnePieceOfWorkRunsOnTheCallersThread) {
  ThreadPool pool(2);
  std::thread::id ran_on;
  pool.parallel_for(100, [&](int64_t, int64_t) { ran_on = std::this_thread::get_id(); }, 4096);
  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

TEST(ThreadPool, RejectsAbsurdThreadCounts) {
  EXPECT_THROW(ThreadPool(0), Error);
}

TEST(MappedFile, MissingFileNamesThePath) {
  try {
    MappedFile f("/nonexistent/weights.safetensors");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/weights.safetensors"), std::string::npos);
  }
}

// Released pages read back the file's bytes; a range outside the map is refused, whole or in part.
TEST(MappedFile, ReleasedPagesReadTheFileAgain) {
  const std::string path = ::testing::TempDir() + "mapped_file_release.bin";
  std::vector<uint8_t> bytes(3 * 4096 + 100);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = uint8_t(i * 7 + 3);
  std::FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
  const MappedFile map(path);
  EXPECT_EQ(std::memcmp(map.data(), bytes.data(), bytes.size()), 0);
  EXPECT_TRUE(map.contains(map.data() + 10, bytes.size() - 10));
  EXPECT_FALSE(map.contains(map.data() + 10, bytes.size()));
  EXPECT_FALSE(map.contains(bytes.data(), 1));
  map.release(map.data() + 10, bytes.size() - 10);
  EXPECT_EQ(std::memcmp(map.data(), bytes.data(), bytes.size()), 0);
  EXPECT_THROW(map.release(map.data() + 1, bytes.size()), Error);
  std::remove(path.c_str());
}

TEST(LargeBuffer, IsZeroedWritableAndWhole) {
  LargeBuffer buffer(3 << 20);
  ASSERT_NE(buffer.data(), nullptr);
  EXPECT_GE(buffer.size(), size_t(3) << 20);
  EXPECT_EQ(uintptr_t(buffer.data()) % (size_t(2) << 20), 0u);
  for (size_t i = 0; i < buffer.size(); i += 4096) EXPECT_EQ(buffer.data()[i], 0) << i;
  buffer.data()[buffer.size() - 1] = 1;
  LargeBuffer moved = std::move(buffer);
  EXPECT_EQ(buffer.data(), nullptr);
  EXPECT_EQ(moved.data()[moved.size() - 1], 1);
  EXPECT_EQ(LargeBuffer().data(), nullptr);
}

}  // namespace
}  // namespace medlab

#include "core/sha256.h"

namespace medlab {
namespace {

TEST(Sha256, KnownDigests) {
  EXPECT_EQ(Sha256().hex_digest(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  Sha256 pieces;
  pieces.update("a", 1).update("bc", 2);
  EXPECT_EQ(pieces.hex_digest(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace medlab
