#include "repro/weights.h"

#include <unistd.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/sha256.h"

namespace medlab {
namespace fs = std::filesystem;
namespace {

// What a cached hash is valid for: the file unchanged in size and modification time.
std::string file_stamp(const fs::path& path) {
  const auto mtime = fs::last_write_time(path).time_since_epoch();
  return std::to_string(fs::file_size(path)) + ":" +
         std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(mtime).count());
}

nlohmann::json read_cache(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return nlohmann::json::object();
  auto json = nlohmann::json::parse(in, nullptr, false);
  return json.is_object() ? json : nlohmann::json::object();  // an unreadable cache is only a slower start
}

// Written beside and renamed over, so that a reader (another shard on this machine) never sees half a file.
void write_cache(const fs::path& path, const nlohmann::json& cache) {
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  const fs::path temporary = path.string() + "." + std::to_string(::getpid()) + ".tmp";
  {
    std::ofstream out(temporary);
    out << cache.dump(1) << "\n";
    if (!out) return;
  }
  fs::rename(temporary, path, ec);
  if (ec) fs::remove(temporary, ec);
}

}  // namespace

WeightHashes hash_weights(const Checkpoint& checkpoint, const std::function<void(uint64_t, uint64_t)>& progress,
                          const std::optional<fs::path>& cache_path) {
  const std::vector<std::string> paths = checkpoint.weight_files();
  nlohmann::json cache = cache_path ? read_cache(*cache_path) : nlohmann::json::object();
  uint64_t total = 0, done = 0, reported = 0;
  for (const std::string& path : paths) total += fs::file_size(path);

  WeightHashes hashes;
  std::string listing;  // sha256sum's output for these files
  std::vector<char> buffer(size_t(4) << 20);
  bool cache_changed = false;
  for (const std::string& path : paths) {
    const std::string key = fs::absolute(path).lexically_normal().string(), stamp = file_stamp(path);
    WeightFileHash file{path, fs::file_size(path), ""};
    if (cache.contains(key) && cache[key].value("stamp", "") == stamp) {
      file.sha256 = cache[key].value("sha256", "");
      done += file.size;
    }
    if (file.sha256.size() != 64) {
      std::ifstream in(path, std::ios::binary);
      if (!in) fail(path, ": cannot open to hash");
      Sha256 sha;
      while (in.read(buffer.data(), std::streamsize(buffer.size())) || in.gcount() > 0) {
        sha.update(buffer.data(), size_t(in.gcount()));
        done += uint64_t(in.gcount());
        if (progress && done - reported >= (uint64_t(256) << 20)) {
          progress(done, total);
          reported = done;
        }
      }
      if (in.bad()) fail(path, ": read error while hashing");
      file.sha256 = sha.hex_digest();
      cache[key] = {{"stamp", stamp}, {"sha256", file.sha256}};
      cache_changed = true;
    }
    listing += file.sha256 + "  " + fs::path(path).filename().string() + "\n";
    hashes.files.push_back(std::move(file));
  }
  if (progress) progress(done, total);
  if (cache_path && cache_changed) write_cache(*cache_path, cache);
  hashes.model_sha256 = Sha256().update(listing.data(), listing.size()).hex_digest();
  return hashes;
}

}  // namespace medlab
