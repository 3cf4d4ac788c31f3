#include "repro/batch_work.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace medlab {
namespace fs = std::filesystem;
namespace {

bool looks_like_image(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return ext.empty() || ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".dcm" || ext == ".dicom";
}

bool hidden(const fs::path& relative) {
  for (const fs::path& part : relative)
    if (part.string().starts_with(".")) return true;
  return false;
}

// Length of the valid UTF-8 sequence at text[i], or 0 if the bytes there are not one.
size_t utf8_length(std::string_view text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  const size_t n = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3 : (lead >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > text.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
  return n;
}

// A file's relative path as an id that survives the trip through a JSON results file: bytes that are not
// UTF-8 (and '%') written as %XX, so that a resumed run finds the same id again.
std::string path_id(std::string_view path) {
  std::string id;
  for (size_t i = 0; i < path.size();) {
    const size_t n = path[i] == '%' ? 0 : utf8_length(path, i);
    if (n > 0) {
      id.append(path.substr(i, n));
      i += n;
    } else {
      char escaped[4];
      std::snprintf(escaped, sizeof escaped, "%%%02X", static_cast<unsigned char>(path[i++]));
      id += escaped;
    }
  }
  return id;
}

// One manifest row before it is paired with questions.
struct ManifestRow {
  size_t line = 0;
  std::string id, file, question, window, error;
};

void add_pairs(std::vector<WorkItem>& work, const ManifestRow& row, const std::vector<std::string>& questions) {
  const std::vector<std::string>& asked = questions.empty() && !row.question.empty()
                                              ? std::vector<std::string>{row.question}
                                              : questions;
  std::string error = row.error;
  if (error.empty() && asked.empty()) error = "no question: give --question or --questions, or a \"question\" column";
  if (!error.empty()) {
    work.push_back({work.size(), row.id + "#1", row.id, row.file, "", row.window, error});
    return;
  }
  for (size_t q = 0; q < asked.size(); ++q)
    work.push_back({work.size(), row.id + "#" + std::to_string(q + 1), row.id, row.file, asked[q], row.window, ""});
}

std::optional<std::string> string_field(const nlohmann::json& j, const char* name) {
  if (!j.contains(name)) return std::nullopt;
  if (!j[name].is_string()) throw std::invalid_argument(std::string("field \"") + name + "\" must be a string");
  return j[name].get<std::string>();
}

ManifestRow json_row(const std::string& text, size_t line) {
  ManifestRow row{line};
  try {
    const auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw std::invalid_argument("not a JSON object");
    row.file = string_field(j, "file").value_or("");
    row.id = string_field(j, "id").value_or(row.file);
    if (row.id.empty()) throw std::invalid_argument("a row needs a \"file\" (an image) or an \"id\" (a text-only question)");
    row.question = string_field(j, "question").value_or(string_field(j, "prompt").value_or(""));
    row.window = string_field(j, "window").value_or("");
  } catch (const std::exception& e) {
    row.error = e.what();
  }
  return row;
}

// RFC 4180 fields: commas, double quotes around fields, "" for a quote inside one.
std::optional<std::vector<std::string>> csv_fields(const std::string& line) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') fields.back() += '"', ++i;
      else if (c == '"') quoted = false;
      else fields.back() += c;
    } else if (c == '"' && fields.back().empty()) {
      quoted = true;
    } else if (c == ',') {
      fields.emplace_back();
    } else if (c != '\r') {
      fields.back() += c;
    }
  }
  if (quoted) return std::nullopt;
  return fields;
}

}  // namespace

Shard parse_shard(std::string_view text) {
  const size_t slash = text.find('/');
  Shard shard;
  const auto parse = [&](std::string_view part, size_t& value) {
    const auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), value);
    return ec == std::errc() && end == part.data() + part.size() && !part.empty();
  };
  if (slash == std::string_view::npos || !parse(text.substr(0, slash), shard.index) ||
      !parse(text.substr(slash + 1), shard.count) || shard.count == 0 || shard.index >= shard.count)
    fail("--shard ", text, ": expected I/N with 0 <= I < N (e.g. 0/4 for the first of four shards)");
  return shard;
}

