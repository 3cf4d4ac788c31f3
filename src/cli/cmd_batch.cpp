#include "cli/commands.h"

namespace medlab::cli {

void register_batch(CLI::App&) {}

}  // namespace medlab::cli
