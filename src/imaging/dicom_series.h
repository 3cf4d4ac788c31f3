// Series: the slices of one series in a folder, ordered along the slice normal, and slice sampling.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "imaging/dicom_file.h"

namespace medlab::dicom {

struct Slice {
  std::string path;
  DicomHeader header;
};

enum class SliceOrder {
  position,         // Image Position (Patient) projected on the normal of Image Orientation (Patient)
  instance_number,  // (0020,0013), when some slice lacks position or orientation
  file_name,        // when some slice lacks both
};
const char* slice_order_name(SliceOrder order);

struct Series {
  std::string modality;
  std::optional<int64_t> series_number;
  SliceOrder order = SliceOrder::file_name;
  std::vector<Slice> slices;  // sorted: feet to head for axial CT in the usual patient frame
};

struct FolderScan {
  std::vector<Series> series;      // most slices first
  std::vector<std::string> skipped;  // file names that are not DICOM images, with why
};

// Reads the header of every file directly in `dir` (no recursion), groups by Series Instance UID, sorts.
FolderScan scan_folder(const std::string& dir);

// Sorts slices in place and says by what (exposed for tests).
SliceOrder sort_slices(std::vector<Slice>& slices);

// Indices (into a sorted series of `count` slices) of at most `max_slices` evenly spaced slices, as the
// MedGemma CT notebook samples: all of them when count <= max_slices, else for i = 1..max_slices the index
// round(i / max_slices * (count - 1)), Python's round (half to even). Like the notebook this starts past
// index 0 and always ends on the last slice.
std::vector<size_t> sample_slices(size_t count, size_t max_slices = 85);

}  // namespace medlab::dicom
