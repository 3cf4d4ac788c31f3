#include "cli/commands.h"

namespace medlab::cli {

void register_make_test_model(CLI::App& app) {}

}  // namespace medlab::cli
