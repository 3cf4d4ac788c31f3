// Folder scanning, slice sorting and MedGemma's slice sampling.
#include "imaging/dicom_series.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include "core/error.h"

namespace medlab::dicom {

const char* slice_order_name(SliceOrder order) {
  switch (order) {
    case SliceOrder::position: return "position along the slice normal";
    case SliceOrder::instance_number: return "instance number";
    case SliceOrder::file_name: return "file name";
  }
  return "file name";
}

SliceOrder sort_slices(std::vector<Slice>& slices) {
  const auto name_less = [](const Slice& a, const Slice& b) { return a.header.file_name < b.header.file_name; };
  const auto number_of = [](const Slice& s) { return s.header.geometry.instance_number.value_or(INT64_MAX); };
  const bool positioned = !slices.empty() && std::all_of(slices.begin(), slices.end(), [](const Slice& s) {
    return s.header.geometry.position && s.header.geometry.orientation;
  });
  if (positioned) {
    // Normal = row direction x column direction, from the first slice (one series shares it).
    const auto& o = *slices.front().header.geometry.orientation;
    const double n[3] = {o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5], o[0] * o[4] - o[1] * o[3]};
    const auto along = [&](const Slice& s) {
      const auto& p = *s.header.geometry.position;
      return p[0] * n[0] + p[1] * n[1] + p[2] * n[2];
    };
    std::stable_sort(slices.begin(), slices.end(), [&](const Slice& a, const Slice& b) {
      const double da = along(a), db = along(b);
      if (da != db) return da < db;
      if (number_of(a) != number_of(b)) return number_of(a) < number_of(b);
      return name_less(a, b);
    });
    return SliceOrder::position;
  }
  if (std::all_of(slices.begin(), slices.end(), [](const Slice& s) { return s.header.geometry.instance_number.has_value(); })) {
    std::stable_sort(slices.begin(), slices.end(), [&](const Slice& a, const Slice& b) {
      return number_of(a) != number_of(b) ? number_of(a) < number_of(b) : name_less(a, b);
    });
    return SliceOrder::instance_number;
  }
  std::stable_sort(slices.begin(), slices.end(), name_less);
  return SliceOrder::file_name;
}

FolderScan scan_folder(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) fail(dir, ": not a folder");
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  if (ec) fail(dir, ": cannot list: ", ec.message());
  std::sort(files.begin(), files.end());
  FolderScan scan;
  std::map<std::string, Series> by_uid;
  for (const auto& file : files) {
    try {
      Slice slice{file.string(), read_dicom_header(file.string())};
      const std::string uid = slice.header.series_uid;
      Series& series = by_uid[uid];
      series.modality = slice.header.modality;
      series.series_number = slice.header.series_number;
      series.slices.push_back(std::move(slice));
    } catch (const Error& e) {
      scan.skipped.push_back(e.what());
    }
  }
  for (auto& [uid, series] : by_uid) {
    series.order = sort_slices(series.slices);
    scan.series.push_back(std::move(series));
  }
  std::stable_sort(scan.series.begin(), scan.series.end(),
                   [](const Series& a, const Series& b) { return a.slices.size() > b.slices.size(); });
  if (scan.series.empty()) fail(dir, ": no DICOM images in this folder");
  return scan;
}

std::vector<size_t> sample_slices(size_t count, size_t max_slices) {
  std::vector<size_t> indices;
  if (max_slices == 0) fail("slice sampling: at most 0 slices asked for");
  if (count <= max_slices) {
    for (size_t i = 0; i < count; ++i) indices.push_back(i);
    return indices;
  }
  for (size_t i = 1; i <= max_slices; ++i) {
    // Python evaluates i / MAX * (n - 1) left to right in doubles; nearbyint rounds half to even like round().
    indices.push_back(size_t(std::nearbyint(double(i) / double(max_slices) * double(count - 1))));
  }
  return indices;
}

}  // namespace medlab::dicom
