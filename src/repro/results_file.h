// A JSON Lines results file that never loses work: each row is appended with one write and flushed to
// the disk before the next starts, so a crash (kill -9, power loss) costs at most the row being written.
// Reading it back drops a torn last row, so a resumed run redoes exactly the pairs without a whole row.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace medlab {

struct ResultRows {
  std::vector<nlohmann::json> rows;  // in file order
  bool torn_tail = false;            // the last line was incomplete (the writer was interrupted)
};

// Reads every complete row. A malformed line before the last is an error naming the file and line: the
// file is not ours, or was edited, and resuming into it could mix runs.
ResultRows read_result_rows(const std::filesystem::path& path);

// Writes `text` as the whole of `path` (a report, a manifest): beside it first, then renamed over it, so a
// crash never leaves half a file. Fails naming the file.
void write_text_file(const std::filesystem::path& path, std::string_view text);

class ResultsFile {
 public:
  // Opens for appending, creating it if needed. With `drop_torn_tail`, first cuts the file back to its
  // last complete line.
  ResultsFile(const std::filesystem::path& path, bool drop_torn_tail);
  ~ResultsFile();
  ResultsFile(const ResultsFile&) = delete;
  ResultsFile& operator=(const ResultsFile&) = delete;

  void append(const nlohmann::json& row);  // one line, written and fdatasync'ed; Error on failure

 private:
  std::filesystem::path path_;
  int fd_ = -1;
};

}  // namespace medlab
