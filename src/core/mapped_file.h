// A read-only memory map of a whole file, from which weights are used in place; and the anonymous memory
// of weights made at load.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace medlab {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws Error naming the path
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  bool contains(const void* p, size_t bytes) const {
    const auto* b = static_cast<const uint8_t*>(p);
    return data_ && b >= data_ && bytes <= size_ && size_t(b - data_) <= size_ - bytes;
  }
  // Drops the whole pages of [p, p + bytes) (which must lie in the map) from this process's memory: for
  // bytes copied elsewhere at load. The map stays valid; a page read again comes back from the file.
  void release(const void* p, size_t bytes) const;

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Zero-filled anonymous memory for weights made at load (repacked layers), in transparent huge pages where
// the kernel grants them: a 512th of the page faults to fill it and of the TLB misses to stream it.
class LargeBuffer {
 public:
  LargeBuffer() = default;
  explicit LargeBuffer(size_t bytes);  // throws Error when the memory cannot be had
  LargeBuffer(LargeBuffer&& other) noexcept;
  LargeBuffer& operator=(LargeBuffer&& other) noexcept;
  LargeBuffer(const LargeBuffer&) = delete;
  LargeBuffer& operator=(const LargeBuffer&) = delete;
  ~LargeBuffer();

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;  // whole huge pages
};

}  // namespace medlab
