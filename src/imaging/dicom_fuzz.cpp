// Any bytes as an uploaded DICOM object: header, decoded pixels, pixel hash and a rendering of the first
// and last frame, or medlab::Error.
#include "core/error.h"
#include "fuzz_support.h"
#include "imaging/dicom_file.h"
#include "imaging/dicom_render.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace dicom = medlab::dicom;
  const std::span<const uint8_t> bytes(data, size);
  try {
    dicom::read_dicom_header(bytes, "upload.dcm");
  } catch (const medlab::Error&) {
  }
  try {
    dicom::ReadOptions options;
    options.max_pixel_bytes = 64 << 20;  // libFuzzer's memory limit, not the product's (4 GiB)
    const dicom::DicomImage image = dicom::read_dicom(bytes, "upload.dcm", options);
    dicom::pixel_hash(image);
    const uint32_t frames = image.header.frames;
    for (uint32_t frame : {0u, frames ? frames - 1 : 0u}) {
      const dicom::Rendered shown = dicom::render(image, dicom::parse_window(size % 3 ? "file" : "full"), frame);
      medlab::fuzz::require(shown.pixels.size() == size_t(shown.width) * shown.height * shown.channels,
                            "rendered bytes do not match the size");
    }
  } catch (const medlab::Error&) {
  }
  return 0;
}
