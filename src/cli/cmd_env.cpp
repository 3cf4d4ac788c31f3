#include "cli/commands.h"

namespace medlab::cli {

void register_env(CLI::App&) {}

}  // namespace medlab::cli
