// POST /api/render: the image as the server reads it (windowed DICOM, region outlined), or exactly the
// picture the model is shown, so that a person can check what the model was given.
#include "imaging/dicom_render.h"
#include "imaging/png_write.h"
#include "server/api_error.h"
#include "server/data_uri.h"
#include "server/handlers.h"
#include "server/image_input.h"

namespace medlab::server {
namespace {

// The DICOM facts a viewer offers choices from: frames, modality, the file's own windows.
void add_dicom_facts(const ImageSpec& spec, const PromptImage& image, nlohmann::json& out) {
  if (!image.dicom_pixel_sha256) {
    out["frames"] = 1;
    return;
  }
  const dicom::DicomHeader header = dicom::read_dicom_header(spec.data.bytes, spec.field);
  out["frames"] = header.frames;
  if (!header.modality.empty()) out["modality"] = header.modality;
  nlohmann::json windows = nlohmann::json::array();
  for (const dicom::Window& w : header.frame_transforms(spec.frame).windows)
    windows.push_back({{"center", w.center}, {"width", w.width}, {"explanation", w.explanation}});
  out["file_windows"] = windows;
}

}  // namespace

void handle_render(ServerState& state, const httplib::Request& req, httplib::Response& res) {
  const RenderRequest request = parse_render(req.body);
  const PreparedImage prepared = prepare_image(request.image, state, request.model_input);
  const Image& shown = request.model_input ? prepared.input->resized : prepared.image.rgb;
  const std::vector<uint8_t> png = encode_png(uint32_t(shown.width), uint32_t(shown.height), 3, shown.rgb.data());
  if (!request.json) {
    res.set_content(std::string(png.begin(), png.end()), "image/png");
    return;
  }
  nlohmann::json presets = nlohmann::json::array();
  for (const dicom::Preset& p : dicom::window_presets()) presets.push_back(p.name);
  nlohmann::json out = {{"png_base64", encode_base64(png)},
                        {"width", shown.width},
                        {"height", shown.height},
                        {"source", prepared.image.source},
                        {"file_windows", nlohmann::json::array()},
                        {"presets", presets}};
  add_dicom_facts(request.image, prepared.image, out);
  if (prepared.image.dicom_pixel_sha256) out["dicom_pixel_sha256"] = *prepared.image.dicom_pixel_sha256;
  res.set_content(dump_json(out), "application/json");
}

}  // namespace medlab::server
