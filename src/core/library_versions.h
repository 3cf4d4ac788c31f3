// Versions of the libraries medlab links. Each layer reports the libraries it links itself, so that the
// environment report gathers them without including every library's headers above that layer.
#pragma once

#include <map>
#include <string>

namespace medlab {

using LibraryVersions = std::map<std::string, std::string>;  // library name -> version

// The version a library reports at run time; when the headers medlab was compiled against name another,
// both ("1.6.40 (headers 1.6.39)"), so that a shared library swapped under the binary shows.
std::string loaded_version(const std::string& loaded, const std::string& headers);

// OpenSSL's libcrypto (SHA-256).
LibraryVersions core_library_versions();

}  // namespace medlab
