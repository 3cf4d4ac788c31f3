#include "repro/weights.h"

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/sha256.h"

namespace medlab {

WeightHashes hash_weights(const Checkpoint& checkpoint, const std::function<void(uint64_t, uint64_t)>& progress) {
  const std::vector<std::string> paths = checkpoint.weight_files();
  uint64_t total = 0, done = 0, reported = 0;
  for (const std::string& path : paths) total += std::filesystem::file_size(path);

  WeightHashes hashes;
  Sha256 model;
  std::vector<char> buffer(size_t(4) << 20);
  for (const std::string& path : paths) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(path, ": cannot open to hash");
    Sha256 file;
    uint64_t size = 0;
    while (in.read(buffer.data(), std::streamsize(buffer.size())) || in.gcount() > 0) {
      const size_t n = size_t(in.gcount());
      file.update(buffer.data(), n);
      model.update(buffer.data(), n);
      size += n;
      done += n;
      if (progress && done - reported >= (uint64_t(256) << 20)) {
        progress(done, total);
        reported = done;
      }
    }
    if (in.bad()) fail(path, ": read error while hashing");
    hashes.files.push_back({path, size, file.hex_digest()});
  }
  if (progress) progress(done, total);
  hashes.model_sha256 = model.hex_digest();
  return hashes;
}

}  // namespace medlab
