// Helpers shared by the formats tests: a temporary folder, file writes, and error-message checks.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "core/error.h"

namespace medlab::testing {

// A fresh folder under the build tree, named after the test (plus `suffix`), removed when the test ends.
class TempDir {
 public:
  explicit TempDir(const std::string& suffix = "") {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = std::filesystem::path(MEDLAB_BINARY_DIR) / "test_tmp" /
            (std::string(info->test_suite_name()) + "." + info->name() + suffix);
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The message of the medlab::Error that `f` throws; fails the test if it throws nothing.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a medlab::Error";
  return "";
}

}  // namespace medlab::testing

// The error thrown by `statement` mentions every one of the given parts.
#define EXPECT_ERROR_MENTIONS(statement, ...)                                                                       \
  do {                                                                                                              \
    const std::string message_ = ::medlab::testing::error_of([&] { statement; });                                   \
    for (const std::string& part_ : std::initializer_list<std::string>{__VA_ARGS__})                                \
      EXPECT_NE(message_.find(part_), std::string::npos) << "error: " << message_ << "\nshould mention: " << part_; \
  } while (0)
