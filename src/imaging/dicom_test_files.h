// Writes small synthetic DICOM files with DCMTK for the unit tests (no patient data).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

class DcmDataset;

namespace medlab::dicom::testing {

struct TestImage {
  uint32_t rows = 4;
  uint32_t columns = 4;
  uint32_t frames = 1;
  int bits_stored = 16;
  bool is_signed = false;
  std::string photometric = "MONOCHROME2";
  std::string modality = "CT";
  std::vector<uint16_t> pixels;  // rows * columns * frames 16-bit stored values (two's complement if signed)
  // Adds attributes (windows, rescale, functional groups, geometry) before saving.
  std::function<void(DcmDataset&)> extra;
};

// Writes `image` to `path` as explicit VR little endian, or re-encoded to `transfer_syntax`
// ("rle", "jpeg-ls", "big-endian", "implicit", "deflated").
void write_test_dicom(const std::string& path, const TestImage& image, const std::string& transfer_syntax = "");

// A fresh empty folder under the system temp folder, removed with everything in it on destruction.
class TempFolder {
 public:
  explicit TempFolder(const std::string& name);
  ~TempFolder();
  TempFolder(const TempFolder&) = delete;
  TempFolder& operator=(const TempFolder&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace medlab::dicom::testing
