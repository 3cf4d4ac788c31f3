#include "repro/run_manifest.h"

#include "core/build_info.h"

namespace medlab {

nlohmann::json manifest_json(const RunManifest& m) {
  const SamplerSettings& s = m.generation.sampler;
  return {{"engine", build_info().version},
          {"commit", build_info().git_commit},
          {"isa", m.isa},
          {"precision", m.precision},
          {"model_sha256", m.model_sha256},
          {"seed", s.seed},
          {"sampler",
           {{"temperature", s.temperature}, {"top_k", s.top_k}, {"top_p", s.top_p}, {"min_p", s.min_p},
            {"repetition_penalty", s.repetition_penalty}}},
          {"max_new_tokens", m.generation.max_new_tokens},
          {"stop", m.generation.stop_strings}};
}

}  // namespace medlab
