#include "repro/weights_lock.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <initializer_list>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <tuple>

#include <nlohmann/json.hpp>

#include "core/build_info.h"
#include "core/error.h"
#include "repro/run_manifest.h"

namespace medlab {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Reads one lock, naming the file and the field at fault in every error.
struct LockReader {
  std::string source;

  [[noreturn]] void bad(const std::string& field, const std::string& problem) const {
    fail(source, ": field ", field, " ", problem);
  }
  const json& get(const json& object, const std::string& where, const std::string& key) const {
    if (!object.contains(key)) bad(where + key, "missing");
    return object[key];
  }
  void only(const json& object, const std::string& where, std::initializer_list<std::string> keys) const {
    const std::set<std::string> known(keys);
    for (const auto& [key, value] : object.items())
      if (!known.count(key)) bad(where + key, "is not part of " + std::string(kWeightsLockFormat));
  }
  const json& object(const json& parent, const std::string& where, const std::string& key) const {
    const json& value = get(parent, where, key);
    if (!value.is_object()) bad(where + key, "must be an object");
    return value;
  }
  std::string string(const json& parent, const std::string& where, const std::string& key) const {
    const json& value = get(parent, where, key);
    if (!value.is_string()) bad(where + key, "must be a string");
    return value.get<std::string>();
  }
  std::string sha256(const json& parent, const std::string& where, const std::string& key) const {
    const std::string text = string(parent, where, key);
    if (!std::regex_match(text, std::regex("[0-9a-f]{64}"))) bad(where + key, "must be 64 lower-case hex digits");
    return text;
  }
};

std::string file_name(const std::string& path, const fs::path& model_dir) {
  const fs::path relative = fs::path(path).lexically_relative(model_dir);
  if (relative.empty() || *relative.begin() == "..") return fs::path(path).filename().string();
  return relative.generic_string();
}

std::string short_ids(const std::vector<TokenId>& ids) { return "[" + joined_ids(ids) + "]"; }

// "scale 0.5, merged"
std::string applied_text(const AdapterHash& a) {
  char scale[32];
  const auto end = std::to_chars(scale, scale + sizeof scale, a.scale).ptr;
  return "scale " + std::string(scale, end) + ", " + (a.merged ? "merged" : "runtime");
}

// "chest-lora <sha256> (scale 0.5, merged)"
std::string adapter_text(const AdapterHash& a) { return a.name + " " + a.sha256 + " (" + applied_text(a) + ")"; }

std::vector<AdapterHash> parse_adapters(const json& adapters, const LockReader& r) {
  if (!adapters.is_array() || adapters.empty()) r.bad("adapters", "must be a non-empty array (or absent: no adapters)");
  std::vector<AdapterHash> parsed;
  for (size_t i = 0; i < adapters.size(); ++i) {
    const std::string where = "adapters[" + std::to_string(i) + "].";
    if (!adapters[i].is_object()) r.bad("adapters[" + std::to_string(i) + "]", "must be an object");
    r.only(adapters[i], where, {"name", "sha256", "scale", "merged"});
    AdapterHash a;
    a.name = r.string(adapters[i], where, "name");
    if (a.name.empty()) r.bad(where + "name", "is empty");
    a.sha256 = r.sha256(adapters[i], where, "sha256");
    const json& scale = r.get(adapters[i], where, "scale");
    if (!scale.is_number() || !std::isfinite(scale.get<double>())) r.bad(where + "scale", "must be a number");
    a.scale = scale.get<float>();
    const json& merged = r.get(adapters[i], where, "merged");
    if (!merged.is_boolean()) r.bad(where + "merged", "must be true or false");
    a.merged = merged.get<bool>();
    parsed.push_back(std::move(a));
  }
  return parsed;
}

}  // namespace

WeightsLock make_lock(const WeightHashes& hashes, const fs::path& model_dir, const Fingerprint& fingerprint,
                      double tolerance) {
  WeightsLock lock;
  lock.engine_version = build_info().version;
  lock.model_sha256 = hashes.model_sha256;
  for (const WeightFileHash& file : hashes.files) lock.files.push_back({file_name(file.path, model_dir), file.size, file.sha256});
  lock.adapters = hashes.adapters;
  lock.fingerprint = fingerprint;
  lock.tolerance = tolerance;
  return lock;
}

