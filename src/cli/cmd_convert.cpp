#include "cli/commands.h"

namespace medlab::cli {

void register_convert(CLI::App& app) {}

}  // namespace medlab::cli
