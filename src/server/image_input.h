// An uploaded image on its way to the model: decoded (PNG, JPEG) or rendered (DICOM, windowed), the region
// of interest outlined, then resized and normalised as the model's image processor does.
#pragma once

#include <optional>

#include "imaging/preprocess.h"
#include "runtime/images.h"
#include "server/api_requests.h"
#include "server/server_state.h"

namespace medlab::server {

struct PreparedImage {
  PromptImage image;                 // what a viewer shows, region outlined
  std::optional<ModelInput> input;   // what the vision tower takes; only when asked for
};

// Throws ApiError: 413 for an image over the pixel limit, 400 for anything unreadable or a region outside
// the image (naming spec.field), 400 when the model has no vision tower and `for_model` is set.
PreparedImage prepare_image(const ImageSpec& spec, const ServerState& state, bool for_model);

// "image": {"width", "height", "source", "pixel_sha256", "dicom_pixel_sha256"?} of an answer.
nlohmann::json image_json(const PromptImage& image);

}  // namespace medlab::server
