#include "cli/commands.h"

namespace medlab::cli {

void register_merge(CLI::App&) {}

}  // namespace medlab::cli
