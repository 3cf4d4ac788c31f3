// The work of a batch run: one (image, question) pair per item, listed in a fixed order from a folder of
// images or a manifest, so that every run, resume and shard of the same inputs agrees on each pair's
// index and id.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace medlab {

struct WorkItem {
  size_t index = 0;        // position in the whole run's list (before sharding)
  std::string id;          // "<image id>#<question number>", unique in the run
  std::string image_id;    // manifest "id", or the file's path relative to the --images folder (bytes that
                           // are not UTF-8, and '%', as %XX)
  std::string file;        // the image's path; empty for a text-only question
  std::string question;
  std::string window;      // a manifest row's DICOM window; empty: the run's --window
  std::string error;       // a manifest line that could not be read: the pair becomes an error row
};

// --shard I/N: this process takes the pairs whose index % N == I (I counts from 0, as Slurm array and
// Kubernetes Indexed Job indices can).
struct Shard {
  size_t index = 0, count = 1;
  std::string text() const { return std::to_string(index) + "/" + std::to_string(count); }
};
Shard parse_shard(std::string_view text);

// Questions from a file: one per line; blank lines and lines starting with '#' are skipped.
std::vector<std::string> read_questions(const std::filesystem::path& path);

// Every image file under `dir` (PNG, JPEG and DICOM by name: .png .jpg .jpeg .dcm .dicom or no extension;
// hidden files skipped), in byte order of their relative paths, each paired with every question in turn.
// `skipped` counts the other files.
std::vector<WorkItem> work_from_folder(const std::filesystem::path& dir, const std::vector<std::string>& questions,
                                       size_t& skipped);

// A manifest: JSON Lines ({"file"?, "id"?, "question"?, "window"?} per line) or CSV with a header naming
// the same columns; a row without a file is a text-only question (its id is then required). Relative file paths are taken from the manifest's folder. A row's own question is
// used when `questions` is empty; a line that cannot be read becomes a pair carrying its error.
std::vector<WorkItem> work_from_manifest(const std::filesystem::path& path, const std::vector<std::string>& questions);

std::vector<WorkItem> shard_work(const std::vector<WorkItem>& all, const Shard& shard);

}  // namespace medlab
