#include "repro/weights.h"

#include <unistd.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/sha256.h"
#include "formats/peft_adapter.h"

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

// Hashes files, taking from the cache those unchanged since and remembering the others; the bytes of every file
// count towards the progress.
class FileHasher {
 public:
  FileHasher(const std::function<void(uint64_t, uint64_t)>& progress, const std::optional<fs::path>& cache_path)
      : progress_(progress),
        cache_path_(cache_path),
        cache_(cache_path ? read_cache(*cache_path) : nlohmann::json::object()) {}

  void will_read(const std::vector<std::string>& paths) {
    for (const std::string& path : paths) total_ += fs::file_size(path);
  }

  // The SHA-256 of sha256sum's output for `paths`; each file's hash goes to `files` when given.
  std::string listing_sha256(const std::vector<std::string>& paths, std::vector<WeightFileHash>* files) {
    std::string listing;
    for (const std::string& path : paths) {
      WeightFileHash file{path, fs::file_size(path), file_sha256(path)};
      listing += file.sha256 + "  " + fs::path(path).filename().string() + "\n";
      if (files) files->push_back(std::move(file));
    }
    return Sha256().update(listing.data(), listing.size()).hex_digest();
  }

  void finish() {
    if (progress_) progress_(done_, total_);
    if (cache_path_ && cache_changed_) write_cache(*cache_path_, cache_);
  }

 private:
  std::string file_sha256(const std::string& path) {
    const std::string key = fs::absolute(path).lexically_normal().string(), stamp = file_stamp(path);
    if (cache_.contains(key) && cache_[key].value("stamp", "") == stamp) {
      const std::string known = cache_[key].value("sha256", "");
      if (known.size() == 64) {
        done_ += fs::file_size(path);
        return known;
      }
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(path, ": cannot open to hash");
    Sha256 sha;
    while (in.read(buffer_.data(), std::streamsize(buffer_.size())) || in.gcount() > 0) {
      sha.update(buffer_.data(), size_t(in.gcount()));
      done_ += uint64_t(in.gcount());
      if (progress_ && done_ - reported_ >= (uint64_t(256) << 20)) {
        progress_(done_, total_);
        reported_ = done_;
      }
    }
    if (in.bad()) fail(path, ": read error while hashing");
    std::string hex = sha.hex_digest();
    cache_[key] = {{"stamp", stamp}, {"sha256", hex}};
    cache_changed_ = true;
    return hex;
  }

  std::function<void(uint64_t, uint64_t)> progress_;
  std::optional<fs::path> cache_path_;
  nlohmann::json cache_;
  bool cache_changed_ = false;
  uint64_t total_ = 0, done_ = 0, reported_ = 0;
  std::vector<char> buffer_ = std::vector<char>(size_t(4) << 20);
};

// "adapters/my-lora/" and "adapters/my-lora" are both "my-lora".
std::string folder_name(const fs::path& dir) {
  fs::path path = fs::absolute(dir).lexically_normal();
  if (!path.has_filename()) path = path.parent_path();
  return path.filename().string();
}

}  // namespace

WeightHashes hash_weights(const Checkpoint& checkpoint, const std::function<void(uint64_t, uint64_t)>& progress,
                          const std::optional<fs::path>& cache_path) {
  FileHasher hasher(progress, cache_path);
  const std::vector<std::string> paths = checkpoint.weight_files();
  hasher.will_read(paths);
  for (const Checkpoint::AppliedAdapter& applied : checkpoint.adapters()) hasher.will_read(applied.adapter->files());

  WeightHashes hashes;
  hashes.model_sha256 = hasher.listing_sha256(paths, &hashes.files);
  for (const Checkpoint::AppliedAdapter& applied : checkpoint.adapters())
    hashes.adapters.push_back({folder_name(applied.adapter->dir()),
                               hasher.listing_sha256(applied.adapter->files(), nullptr), applied.scale, applied.merged});
  hasher.finish();
  return hashes;
}

std::string listing_sha256(const std::vector<std::string>& paths, const std::optional<fs::path>& cache_path) {
  FileHasher hasher({}, cache_path);
  hasher.will_read(paths);
  const std::string sha256 = hasher.listing_sha256(paths, nullptr);
  hasher.finish();
  return sha256;
}

}  // namespace medlab
