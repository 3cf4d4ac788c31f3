#include "core/build_info.h"

#include "git_commit.h"

namespace medlab {

const BuildInfo& build_info() {
  static const BuildInfo info{MEDLAB_VERSION, MEDLAB_GIT_COMMIT, MEDLAB_COMPILER, MEDLAB_CXX_FLAGS, MEDLAB_BUILD_TYPE};
  return info;
}

std::string engine_name() {
  const BuildInfo& info = build_info();
  return "medlab " + info.version + " (commit " + info.git_commit.substr(0, 12) + ")";
}

}  // namespace medlab