std::string lock_text(const WeightsLock& lock) {
  nlohmann::ordered_json files = nlohmann::ordered_json::array();
  for (const LockedFile& f : lock.files) files.push_back({{"name", f.name}, {"size", f.size}, {"sha256", f.sha256}});
  const Fingerprint& fp = lock.fingerprint;
  nlohmann::ordered_json out = {
      {"format", kWeightsLockFormat},
      {"engine_version", lock.engine_version},
      {"model_sha256", lock.model_sha256},
      {"files", files},
  };
  for (const AdapterHash& a : lock.adapters)
    out["adapters"].push_back(
        {{"name", a.name}, {"sha256", a.sha256}, {"scale", json_setting(a.scale)}, {"merged", a.merged}});
  out["fingerprint"] = {{"prompt", fp.prompt},
                        {"image", fp.image},
                        {"top3_logit_l2", six_decimals(fp.top3_logit_l2)},
                        {"top20_ids", fp.top20_ids},
                        {"top20_ids_sha256", fp.top20_ids_sha256},
                        {"tolerance", lock.tolerance}};
  return out.dump(2) + "\n";
}

WeightsLock parse_lock(const std::string& text, const std::string& source) {
  const json root = json::parse(text, nullptr, false);
  if (root.is_discarded()) fail(source, ": not valid JSON (a weights.lock is written by medlab verify --write-lock)");
  if (!root.is_object()) fail(source, ": expected a JSON object");
  const LockReader r{source};
  const std::string format = r.string(root, "", "format");
  if (format != kWeightsLockFormat)
    fail(source, ": format \"", format, "\" is not ", kWeightsLockFormat, " (a lock from another version of medlab?)");
  r.only(root, "", {"format", "engine_version", "model_sha256", "files", "adapters", "fingerprint"});

  WeightsLock lock;
  lock.engine_version = r.string(root, "", "engine_version");
  lock.model_sha256 = r.sha256(root, "", "model_sha256");
  const json& files = r.get(root, "", "files");
  if (!files.is_array() || files.empty()) r.bad("files", "must be a non-empty array");
  std::set<std::string> names;
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string where = "files[" + std::to_string(i) + "].";
    if (!files[i].is_object()) r.bad("files[" + std::to_string(i) + "]", "must be an object");
    r.only(files[i], where, {"name", "size", "sha256"});
    LockedFile f;
    f.name = r.string(files[i], where, "name");
    if (f.name.empty()) r.bad(where + "name", "is empty");
    if (!names.insert(f.name).second) r.bad(where + "name", "repeats \"" + f.name + "\"");
    const json& size = r.get(files[i], where, "size");
    if (!size.is_number_unsigned()) r.bad(where + "size", "must be a non-negative integer");
    f.size = size.get<uint64_t>();
    f.sha256 = r.sha256(files[i], where, "sha256");
    lock.files.push_back(std::move(f));
  }
  if (root.contains("adapters")) lock.adapters = parse_adapters(root["adapters"], r);

  const json& fp = r.object(root, "", "fingerprint");
  const std::string where = "fingerprint.";
  r.only(fp, where, {"prompt", "image", "top3_logit_l2", "top20_ids", "top20_ids_sha256", "tolerance"});
  Fingerprint& f = lock.fingerprint;
  f.prompt = r.string(fp, where, "prompt");
  f.image = r.string(fp, where, "image");
  const std::string l2 = r.string(fp, where, "top3_logit_l2");
  if (!std::regex_match(l2, std::regex("[0-9]+\\.[0-9]{6}")))
    r.bad(where + "top3_logit_l2", "must be a number with 6 decimals in a string, as \"12.345678\"");
  f.top3_logit_l2 = std::stod(l2);
  const json& ids = r.get(fp, where, "top20_ids");
  if (!ids.is_array() || ids.empty() || ids.size() > 20) r.bad(where + "top20_ids", "must be an array of 1 to 20 token ids");
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!ids[i].is_number_unsigned() || ids[i].get<uint64_t>() > uint64_t(INT32_MAX))
      r.bad(where + "top20_ids[" + std::to_string(i) + "]", "must be a token id (a non-negative integer)");
    f.top20_ids.push_back(TokenId(ids[i].get<uint64_t>()));
  }
  f.top20_ids_sha256 = r.sha256(fp, where, "top20_ids_sha256");
  if (f.top20_ids_sha256 != ids_sha256(f.top20_ids))
    r.bad(where + "top20_ids_sha256", "does not match top20_ids (the lock was edited by hand?)");
  const json& tolerance = r.get(fp, where, "tolerance");
  if (!tolerance.is_number() || !(tolerance.get<double>() > 0) || !std::isfinite(tolerance.get<double>()))
    r.bad(where + "tolerance", "must be a positive number");
  lock.tolerance = tolerance.get<double>();
  return lock;
}

WeightsLock read_lock(const fs::path& path) {
  std::error_code error;
  if (!fs::exists(path, error))
    fail(path.string(), ": no such lock file; write one from a model you trust with "
                        "`medlab verify --model M --write-lock ", path.string(), "`");
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in || in.bad()) fail(path.string(), ": cannot read the lock file");
  return parse_lock(text.str(), path.string());
}

