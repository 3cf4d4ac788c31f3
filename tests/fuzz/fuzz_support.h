// Shared by the fuzz targets (src/*/*_fuzz.cpp): a scratch file for parsers that take a path, and a check
// that turns a broken invariant into a crash the fuzzer records.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <unistd.h>

namespace medlab::fuzz {

// One file per process under /dev/shm (memory, not disk), rewritten for every input and removed at exit.
class ScratchFile {
 public:
  explicit ScratchFile(const std::string& name) {
    const std::filesystem::path dir = std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp";
    path_ = (dir / ("medlab-fuzz-" + std::to_string(getpid()) + "-" + name)).string();
  }
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;
  ~ScratchFile() { std::remove(path_.c_str()); }

  const std::string& write(const uint8_t* data, size_t size) const {
    std::FILE* f = std::fopen(path_.c_str(), "wb");
    if (!f || (size && std::fwrite(data, 1, size, f) != size) || std::fclose(f) != 0) {
      std::perror(path_.c_str());
      std::abort();
    }
    return path_;
  }

 private:
  std::string path_;
};

// An invariant the code under test promises; breaking it is a finding, like a crash.
inline void require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "fuzz invariant broken: %s\n", what);
    std::abort();
  }
}

// Reads the first, middle and last byte of [data, data + size), which AddressSanitizer reports when the
// view reaches past its buffer; the volatile store keeps the reads from being optimised away.
inline void touch(const void* data, size_t size) {
  static volatile uint8_t sink;
  const auto* bytes = static_cast<const uint8_t*>(data);
  if (size) sink = sink ^ bytes[0] ^ bytes[size / 2] ^ bytes[size - 1];
}

}  // namespace medlab::fuzz
