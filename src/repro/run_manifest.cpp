#include "repro/run_manifest.h"

#include <charconv>
#include <cstdlib>
#include <ctime>

#include "core/build_info.h"

namespace medlab {

double json_setting(float value) {
  char text[32];
  const auto end = std::to_chars(text, text + sizeof text, value).ptr;
  return std::strtod(std::string(text, end).c_str(), nullptr);
}

std::string utc_timestamp() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

nlohmann::json manifest_json(const RunManifest& m) {
  const SamplerSettings& s = m.generation.sampler;
  nlohmann::json out = {{"engine", build_info().version},
                        {"commit", build_info().git_commit},
                        {"isa", m.isa},
                        {"precision", m.precision},
                        {"model_sha256", m.model_sha256},
                        {"seed", s.seed},
                        {"sampler",
                         {{"temperature", json_setting(s.temperature)},
                          {"top_k", s.top_k},
                          {"top_p", json_setting(s.top_p)},
                          {"min_p", json_setting(s.min_p)},
                          {"repetition_penalty", json_setting(s.repetition_penalty)}}},
                        {"max_new_tokens", m.generation.max_new_tokens},
                        {"stop", m.generation.stop_strings}};
  for (const AdapterHash& a : m.adapters)
    out["adapters"].push_back(
        {{"name", a.name}, {"sha256", a.sha256}, {"scale", json_setting(a.scale)}, {"merged", a.merged}});
  return out;
}

}  // namespace medlab
