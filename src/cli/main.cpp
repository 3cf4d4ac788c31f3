// medlab: run MedGemma / Gemma 3 models locally. Research software, not for diagnosis.
#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "core/build_info.h"
#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{
      "medlab: runs MedGemma / Gemma 3 models on this machine's CPU.\n"
      "Research software: not a medical device, not for diagnosis."};
  app.require_subcommand(1);
  app.set_version_flag("--version", medlab::engine_name());
  medlab::cli::register_run(app);
  medlab::cli::register_tokenize(app);
  medlab::cli::register_convert(app);
  medlab::cli::register_make_test_model(app);
  medlab::cli::register_make_test_set(app);
  medlab::cli::register_dicom(app);
  medlab::cli::register_bench(app);
  medlab::cli::register_serve(app);
  medlab::cli::register_batch(app);
  medlab::cli::register_merge(app);
  medlab::cli::register_merge_lora(app);
  medlab::cli::register_verify(app);
  medlab::cli::register_env(app);
  medlab::cli::register_repro(app);
  medlab::cli::register_eval(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const medlab::Error& e) {
    std::fprintf(stderr, "medlab: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "medlab: internal error: %s\n", e.what());
    return 2;
  }
  return 0;
}
