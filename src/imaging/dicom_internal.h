// Shared between the DICOM reader's translation units; DCMTK types stay out of the public headers.
#pragma once

#include <dcmtk/dcmdata/dcfilefo.h>

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "imaging/dicom_file.h"

namespace medlab::dicom {

// Typed reads of one item's attributes; every failure names the file and the tag.
class Attributes {
 public:
  Attributes(DcmItem& item, std::string file);
  std::optional<double> number(const DcmTagKey& key, unsigned long pos = 0) const;
  std::optional<int64_t> integer(const DcmTagKey& key, unsigned long pos = 0) const;
  int64_t required(const DcmTagKey& key) const;
  std::string text(const DcmTagKey& key) const;
  std::vector<double> numbers(const DcmTagKey& key) const;
  std::vector<std::string> texts(const DcmTagKey& key) const;
  // A LUT Descriptor + LUT Data pair; `signed_input` reads the first mapped value as SS.
  std::optional<Lut> lut(const DcmTagKey& descriptor, const DcmTagKey& data, bool signed_input) const;
  const std::string& file() const { return file_; }

 private:
  DcmItem& item_;
  std::string file_;
};

// Refuses sequences nested deeper than any real object before DCMTK, which recurses per level, reads them.
void check_nesting(std::span<const uint8_t> bytes, const std::string& name);

struct LoadedFile {
  std::unique_ptr<DcmFileFormat> file;
  E_TransferSyntax xfer = EXS_Unknown;
  DicomHeader header;
};

// Parses the file (pixel data left on disk) and reads the header; header_only stops at the pixel data.
LoadedFile load_file(const std::string& path, bool header_only);
// The same from a whole DICOM object in memory; `name` stands for the file in messages.
LoadedFile load_buffer(std::span<const uint8_t> bytes, const std::string& name, bool header_only);
// Re-reads the image attributes: decoders may change them (photometric, planar configuration).
void read_image_attributes(DcmItem& dataset, DicomHeader& header);
// JPEG 2000 frames through OpenJPEG, into `out` (interleaved samples, header.bits_allocated containers).
void decode_jpeg2000(DcmDataset& dataset, const DicomHeader& header, PixelData& out);

}  // namespace medlab::dicom