std::vector<std::string> read_questions(const fs::path& path) {
  std::ifstream in(path);
  if (!in) fail(path.string(), ": cannot open the questions file");
  std::vector<std::string> questions;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (questions.empty() && line.starts_with("\xEF\xBB\xBF")) line.erase(0, 3);  // a byte-order mark
    if (line.find_first_not_of(" \t") == std::string::npos || line.starts_with("#")) continue;
    questions.push_back(line);
  }
  if (questions.empty()) fail(path.string(), ": no questions in the file (one per line)");
  return questions;
}

std::vector<WorkItem> work_from_folder(const fs::path& dir, const std::vector<std::string>& questions, size_t& skipped) {
  if (!fs::is_directory(dir)) fail(dir.string(), ": not a folder");
  if (questions.empty()) fail("batch: --images needs --question or --questions");
  std::vector<std::string> files;
  skipped = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const fs::path relative = it->path().lexically_relative(dir);
    if (hidden(relative)) continue;
    if (!it->is_regular_file(ec)) continue;
    if (looks_like_image(relative)) files.push_back(relative.generic_string());
    else ++skipped;
  }
  if (ec) fail(dir.string(), ": cannot list the folder: ", ec.message());
  std::sort(files.begin(), files.end());
  std::vector<WorkItem> work;
  for (const std::string& file : files)
    add_pairs(work, {0, path_id(file), (dir / file).string(), "", "", ""}, questions);
  return work;
}

std::vector<WorkItem> work_from_manifest(const fs::path& path, const std::vector<std::string>& questions) {
  std::ifstream in(path);
  if (!in) fail(path.string(), ": cannot open the manifest");
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  const bool csv = ext == ".csv";
  if (!csv && ext != ".jsonl" && ext != ".json") fail(path.string(), ": a manifest is .jsonl (JSON Lines) or .csv");

  std::vector<ManifestRow> rows;
  std::map<std::string, std::string> columns;  // CSV: column name -> index as text
  std::vector<std::string> header;
  size_t line_number = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_number;
    if (line_number == 1 && line.starts_with("\xEF\xBB\xBF")) line.erase(0, 3);  // Excel's "CSV UTF-8" byte-order mark
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    if (!csv) {
      rows.push_back(json_row(line, line_number));
      continue;
    }
    const auto fields = csv_fields(line);
    if (header.empty()) {
      if (!fields) fail(path.string(), ":", line_number, ": the header has an unclosed quote");
      header = *fields;
      if (std::find(header.begin(), header.end(), "file") == header.end() && std::find(header.begin(), header.end(), "id") == header.end())
        fail(path.string(), ":", line_number, ": the header names neither a \"file\" nor an \"id\" column (columns: file, id, question, window)");
      continue;
    }
    ManifestRow row{line_number};
    if (!fields || fields->size() != header.size()) {
      row.error = "expected " + std::to_string(header.size()) + " comma-separated fields";
    } else {
      for (size_t i = 0; i < header.size(); ++i) {
        const std::string& value = (*fields)[i];
        if (header[i] == "file") row.file = value;
        else if (header[i] == "id") row.id = value;
        else if (header[i] == "question" || header[i] == "prompt") row.question = value;
        else if (header[i] == "window") row.window = value;
      }
      if (row.id.empty()) row.id = row.file;
      if (row.id.empty()) row.error = "a row needs a file (an image) or an id (a text-only question)";
    }
    rows.push_back(row);
  }
  if (rows.empty()) fail(path.string(), ": the manifest lists no images");

  std::map<std::string, size_t> seen;
  std::vector<WorkItem> work;
  for (ManifestRow& row : rows) {
    if (!row.error.empty()) {
      row.error = path.filename().string() + ":" + std::to_string(row.line) + ": " + row.error;
      row.id = "line-" + std::to_string(row.line);
    } else {
      if (auto [it, fresh] = seen.emplace(row.id, row.line); !fresh)
        fail(path.string(), ":", row.line, ": id \"", row.id, "\" was already used on line ", it->second, "; ids must be unique");
      if (!row.file.empty() && fs::path(row.file).is_relative()) row.file = (path.parent_path() / row.file).string();
    }
    add_pairs(work, row, questions);
  }
  return work;
}

std::vector<WorkItem> shard_work(const std::vector<WorkItem>& all, const Shard& shard) {
  std::vector<WorkItem> mine;
  for (const WorkItem& item : all)
    if (item.index % shard.count == shard.index) mine.push_back(item);
  return mine;
}

}  // namespace medlab
