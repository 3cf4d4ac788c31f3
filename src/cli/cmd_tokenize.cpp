#include "cli/commands.h"

namespace medlab::cli {

void register_tokenize(CLI::App& app) {}

}  // namespace medlab::cli