void write_lock(const WeightsLock& lock, const fs::path& path) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << lock_text(lock);
  out.close();
  if (!out) fail(path.string(), ": cannot write the lock file");
}

std::vector<LockCheck> compare_lock(const WeightsLock& locked, const WeightsLock& found, double tolerance) {
  std::vector<LockCheck> checks;
  std::map<std::string, const LockedFile*> found_files;
  for (const LockedFile& f : found.files) found_files[f.name] = &f;
  std::set<std::string> locked_names;
  for (const LockedFile& l : locked.files) {
    locked_names.insert(l.name);
    const auto it = found_files.find(l.name);
    if (it == found_files.end()) {
      checks.push_back({"file " + l.name, false, "MISSING: in the lock, not among the model's weight files"});
      continue;
    }
    const LockedFile& f = *it->second;
    if (f.sha256 == l.sha256 && f.size == l.size)
      checks.push_back({"sha256 " + l.name, true, ""});
    else
      checks.push_back({"sha256 " + l.name, false,
                        "MISMATCH expected " + l.sha256 + " (" + std::to_string(l.size) + " bytes) found " + f.sha256 + " (" +
                            std::to_string(f.size) + " bytes)"});
  }
  for (const LockedFile& f : found.files)
    if (!locked_names.count(f.name)) checks.push_back({"file " + f.name, false, "EXTRA: a weight file of the model, not in the lock"});
  checks.push_back({"model_sha256", locked.model_sha256 == found.model_sha256,
                    locked.model_sha256 == found.model_sha256
                        ? ""
                        : "MISMATCH expected " + locked.model_sha256 + " found " + found.model_sha256});
  // Adapters in the order they were applied: the same files, scale and way of applying them.
  for (size_t i = 0; i < std::max(locked.adapters.size(), found.adapters.size()); ++i) {
    if (i >= found.adapters.size()) {
      checks.push_back({"adapter " + locked.adapters[i].name, false,
                        "MISSING: in the lock, not applied to the model (pass its folder with --lora)"});
    } else if (i >= locked.adapters.size()) {
      checks.push_back({"adapter " + found.adapters[i].name, false, "EXTRA: applied to the model, not in the lock"});
    } else {
      const AdapterHash &l = locked.adapters[i], &f = found.adapters[i];
      const bool same = l.sha256 == f.sha256 && l.scale == f.scale && l.merged == f.merged;
      checks.push_back({"adapter " + l.name + " sha256", same,
                        same ? applied_text(f) : "MISMATCH expected " + adapter_text(l) + " found " + adapter_text(f)});
    }
  }

  const Fingerprint& l = locked.fingerprint;
  const Fingerprint& f = found.fingerprint;
  for (const auto& [field, expected, actual] : {std::tuple{"prompt", l.prompt, f.prompt}, std::tuple{"image", l.image, f.image}})
    checks.push_back({std::string("fingerprint ") + field, expected == actual,
                      expected == actual ? "" : "MISMATCH expected \"" + expected + "\" found \"" + actual + "\""});

  // Both sides as the lock writes them, so the figures printed are the figures compared.
  const double expected_l2 = l.top3_logit_l2, found_l2 = std::stod(six_decimals(f.top3_logit_l2));
  const double relative = expected_l2 == found_l2 ? 0.0 : std::abs(found_l2 - expected_l2) / std::abs(expected_l2);
  char figures[160];
  std::snprintf(figures, sizeof figures, "relative difference %.2e, tolerance %.0e", relative, tolerance);
  const bool l2_ok = relative <= tolerance;
  checks.push_back({"fingerprint top3_logit_l2", l2_ok,
                    l2_ok ? six_decimals(found_l2) + ", " + figures
                          : "MISMATCH expected " + six_decimals(expected_l2) + " found " + six_decimals(found_l2) + " (" +
                                figures + ")"});

  if (l.top20_ids == f.top20_ids) {
    checks.push_back({"fingerprint top20_ids", true, f.top20_ids_sha256.substr(0, 16)});
  } else {
    size_t rank = 0;
    while (rank < l.top20_ids.size() && rank < f.top20_ids.size() && l.top20_ids[rank] == f.top20_ids[rank]) ++rank;
    checks.push_back({"fingerprint top20_ids", false,
                      "MISMATCH expected sha256 " + l.top20_ids_sha256 + " " + short_ids(l.top20_ids) + " found sha256 " +
                          f.top20_ids_sha256 + " " + short_ids(f.top20_ids) + ", first difference at rank " +
                          std::to_string(rank + 1)});
  }
  return checks;
}

std::vector<std::string> lock_differences(const std::vector<LockCheck>& checks) {
  std::vector<std::string> lines;
  for (const LockCheck& c : checks)
    if (!c.ok) lines.push_back(c.subject + ": " + c.detail);
  return lines;
}

}  // namespace medlab
