// The run manifest: its fields, settings written as given, and "adapters" present only when the model has some
// (manifests of plain models, which batch --resume compares, keep their bytes).
#include <gtest/gtest.h>

#include <string>

#include "repro/run_manifest.h"

namespace medlab {
namespace {

RunManifest sample_manifest() {
  RunManifest m;
  m.model_sha256 = std::string(64, 'a');
  m.isa = "avx2";
  m.precision = "fast";
  m.generation.sampler.temperature = 0.8f;
  m.generation.sampler.seed = 7;
  m.generation.max_new_tokens = 32;
  return m;
}

TEST(RunManifest, PlainModelHasNoAdapters) {
  const nlohmann::json j = manifest_json(sample_manifest());
  EXPECT_FALSE(j.contains("adapters")) << j.dump();
  EXPECT_EQ(j.size(), 9u) << j.dump();  // engine, commit, isa, precision, model_sha256, seed, sampler, max_new_tokens, stop
  EXPECT_EQ(j["sampler"]["temperature"].dump(), "0.8");
  EXPECT_EQ(j["seed"], 7);
}

TEST(RunManifest, AdaptersInTheOrderApplied) {
  RunManifest m = sample_manifest();
  m.adapters = {{"chest-lora", std::string(64, 'b'), 1.0f, false}, {"style", std::string(64, 'c'), 0.1f, true}};
  const nlohmann::json j = manifest_json(m);
  ASSERT_TRUE(j.contains("adapters"));
  EXPECT_EQ(j["adapters"].dump(),
            "[{\"merged\":false,\"name\":\"chest-lora\",\"scale\":1.0,\"sha256\":\"" + std::string(64, 'b') +
                "\"},{\"merged\":true,\"name\":\"style\",\"scale\":0.1,\"sha256\":\"" + std::string(64, 'c') + "\"}]");
  nlohmann::json without = j;
  without.erase("adapters");
  EXPECT_EQ(without, manifest_json(sample_manifest()));  // the rest as for the plain model
}

}  // namespace
}  // namespace medlab
