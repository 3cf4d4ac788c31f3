// Any bytes as an uploaded PNG or JPEG: an RGB image of the size its header gives, or medlab::Error.
#include "core/error.h"
#include "fuzz_support.h"
#include "imaging/decode.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  const auto dimensions = medlab::image_dimensions(bytes);
  medlab::DecodeOptions options;
  options.max_pixels = 4'000'000;  // libFuzzer's memory limit, not the product's (100 million)
  options.grey16 = size % 2 ? medlab::Grey16Mode::ClipLikePillow : medlab::Grey16Mode::FullRange;
  try {
    const medlab::Image image = medlab::decode_image(bytes, options, "upload");
    medlab::fuzz::require(image.width > 0 && image.height > 0, "an empty image was decoded");
    medlab::fuzz::require(image.rgb.size() == size_t(image.width) * size_t(image.height) * 3, "RGB bytes do not match the size");
    medlab::fuzz::require(uint64_t(image.width) * uint64_t(image.height) <= options.max_pixels, "max_pixels was not enforced");
    medlab::fuzz::require(dimensions.has_value(), "decoded an image whose header image_dimensions cannot read");
    const auto [w, h] = *dimensions;
    medlab::fuzz::require((uint32_t(image.width) == w && uint32_t(image.height) == h) ||
                              (uint32_t(image.width) == h && uint32_t(image.height) == w),
                          "decoded size differs from the header's (other than an EXIF rotation)");
  } catch (const medlab::Error&) {
  }
  return 0;
}
