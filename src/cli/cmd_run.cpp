#include "cli/commands.h"

namespace medlab::cli {

void register_run(CLI::App& app) {}

}  // namespace medlab::cli
