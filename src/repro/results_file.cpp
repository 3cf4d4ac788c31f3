#include "repro/results_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace medlab {

ResultRows read_result_rows(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path.string(), ": cannot open the results file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();

  ResultRows out;
  size_t start = 0, line = 0;
  while (start < text.size()) {
    ++line;
    const size_t end = text.find('\n', start);
    if (end == std::string::npos) {  // no newline: the writer died inside this row
      out.torn_tail = true;
      break;
    }
    const std::string_view row(text.data() + start, end - start);
    start = end + 1;
    if (row.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    auto j = nlohmann::json::parse(row, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("id") || !j["id"].is_string())
      fail(path.string(), ":", line, ": not a result row (a JSON object with an \"id\"); is this file from medlab batch?");
    out.rows.push_back(std::move(j));
  }
  return out;
}

void write_text_file(const std::filesystem::path& path, std::string_view text) {
  const std::filesystem::path temporary = path.string() + ".part";
  {
    std::ofstream out(temporary, std::ios::binary);
    out.write(text.data(), std::streamsize(text.size()));
    out.close();
    if (!out) fail(path.string(), ": cannot write");
  }
  std::error_code ec;
  std::filesystem::rename(temporary, path, ec);
  if (ec) fail(path.string(), ": cannot write: ", ec.message());
}

ResultsFile::ResultsFile(const std::filesystem::path& path, bool drop_torn_tail) : path_(path) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) fail(path.string(), ": cannot open for writing: ", std::strerror(errno));
  if (!drop_torn_tail) return;
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t keep = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
  if (keep < text.size() && ::ftruncate(fd_, off_t(keep)) != 0)
    fail(path.string(), ": cannot cut off the incomplete last row: ", std::strerror(errno));
}

ResultsFile::~ResultsFile() {
  if (fd_ >= 0) ::close(fd_);
}

void ResultsFile::append(const nlohmann::json& row) {
  const std::string line = row.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  size_t written = 0;
  while (written < line.size()) {
    const ssize_t n = ::write(fd_, line.data() + written, line.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail(path_.string(), ": cannot write a result row: ", std::strerror(errno));
    written += size_t(n);
  }
  if (::fdatasync(fd_) != 0) fail(path_.string(), ": cannot flush a result row to disk: ", std::strerror(errno));
}

}  // namespace medlab
