#include "cli/commands.h"

namespace medlab::cli {

void register_dicom(CLI::App& app) {}

}  // namespace medlab::cli
