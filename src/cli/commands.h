// Each subcommand registers its flags and its action on the top-level app.
#pragma once

#include <CLI/CLI.hpp>

namespace medlab::cli {

void register_run(CLI::App& app);
void register_tokenize(CLI::App& app);
void register_convert(CLI::App& app);
void register_make_test_model(CLI::App& app);
void register_make_test_set(CLI::App& app);
void register_dicom(CLI::App& app);
void register_bench(CLI::App& app);
void register_serve(CLI::App& app);
void register_batch(CLI::App& app);
void register_merge(CLI::App& app);
void register_merge_lora(CLI::App& app);
void register_verify(CLI::App& app);
void register_env(CLI::App& app);
void register_repro(CLI::App& app);
void register_eval(CLI::App& app);

}  // namespace medlab::cli
