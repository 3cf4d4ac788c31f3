// A read-only memory map of a whole file; weights are used in place from it.
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

}  // namespace medlab
