#include "cli/commands.h"

namespace medlab::cli {

void register_verify(CLI::App&) {}

}  // namespace medlab::cli
