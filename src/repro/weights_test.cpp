// Listing hashes (a model's or an adapter's SHA-256) equal to what `sha256sum FILES | sha256sum` prints, and
// the cache of file hashes: trusted while a file's size and modification time hold, refreshed when they change.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "repro/weights.h"

namespace medlab {
namespace {

namespace fs = std::filesystem;

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

class AdapterFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("weights_test_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "my-lora");
    write_file(dir_ / "my-lora/adapter_config.json", "{\"r\": 8}\n");
    write_file(dir_ / "my-lora/adapter_model.safetensors", "weights");
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::vector<std::string> files() const {
    return {(dir_ / "my-lora/adapter_config.json").string(), (dir_ / "my-lora/adapter_model.safetensors").string()};
  }
  fs::path dir_;
};

// `cd my-lora && sha256sum adapter_config.json adapter_model.safetensors | sha256sum` over the files above.
constexpr const char* kListingSha256 = "72ad888a0c30da42ae778215a1da994c5ce4045fb1eb2c22e8710479dba272f3";
// The same with adapter_model.safetensors holding "weightz".
constexpr const char* kChangedListingSha256 = "6844a9b4aa52f8d6bfe021288745f3b6fc833680bf35764887cf275ec511fb21";

TEST_F(AdapterFolder, ListingHashIsWhatSha256sumPrints) {
  EXPECT_EQ(listing_sha256(files()), kListingSha256);
  write_file(dir_ / "my-lora/adapter_model.safetensors", "weightz");
  EXPECT_EQ(listing_sha256(files()), kChangedListingSha256);
}

TEST_F(AdapterFolder, CacheIsTrustedUntilTheFileChanges) {
  const fs::path cache = dir_ / "cache/weight-hashes.json";
  EXPECT_EQ(listing_sha256(files(), cache), kListingSha256);
  nlohmann::json entries = nlohmann::json::parse(std::ifstream(cache));
  const std::string model_key = fs::absolute(files()[1]).lexically_normal().string();
  ASSERT_TRUE(entries.contains(model_key)) << entries.dump();
  EXPECT_EQ(entries.size(), 2u);

  // A cached hash stands for the file while its stamp holds: a forged one shows that the file was not read.
  entries[model_key]["sha256"] = std::string(64, '0');
  write_file(cache, entries.dump());
  EXPECT_NE(listing_sha256(files(), cache), kListingSha256);
  EXPECT_EQ(listing_sha256(files()), kListingSha256);  // no cache: read again

  write_file(dir_ / "my-lora/adapter_model.safetensors", "weights, changed");  // a new size: read again
  const std::string fresh = listing_sha256(files());
  EXPECT_EQ(listing_sha256(files(), cache), fresh);
  EXPECT_NE(nlohmann::json::parse(std::ifstream(cache))[model_key]["sha256"], std::string(64, '0'));
}

}  // namespace
}  // namespace medlab
