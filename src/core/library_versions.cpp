#include "core/library_versions.h"

#include <openssl/crypto.h>
#include <openssl/opensslv.h>

namespace medlab {

std::string loaded_version(const std::string& loaded, const std::string& headers) {
  return loaded == headers ? loaded : loaded + " (headers " + headers + ")";
}

LibraryVersions core_library_versions() {
  return {{"OpenSSL", loaded_version(OpenSSL_version(OPENSSL_VERSION_STRING), OPENSSL_VERSION_STR)}};
}

}  // namespace medlab
