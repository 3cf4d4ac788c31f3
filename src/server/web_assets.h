// The web UI's files (src/server/web/), compiled into the binary so that the server needs nothing on disk.
#pragma once

#include <cstddef>
#include <span>

namespace medlab::server {

struct WebAsset {
  const char* path;  // where it is served: "/index.html", "/app.js", ...
  const char* content_type;
  const unsigned char* data;
  size_t size;
};

std::span<const WebAsset> web_assets();

}  // namespace medlab::server
