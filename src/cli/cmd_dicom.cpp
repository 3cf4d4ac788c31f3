// medlab dicom info | render: what a DICOM file or folder holds, and its pixels as a PNG.
// Nothing printed here identifies a patient: only technical attributes and file names.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.h"
#include "core/error.h"
#include "imaging/dicom_file.h"
#include "imaging/dicom_render.h"
#include "imaging/dicom_series.h"
#include "imaging/png_write.h"

namespace medlab::cli {
namespace {

using nlohmann::json;
using namespace medlab::dicom;

json lut_json(const Lut& lut) {
  return {{"entries", lut.data.size()}, {"first_mapped", lut.first_mapped}, {"bits", lut.bits}, {"explanation", lut.explanation}};
}

json transforms_json(const FrameTransforms& t) {
  json j = json::object();
  if (t.rescale) j["rescale"] = {{"slope", t.rescale->slope}, {"intercept", t.rescale->intercept}};
  if (t.modality_lut) j["modality_lut"] = lut_json(*t.modality_lut);
  j["windows"] = json::array();
  for (const Window& w : t.windows) j["windows"].push_back({{"center", w.center}, {"width", w.width}, {"explanation", w.explanation}});
  j["voi_lut_function"] = voi_function_name(t.voi_function);
  j["voi_luts"] = json::array();
  for (const Lut& lut : t.voi_luts) j["voi_luts"].push_back(lut_json(lut));
  return j;
}

json header_json(const DicomHeader& h) {
  json j = {{"file", h.file_name},
            {"transfer_syntax", {{"uid", h.transfer_syntax_uid}, {"name", h.transfer_syntax_name}}},
            {"part10_header", h.has_meta_header},
            {"modality", h.modality},
            {"photometric", h.photometric},
            {"rows", h.rows},
            {"columns", h.columns},
            {"samples_per_pixel", h.samples_per_pixel},
            {"frames", h.frames},
            {"bits_allocated", h.bits_allocated},
            {"bits_stored", h.bits_stored},
            {"high_bit", h.high_bit},
            {"signed", h.is_signed},
            {"planar_configuration", h.planar_configuration}};
  j["transforms"] = transforms_json(h.transforms);
  j["functional_groups"] = !h.per_frame.empty();
  if (!h.per_frame.empty()) j["frame_1_transforms"] = transforms_json(h.per_frame.front());
  const Geometry& g = h.geometry;
  if (g.pixel_spacing) j["pixel_spacing"] = *g.pixel_spacing;
  if (g.slice_thickness) j["slice_thickness"] = *g.slice_thickness;
  if (g.position) j["image_position"] = *g.position;
  if (g.orientation) j["image_orientation"] = *g.orientation;
  if (g.instance_number) j["instance_number"] = *g.instance_number;
  return j;
}

std::string windows_text(const FrameTransforms& t) {
  std::string text;
  for (const Window& w : t.windows) {
    char line[160];
    std::snprintf(line, sizeof line, "%sC%g W%g", text.empty() ? "" : "; ", w.center, w.width);
    text += line;
    if (!w.explanation.empty()) text += " (" + w.explanation + ")";
  }
  if (text.empty()) text = "none";
  if (!t.windows.empty()) text += std::string(", ") + voi_function_name(t.voi_function);
  if (!t.voi_luts.empty()) text += ", " + std::to_string(t.voi_luts.size()) + " VOI LUT(s)";
  return text;
}

void print_file(const DicomHeader& h, const std::string& hash) {
  std::printf("file:            %s\n", h.file_name.c_str());
  std::printf("transfer syntax: %s (%s)%s\n", h.transfer_syntax_uid.c_str(), h.transfer_syntax_name.c_str(),
              h.has_meta_header ? "" : ", no Part 10 header");
  std::printf("modality:        %s\n", h.modality.empty() ? "(none)" : h.modality.c_str());
  std::printf("photometric:     %s, %u sample(s) per pixel\n", h.photometric.c_str(), h.samples_per_pixel);
  std::printf("size:            %u x %u (columns x rows), %u frame(s)\n", h.columns, h.rows, h.frames);
  std::printf("bits:            allocated %d, stored %d, high bit %d, %s\n", h.bits_allocated, h.bits_stored, h.high_bit,
              h.is_signed ? "signed" : "unsigned");
  const FrameTransforms& t = h.frame_transforms(0);
  if (t.modality_lut) {
    std::printf("modality LUT:    %zu entries\n", t.modality_lut->data.size());
  } else if (t.rescale) {
    std::printf("rescale:         slope %g, intercept %g\n", t.rescale->slope, t.rescale->intercept);
  }
  std::printf("windows:         %s%s\n", windows_text(t).c_str(), h.per_frame.empty() ? "" : " (frame 1, from functional groups)");
  if (h.geometry.pixel_spacing) {
    std::printf("pixel spacing:   %g x %g mm\n", (*h.geometry.pixel_spacing)[0], (*h.geometry.pixel_spacing)[1]);
  }
  std::printf("pixel sha256:    %s\n", hash.c_str());
}

void info_folder(const std::string& dir, bool as_json) {
  const FolderScan scan = scan_folder(dir);
  json out = {{"folder", std::filesystem::path(dir).filename().string()}, {"series", json::array()}, {"skipped", scan.skipped}};
  for (const Series& s : scan.series) {
    const DicomHeader& first = s.slices.front().header;
    json names = json::array();
    for (const Slice& slice : s.slices) names.push_back(slice.header.file_name);
    json j = {{"modality", s.modality}, {"slices", s.slices.size()}, {"order", slice_order_name(s.order)},
              {"rows", first.rows}, {"columns", first.columns}, {"photometric", first.photometric}, {"files", names}};
    if (s.series_number) j["series_number"] = *s.series_number;
    j["sampled_85"] = sample_slices(s.slices.size());
    out["series"].push_back(j);
  }
  if (as_json) {
    std::cout << out.dump(2) << "\n";
    return;
  }
  for (const json& s : out["series"]) {
    std::printf("series %s: %s, %zu slice(s) of %u x %u, sorted by %s\n",
                s.contains("series_number") ? std::to_string(s["series_number"].get<int64_t>()).c_str() : "?",
                s["modality"].get<std::string>().c_str(), s["slices"].get<size_t>(), s["columns"].get<uint32_t>(),
                s["rows"].get<uint32_t>(), s["order"].get<std::string>().c_str());
    const auto& files = s["files"];
    std::printf("  first %s, last %s\n", files.front().get<std::string>().c_str(), files.back().get<std::string>().c_str());
  }
  for (const auto& why : scan.skipped) std::printf("skipped: %s\n", why.c_str());
}

struct RenderOptions {
  std::string input;
  std::string window = "file";
  uint32_t frame = 1;
  uint32_t slice = 1;
  std::string out;
};

void render_command(const RenderOptions& o) {
  std::string path = o.input;
  if (std::filesystem::is_directory(path)) {
    const FolderScan scan = scan_folder(path);
    const Series& series = scan.series.front();
    if (o.slice < 1 || o.slice > series.slices.size()) {
      fail("--slice ", o.slice, ": the series has ", series.slices.size(), " slices");
    }
    path = series.slices[o.slice - 1].path;
  }
  const WindowSpec spec = parse_window(o.window);
  const DicomImage image = read_dicom(path);
  if (o.frame < 1) fail("--frame counts from 1");
  const Rendered r = render(image, spec, o.frame - 1);
  write_png(o.out, r.width, r.height, r.channels, r.pixels.data());
  std::fprintf(stderr, "%s: frame %u of %u, %s -> %s\n", image.header.file_name.c_str(), o.frame, image.header.frames,
               r.description.c_str(), std::filesystem::path(o.out).filename().c_str());
}

}  // namespace

void register_dicom(CLI::App& app) {
  auto* dicom = app.add_subcommand("dicom", "Read DICOM files: describe them, render them to PNG (no patient data shown)");
  dicom->require_subcommand(1);

  auto* info = dicom->add_subcommand("info", "Geometry, photometric, bits, modality, windows, transfer syntax, frames, pixel hash");
  auto input = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  info->add_option("path", *input, "a DICOM file, or a folder holding one series' slices")->required();
  info->add_flag("--json", *as_json, "print JSON");
  info->callback([input, as_json] {
    if (std::filesystem::is_directory(*input)) return info_folder(*input, *as_json);
    const DicomImage image = read_dicom(*input);
    const std::string hash = pixel_hash(image);
    if (*as_json) {
      json j = header_json(image.header);
      j["pixel_sha256"] = hash;
      std::cout << j.dump(2) << "\n";
    } else {
      print_file(image.header, hash);
    }
  });

  auto* render = dicom->add_subcommand("render", "Render one frame (or one slice of a folder) to an 8-bit PNG");
  auto options = std::make_shared<RenderOptions>();
  render->add_option("path", options->input, "a DICOM file, or a folder of one series' slices")->required();
  render->add_option("--window", options->window,
                     "file (the file's first VOI LUT or window; none: full range) | file:N | lut:N | full | "
                     "lung (C-600 W1500) | mediastinum (C50 W350) | bone (C400 W1800) | brain (C40 W80) | "
                     "abdomen (C60 W400) | soft-tissue (C40 W400) | C,W[,LINEAR|LINEAR_EXACT|SIGMOID] | "
                     "ct-rgb (MedGemma CT: R -1024..1024, G -135..215, B 0..80 HU) | cxr (MedGemma chest film)")
      ->capture_default_str();
  render->add_option("--frame", options->frame, "frame number, from 1 (default: the first)")->capture_default_str();
  render->add_option("--slice", options->slice, "for a folder: slice number in sorted order, from 1")->capture_default_str();
  render->add_option("--out", options->out, "PNG file to write")->required();
  render->callback([options] { render_command(*options); });
}

}  // namespace medlab::cli
