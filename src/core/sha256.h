// SHA-256 through OpenSSL, fed in pieces: weight files, decoded pixels, image cache keys.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace medlab {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  Sha256& update(const void* data, size_t size);
  std::string hex_digest();  // lower-case hex; the object is spent afterwards

 private:
  struct Context;
  std::unique_ptr<Context> context_;
};

}  // namespace medlab
