// medlab make-test-set: writes a folder of synthetic chest films (DICOM) with reference reports in
// annotations.jsonl, the layout medlab batch --manifest and medlab eval --references read.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/command_support.h"
#include "cli/commands.h"
#include "core/error.h"
#include "imaging/synthetic_chest.h"
#include "imaging/synthetic_chest_dicom.h"

namespace medlab::cli {
namespace {

struct Options {
  std::string out;
  int per_category = 4;
  uint64_t seed = 1;
  int size = 512;
  bool force = false;
};

constexpr const char* kPrompt = "Describe the findings in this chest X-ray.";

void run(const Options& o) {
  namespace fs = std::filesystem;
  check_output_folder(o.out, o.force);
  std::error_code ec;
  if (o.size < 128 || o.size > 4096) fail("--size ", o.size, ": must be 128..4096 pixels");
  const std::vector<TestCase> cases = make_test_cases(o.per_category, o.seed, o.size);
  const fs::path images = fs::path(o.out) / "images";
  fs::create_directories(images, ec);
  if (ec) fail("--out ", o.out, ": cannot create ", images.string(), ": ", ec.message());

  const fs::path manifest = fs::path(o.out) / "annotations.jsonl";
  std::ofstream lines(manifest, std::ios::binary);
  if (!lines) fail(manifest.string(), ": cannot write");
  int number = 0;
  for (const TestCase& c : cases) {
    ++number;
    const std::string file = "images/" + c.id + ".dcm";
    write_synthetic_chest_dicom((fs::path(o.out) / file).string(), render_chest_film(c.spec), c, o.seed, number);
    const nlohmann::ordered_json line = {{"id", c.id}, {"file", file}, {"prompt", kPrompt},
                                         {"references", c.references}, {"category", c.category}};
    lines << line.dump() << "\n";
  }
  lines.close();
  if (!lines) fail(manifest.string(), ": write failed");
  std::printf("wrote %d synthetic chest films (%d per category, seed %llu, %d px) and annotations.jsonl to %s\n",
              number, o.per_category, static_cast<unsigned long long>(o.seed), o.size, o.out.c_str());
  std::printf("note: these are SYNTHETIC TEST IMAGES drawn in code, not anatomy and not patient data; they check\n"
              "      that a pipeline runs and scores, not how well a model reads real chest films.\n");
}

}  // namespace

void register_make_test_set(CLI::App& app) {
  auto options = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "make-test-set",
      "Write a small synthetic test set: chest-film sketches as DICOM (DX, 12-bit) with reference reports in\n"
      "annotations.jsonl (id, file, prompt, references, category), for tests and the demo. Categories:\n"
      "cardiac silhouette overlap, rib fracture, pneumothorax vs skin fold, metal implants, paediatric.\n"
      "The images are drawn in code: NOT anatomy, NOT patient data. The same flags write the same bytes.");
  cmd->add_option("--out", options->out, "Folder to write (images/*.dcm and annotations.jsonl)")->required();
  cmd->add_option("--per-category", options->per_category, "Cases per category")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  cmd->add_option("--seed", options->seed, "Seed; the same seed gives the same files")->capture_default_str();
  cmd->add_option("--size", options->size, "Width and height of the films in pixels (128..4096)")->capture_default_str();
  cmd->add_flag("--force", options->force, "Write into --out even if it is not empty");
  cmd->callback([options] { run(*options); });
}

}  // namespace medlab::cli
