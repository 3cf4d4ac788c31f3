#include "server/image_input.h"

#include "server/api_error.h"

namespace medlab::server {

PreparedImage prepare_image(const ImageSpec& spec, const ServerState& state, bool for_model) {
  if (for_model && !state.model.vision)
    bad_request(spec.field, spec.field, ": this model (", state.model_name, ") has no vision tower and cannot take images");
  ImageReadOptions options;
  options.decode.max_pixels = state.options.max_pixels;
  options.dicom_window = spec.window;
  options.dicom_frame = spec.frame;
  // A name ending in .dcm lets DICOM without the Part 10 preamble through, when the client says it is DICOM.
  const std::string name = spec.data.media_type == "application/dicom" ? spec.field + ".dcm" : spec.field;
  PreparedImage out;
  try {
    out.image = read_prompt_image_bytes(spec.data.bytes, name, options);
  } catch (const ImageTooLarge& e) {
    throw ApiError(413, "invalid_request_error", spec.field, e.what());
  } catch (const Error& e) {
    bad_request(spec.field, e.what());
  }
  if (spec.region) {
    try {
      outline_region(out.image.rgb, *spec.region);
    } catch (const Error& e) {
      bad_request("region", e.what());
    }
  }
  out.image.file = spec.field;
  if (for_model) out.input = std::move(preprocess_image(out.image.rgb, preprocess_options_for(*state.model.vision)).front());
  return out;
}

nlohmann::json image_json(const PromptImage& image) {
  nlohmann::json j = {{"width", image.rgb.width}, {"height", image.rgb.height}, {"source", image.source},
                      {"pixel_sha256", pixel_sha256(image.rgb)}};
  if (image.dicom_pixel_sha256) j["dicom_pixel_sha256"] = *image.dicom_pixel_sha256;
  return j;
}

}  // namespace medlab::server
