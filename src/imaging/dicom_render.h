// DICOM pixel pipeline (PS3.3 C.11): stored values -> Modality LUT -> VOI -> MONOCHROME1 inversion -> 8 bits;
// colour images (RGB, YBR_FULL, YBR_FULL_422, PALETTE COLOR) -> 8-bit RGB. Also MedGemma's conventions:
//
//  ct-rgb: MedGemma 1.5's CT encoding, from the CT notebook (Google-Health/medgemma,
//    notebooks/high_dimensional_ct_hugging_face.ipynb) and the technical report: Hounsfield units clipped to
//    three windows, one per channel, each scaled to 0..255 in float32 and rounded half to even:
//    R -1024..1024 (wide), G -135..215 (soft tissue), B 0..80 (brain). The official serving handler
//    (python/data_accessors/local_file_handlers/generic_dicom_handler.py) differs on G: its RGBWindow uses
//    centre 175 width 80, i.e. 135..215, and rounds HU to integers first. We follow the notebook.
//  cxr: the official handler's chest-film order: Modality LUT; the file's first window if it has one
//    (clipped to centre -+ floor(width/2), scaled to 0..255, rounded); otherwise modality values truncated to
//    the stored type and stretched from their min..max to 0..255 (8-bit unsigned images are left as they are);
//    MONOCHROME1 inverted last. The handler stretches to 16 bits; we stretch straight to 8.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "imaging/dicom_file.h"

namespace medlab::dicom {

enum class WindowMode {
  file,        // the file's VOI: its first VOI LUT, else its first window, else the full range
  file_window, // the file's window number `index`
  file_lut,    // the file's VOI LUT number `index`
  custom,      // `center`/`width` (a named preset or C,W)
  full_range,  // min..max of the modality output
  ct_rgb,
  cxr,
};

struct WindowSpec {
  WindowMode mode = WindowMode::file;
  size_t index = 0;  // 0-based
  double center = 0.0;
  double width = 0.0;
  VoiFunction function = VoiFunction::linear;
  std::string name;  // preset name, for descriptions
};

// Window presets for CT (Hounsfield units), LINEAR function.
struct Preset {
  const char* name;
  double center;
  double width;
};
std::span<const Preset> window_presets();

// Parses --window: file | file:N | lut:N | full | ct-rgb | cxr | a preset name | C,W[,LINEAR|LINEAR_EXACT|SIGMOID].
// N counts from 1 as a person would.
WindowSpec parse_window(const std::string& text);

// The VOI functions of C.11.2.1.2, mapping x to 0..1 (the output range, scaled).
double voi_fraction(double x, double center, double width, VoiFunction function);

// Modality LUT output for one frame of a greyscale image (C.11.1): LUT, or rescale, or identity.
std::vector<double> modality_values(const DicomImage& image, uint32_t frame);

struct Rendered {
  uint32_t width = 0;
  uint32_t height = 0;
  uint32_t channels = 1;  // 1 grey or 3 RGB
  std::vector<uint8_t> pixels;
  std::string description;  // what was applied, e.g. "window C40 W400 LINEAR (file window 1)"
};

// Renders frame `frame` (0-based; the first by default) to 8 bits.
Rendered render(const DicomImage& image, const WindowSpec& window, uint32_t frame = 0);

}  // namespace medlab::dicom
