// A small PNG writer for 8-bit grey or RGB images (libpng's simplified API).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace medlab {

// Writes `pixels` (rows top to bottom, `channels` 1 or 3 interleaved bytes per pixel) to `path`.
void write_png(const std::string& path, uint32_t width, uint32_t height, uint32_t channels, const uint8_t* pixels);
// The same PNG file, in memory (what the server sends).
std::vector<uint8_t> encode_png(uint32_t width, uint32_t height, uint32_t channels, const uint8_t* pixels);

}  // namespace medlab
