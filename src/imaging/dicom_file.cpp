// DICOM reading through DCMTK: attributes, functional groups, decompression to stored values.
#include "imaging/dicom_file.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcistrmb.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/oflog/oflog.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/mapped_file.h"
#include "imaging/dicom_internal.h"

namespace medlab::dicom {
namespace {

// DCMTK's codec registry and logger are process-wide; set them up once, thread-safely.
void init_dcmtk() {
  static const bool ready = [] {
    // DCMTK's warnings can quote attribute values, patient names included: keep them quiet.
    OFLog::configure(OFLogger::OFF_LOG_LEVEL);
    DcmRLEDecoderRegistration::registerCodecs();
    DJDecoderRegistration::registerCodecs(EDC_photometricInterpretation, EUC_never, EPC_colorByPixel);
    DJLSDecoderRegistration::registerCodecs(EJLSUC_never, EJLSPC_colorByPixel);
    return true;
  }();
  (void)ready;
}

std::string base_name(const std::string& path) { return std::filesystem::path(path).filename().string(); }

std::string tag_name(const DcmTagKey& key) {
  DcmTag tag(key);
  char id[16];
  std::snprintf(id, sizeof id, "(%04X,%04X)", key.getGroup(), key.getElement());
  return std::string(id) + " " + tag.getTagName();
}

std::optional<std::string> get_string(DcmItem& item, const DcmTagKey& key, unsigned long pos = 0) {
  OFString value;
  if (item.findAndGetOFString(key, value, pos).bad()) return std::nullopt;
  std::string s = value.c_str();
  const auto last = s.find_last_not_of(" \0", std::string::npos, 2);
  s.erase(last == std::string::npos ? 0 : last + 1);
  return s;
}

unsigned long value_count(DcmItem& item, const DcmTagKey& key) {
  DcmElement* element = nullptr;
  if (item.findAndGetElement(key, element).bad() || element == nullptr) return 0;
  return element->getVM();
}

}  // namespace

const char* voi_function_name(VoiFunction function) {
  switch (function) {
    case VoiFunction::linear: return "LINEAR";
    case VoiFunction::linear_exact: return "LINEAR_EXACT";
    case VoiFunction::sigmoid: return "SIGMOID";
  }
  return "LINEAR";
}

// ---- attribute access: every failure names the file and the tag ----

Attributes::Attributes(DcmItem& item, std::string file) : item_(item), file_(std::move(file)) {}

std::optional<double> Attributes::number(const DcmTagKey& key, unsigned long pos) const {
  const auto text = get_string(item_, key, pos);
  if (!text || text->empty()) return std::nullopt;
  char* end = nullptr;
  const double value = std::strtod(text->c_str(), &end);
  if (end == text->c_str()) fail(file_, ": ", tag_name(key), " is not a number");
  return value;
}

std::optional<int64_t> Attributes::integer(const DcmTagKey& key, unsigned long pos) const {
  const auto value = number(key, pos);
  if (!value) return std::nullopt;
  if (*value != std::floor(*value) || std::abs(*value) > 9.0e15) fail(file_, ": ", tag_name(key), " is not an integer");
  return int64_t(*value);
}

int64_t Attributes::required(const DcmTagKey& key) const {
  const auto value = integer(key);
  if (!value) fail(file_, ": ", tag_name(key), " is missing");
  return *value;
}

std::string Attributes::text(const DcmTagKey& key) const { return get_string(item_, key).value_or(""); }

std::vector<double> Attributes::numbers(const DcmTagKey& key) const {
  std::vector<double> values;
  const unsigned long n = value_count(item_, key);
  for (unsigned long i = 0; i < n; ++i) {
    if (auto v = number(key, i)) values.push_back(*v);
  }
  return values;
}

std::vector<std::string> Attributes::texts(const DcmTagKey& key) const {
  std::vector<std::string> values;
  const unsigned long n = value_count(item_, key);
  for (unsigned long i = 0; i < n; ++i) values.push_back(get_string(item_, key, i).value_or(""));
  return values;
}

std::optional<Lut> Attributes::lut(const DcmTagKey& descriptor_key, const DcmTagKey& data_key, bool signed_input) const {
  if (value_count(item_, descriptor_key) == 0) return std::nullopt;
  if (value_count(item_, descriptor_key) != 3) fail(file_, ": ", tag_name(descriptor_key), " needs 3 values");
  Uint16 descriptor[3];
  for (unsigned long i = 0; i < 3; ++i) {
    // US or SS: the raw 16 bits, reinterpreted below where the standard says so.
    const auto v = integer(descriptor_key, i);
    if (!v) fail(file_, ": ", tag_name(descriptor_key), " is incomplete");
    descriptor[i] = Uint16(*v);
  }
  Lut lut;
  const size_t entries = descriptor[0] == 0 ? 65536 : descriptor[0];
  lut.first_mapped = signed_input ? int64_t(int16_t(descriptor[1])) : int64_t(descriptor[1]);
  lut.bits = descriptor[2];
  if (lut.bits < 1 || lut.bits > 16) fail(file_, ": ", tag_name(descriptor_key), " gives ", lut.bits, " bits per entry");
  const Uint16* words = nullptr;
  unsigned long count = 0;
  if (item_.findAndGetUint16Array(data_key, words, &count).bad() || words == nullptr) {
    fail(file_, ": ", tag_name(data_key), " is missing");
  }
  if (count == entries) {
    lut.data.assign(words, words + count);
  } else if (lut.bits == 8 && count * 2 >= entries) {
    // 8-bit entries packed two to a 16-bit word, low byte first.
    lut.data.resize(entries);
    for (size_t i = 0; i < entries; ++i) lut.data[i] = (words[i / 2] >> (8 * (i % 2))) & 0xFF;
  } else {
    fail(file_, ": ", tag_name(data_key), " has ", count, " entries, ", tag_name(descriptor_key), " says ", entries);
  }
  lut.explanation = text(DCM_LUTExplanation);
  return lut;
}

// Reads the transforms an item carries (top level, or a functional group item), on top of `base`.
static void read_transforms(DcmItem& item, const Attributes& a, bool signed_input, FrameTransforms& out) {
  const auto slope = a.number(DCM_RescaleSlope);
  const auto intercept = a.number(DCM_RescaleIntercept);
  if (slope || intercept) out.rescale = Rescale{slope.value_or(1.0), intercept.value_or(0.0)};
  DcmItem* lut_item = nullptr;
  if (item.findAndGetSequenceItem(DCM_ModalityLUTSequence, lut_item, 0).good() && lut_item) {
    out.modality_lut = Attributes(*lut_item, a.file()).lut(DCM_LUTDescriptor, DCM_LUTData, signed_input);
  }
  const auto centers = a.numbers(DCM_WindowCenter);
  const auto widths = a.numbers(DCM_WindowWidth);
  if (!centers.empty() || !widths.empty()) {
    if (centers.size() != widths.size()) {
      fail(a.file(), ": (0028,1050) Window Center has ", centers.size(), " values, (0028,1051) Window Width ", widths.size());
    }
    const auto explanations = a.texts(DCM_WindowCenterWidthExplanation);
    out.windows.clear();
    for (size_t i = 0; i < centers.size(); ++i) {
      out.windows.push_back({centers[i], widths[i], i < explanations.size() ? explanations[i] : ""});
    }
  }
  const std::string function = a.text(DCM_VOILUTFunction);
  if (function == "LINEAR_EXACT") {
    out.voi_function = VoiFunction::linear_exact;
  } else if (function == "SIGMOID") {
    out.voi_function = VoiFunction::sigmoid;
  } else if (!function.empty() && function != "LINEAR") {
    fail(a.file(), ": (0028,1056) VOI LUT Function '", function, "' is not LINEAR, LINEAR_EXACT or SIGMOID");
  } else if (!function.empty()) {
    out.voi_function = VoiFunction::linear;
  }
  DcmSequenceOfItems* voi_sequence = nullptr;
  if (item.findAndGetSequence(DCM_VOILUTSequence, voi_sequence).good() && voi_sequence) {
    out.voi_luts.clear();
    for (unsigned long i = 0; i < voi_sequence->card(); ++i) {
      // VOI LUT input is the modality output: signed whenever the stored values or the rescale are.
      if (auto lut = Attributes(*voi_sequence->getItem(i), a.file()).lut(DCM_LUTDescriptor, DCM_LUTData, true)) {
        out.voi_luts.push_back(std::move(*lut));
      }
    }
  }
}

// Applies one functional-group item: its Pixel Value Transformation and Frame VOI LUT macros.
static void read_functional_group(DcmItem& group, const std::string& file, bool signed_input, FrameTransforms& out) {
  DcmItem* macro = nullptr;
  if (group.findAndGetSequenceItem(DCM_PixelValueTransformationSequence, macro, 0).good() && macro) {
    read_transforms(*macro, Attributes(*macro, file), signed_input, out);
  }
  if (group.findAndGetSequenceItem(DCM_FrameVOILUTSequence, macro, 0).good() && macro) {
    read_transforms(*macro, Attributes(*macro, file), signed_input, out);
  }
}

void read_image_attributes(DcmItem& dataset, DicomHeader& h) {
  const Attributes a(dataset, h.file_name);
  h.rows = uint32_t(std::clamp<int64_t>(a.required(DCM_Rows), 0, UINT32_MAX));
  h.columns = uint32_t(std::clamp<int64_t>(a.required(DCM_Columns), 0, UINT32_MAX));
  if (h.rows == 0) fail(h.file_name, ": (0028,0010) Rows is 0");
  if (h.columns == 0) fail(h.file_name, ": (0028,0011) Columns is 0");
  h.samples_per_pixel = uint32_t(a.integer(DCM_SamplesPerPixel).value_or(1));
  if (h.samples_per_pixel != 1 && h.samples_per_pixel != 3) {
    fail(h.file_name, ": (0028,0002) Samples per Pixel is ", h.samples_per_pixel, ", not 1 or 3");
  }
  const int64_t frames = a.integer(DCM_NumberOfFrames).value_or(1);
  if (frames < 1 || frames > INT32_MAX) fail(h.file_name, ": (0028,0008) Number of Frames is ", frames);
  h.frames = uint32_t(frames);
  h.bits_allocated = int(a.required(DCM_BitsAllocated));
  if (h.bits_allocated != 1 && h.bits_allocated != 8 && h.bits_allocated != 16 && h.bits_allocated != 32) {
    fail(h.file_name, ": (0028,0100) Bits Allocated is ", h.bits_allocated, "; only 1, 8, 16 and 32 are supported");
  }
  h.bits_stored = int(a.integer(DCM_BitsStored).value_or(h.bits_allocated));
  if (h.bits_stored < 1 || h.bits_stored > h.bits_allocated) {
    fail(h.file_name, ": (0028,0101) Bits Stored is ", h.bits_stored, " with Bits Allocated ", h.bits_allocated);
  }
  h.high_bit = int(a.integer(DCM_HighBit).value_or(h.bits_stored - 1));
  if (h.high_bit < h.bits_stored - 1 || h.high_bit >= h.bits_allocated) {
    fail(h.file_name, ": (0028,0102) High Bit is ", h.high_bit, " with Bits Stored ", h.bits_stored);
  }
  h.is_signed = a.integer(DCM_PixelRepresentation).value_or(0) == 1;
  h.planar_configuration = int(a.integer(DCM_PlanarConfiguration).value_or(0));
  h.photometric = a.text(DCM_PhotometricInterpretation);
  if (h.photometric.empty()) h.photometric = h.samples_per_pixel == 1 ? "MONOCHROME2" : "RGB";
  static const char* const known[] = {"MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB", "YBR_FULL",
                                      "YBR_FULL_422", "YBR_ICT", "YBR_RCT"};
  if (std::find_if(std::begin(known), std::end(known), [&](const char* k) { return h.photometric == k; }) == std::end(known)) {
    fail(h.file_name, ": (0028,0004) Photometric Interpretation ", h.photometric, " is not supported");
  }
  const bool colour = h.photometric != "MONOCHROME1" && h.photometric != "MONOCHROME2" && h.photometric != "PALETTE COLOR";
  if (colour != (h.samples_per_pixel == 3)) {
    fail(h.file_name, ": (0028,0004) Photometric Interpretation ", h.photometric, " with (0028,0002) Samples per Pixel ",
         h.samples_per_pixel);
  }
  if (h.photometric == "PALETTE COLOR") {
    const DcmTagKey descriptors[3] = {DCM_RedPaletteColorLookupTableDescriptor, DCM_GreenPaletteColorLookupTableDescriptor,
                                      DCM_BluePaletteColorLookupTableDescriptor};
    const DcmTagKey data[3] = {DCM_RedPaletteColorLookupTableData, DCM_GreenPaletteColorLookupTableData,
                               DCM_BluePaletteColorLookupTableData};
    for (int c = 0; c < 3; ++c) {
      if (value_count(dataset, DCM_SegmentedRedPaletteColorLookupTableData) > 0 && value_count(dataset, data[c]) == 0) {
        fail(h.file_name, ": (0028,1221) Segmented Palette Color LUTs are not supported");
      }
      h.palette[c] = a.lut(descriptors[c], data[c], h.is_signed);
      if (!h.palette[c]) fail(h.file_name, ": ", tag_name(descriptors[c]), " is missing");
    }
  }

  h.transforms = {};
  read_transforms(dataset, a, h.is_signed, h.transforms);
  h.per_frame.clear();
  DcmItem* shared = nullptr;
  DcmSequenceOfItems* per_frame = nullptr;
  const bool has_shared = dataset.findAndGetSequenceItem(DCM_SharedFunctionalGroupsSequence, shared, 0).good() && shared;
  const bool has_per_frame = dataset.findAndGetSequence(DCM_PerFrameFunctionalGroupsSequence, per_frame).good() && per_frame;
  if (has_shared || has_per_frame) {
    FrameTransforms common = h.transforms;
    if (has_shared) read_functional_group(*shared, h.file_name, h.is_signed, common);
    // One entry per item the file holds, then the shared one for the frames after them: sized by the
    // items present, never by Number of Frames, which a two-line header can set to 2^31 - 1.
    const unsigned long n = has_per_frame ? std::min<unsigned long>(per_frame->card(), h.frames) : 0;
    h.per_frame.assign(n + 1, common);
    for (unsigned long f = 0; f < n; ++f) read_functional_group(*per_frame->getItem(f), h.file_name, h.is_signed, h.per_frame[f]);
  }
}

static void read_geometry(DcmItem& dataset, DicomHeader& h) {
  const Attributes a(dataset, h.file_name);
  const auto position = a.numbers(DCM_ImagePositionPatient);
  if (position.size() == 3) h.geometry.position = std::array<double, 3>{position[0], position[1], position[2]};
  const auto orientation = a.numbers(DCM_ImageOrientationPatient);
  if (orientation.size() == 6) {
    std::array<double, 6> o;
    std::copy(orientation.begin(), orientation.end(), o.begin());
    h.geometry.orientation = o;
  }
  const auto spacing = a.numbers(DCM_PixelSpacing);
  if (spacing.size() == 2) h.geometry.pixel_spacing = std::array<double, 2>{spacing[0], spacing[1]};
  h.geometry.slice_thickness = a.number(DCM_SliceThickness);
  h.geometry.instance_number = a.integer(DCM_InstanceNumber);
  h.series_number = a.integer(DCM_SeriesNumber);
  h.series_uid = a.text(DCM_SeriesInstanceUID);
  h.modality = a.text(DCM_Modality);
  h.sop_class_uid = a.text(DCM_SOPClassUID);
}

namespace {

// What every parse ends with, whether DCMTK read a file or a buffer: the same checks and the same errors.
void check_and_read_header(LoadedFile& loaded, const OFCondition& status) {
  DicomHeader& h = loaded.header;
  DcmDataset& dataset = *loaded.file->getDataset();
  if (status.bad()) {
    const auto uid = get_string(*loaded.file->getMetaInfo(), DCM_TransferSyntaxUID);
    if (uid && !uid->empty() && DcmXfer(uid->c_str()).getXfer() == EXS_Unknown) {
      fail(h.file_name, ": transfer syntax ", *uid, " (unknown to DCMTK) is not supported");
    }
    if (!h.has_meta_header) fail(h.file_name, ": not a DICOM file (no Part 10 header, and not a readable dataset: ", status.text(), ")");
    fail(h.file_name, ": cannot read: ", status.text(), " (damaged or truncated file)");
  }
  // A bare dataset is only believable if it carries the attributes every image has.
  if (!h.has_meta_header && (value_count(dataset, DCM_Rows) == 0 || value_count(dataset, DCM_SOPClassUID) + value_count(dataset, DCM_Modality) == 0)) {
    fail(h.file_name, ": not a DICOM image (no Part 10 header, and no image attributes)");
  }
  const auto meta_uid = get_string(*loaded.file->getMetaInfo(), DCM_TransferSyntaxUID);
  const DcmXfer xfer(dataset.getOriginalXfer());
  h.transfer_syntax_uid = meta_uid && !meta_uid->empty() ? *meta_uid : xfer.getXferID();
  const DcmXfer named(h.transfer_syntax_uid.c_str());
  h.transfer_syntax_name = named.getXfer() == EXS_Unknown ? "unknown" : named.getXferName();
  loaded.xfer = dataset.getOriginalXfer();
  read_geometry(dataset, h);
  read_image_attributes(dataset, h);
}

}  // namespace

LoadedFile load_file(const std::string& path, bool header_only) {
  init_dcmtk();
  LoadedFile loaded;
  DicomHeader& h = loaded.header;
  h.file_name = base_name(path);
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) fail(h.file_name, ": no such file");
  {
    std::ifstream in(path, std::ios::binary);
    char magic[132] = {};
    in.read(magic, sizeof magic);
    h.has_meta_header = in.gcount() == 132 && std::memcmp(magic + 128, "DICM", 4) == 0;
  }
  {
    const MappedFile mapped(path);
    check_nesting({mapped.data(), mapped.size()}, h.file_name);
  }
  loaded.file = std::make_unique<DcmFileFormat>();
  // Values over 4 KiB (the pixel data) stay in the file until asked for: sizes are checked first.
  const OFCondition status = header_only
      ? loaded.file->loadFileUntilTag(path.c_str(), EXS_Unknown, EGL_noChange, 4096, ERM_autoDetect, DCM_PixelData)
      : loaded.file->loadFile(path.c_str(), EXS_Unknown, EGL_noChange, 4096, ERM_autoDetect);
  check_and_read_header(loaded, status);
  return loaded;
}

LoadedFile load_buffer(std::span<const uint8_t> bytes, const std::string& name, bool header_only) {
  init_dcmtk();
  LoadedFile loaded;
  DicomHeader& h = loaded.header;
  h.file_name = name;
  h.has_meta_header = bytes.size() >= 132 && std::memcmp(bytes.data() + 128, "DICM", 4) == 0;
  check_nesting(bytes, name);
  loaded.file = std::make_unique<DcmFileFormat>();
  DcmInputBufferStream stream;
  stream.setBuffer(bytes.data(), offile_off_t(bytes.size()));
  stream.setEos();  // the whole object is in the buffer: running out of bytes means truncated
  loaded.file->transferInit();
  const OFCondition status = loaded.file->readUntilTag(stream, EXS_Unknown, EGL_noChange, DCM_MaxReadLength,
                                                        header_only ? DCM_PixelData : DCM_UndefinedTagKey);
  loaded.file->transferEnd();
  check_and_read_header(loaded, status);
  return loaded;
}

DicomHeader read_dicom_header(const std::string& path) { return std::move(load_file(path, true).header); }

DicomHeader read_dicom_header(std::span<const uint8_t> bytes, const std::string& name) {
  return std::move(load_buffer(bytes, name, true).header);
}

const FrameTransforms& DicomHeader::frame_transforms(uint32_t frame) const {
  if (frame >= frames) fail(file_name, ": frame ", frame + 1, " of ", frames, " does not exist");
  return per_frame.empty() ? transforms : per_frame[std::min<size_t>(frame, per_frame.size() - 1)];
}

size_t DicomImage::samples_per_frame() const { return size_t(header.rows) * header.columns * header.samples_per_pixel; }

int64_t DicomImage::stored(uint32_t frame, size_t i) const {
  const size_t index = size_t(frame) * samples_per_frame() + i;
  uint32_t raw = 0;
  switch (pixels.bytes_per_sample) {
    case 1: raw = pixels.bytes[index]; break;
    case 2: {
      uint16_t v;
      std::memcpy(&v, &pixels.bytes[index * 2], 2);
      raw = v;
      break;
    }
    default: std::memcpy(&raw, &pixels.bytes[index * 4], 4); break;
  }
  const int bits = header.bits_stored;
  const uint64_t mask = (uint64_t(1) << bits) - 1;
  const uint64_t value = (uint64_t(raw) >> (header.high_bit + 1 - bits)) & mask;
  // Two's complement in Bits Stored bits: subtract 2^bits when the sign bit is set.
  return header.is_signed && (value >> (bits - 1)) ? int64_t(value) - int64_t(mask) - 1 : int64_t(value);
}

std::vector<int64_t> DicomImage::frame_values(uint32_t frame) const {
  if (frame >= header.frames) fail(header.file_name, ": frame ", frame + 1, " of ", header.frames, " does not exist");
  std::vector<int64_t> values(samples_per_frame());
  const size_t first = size_t(frame) * values.size();
  const int bits = header.bits_stored;
  const int shift = header.high_bit + 1 - bits;
  const uint64_t mask = (uint64_t(1) << bits) - 1;
  const uint64_t sign = header.is_signed ? uint64_t(1) << (bits - 1) : 0;
  // The same masking and sign extension as stored(), with the container width hoisted out of the loop.
  const auto fill = [&](auto container) {
    using T = decltype(container);
    const uint8_t* src = pixels.bytes.data() + first * sizeof(T);
    for (size_t i = 0; i < values.size(); ++i) {
      T raw;
      std::memcpy(&raw, src + i * sizeof(T), sizeof(T));
      const uint64_t v = (uint64_t(raw) >> shift) & mask;
      values[i] = (v & sign) ? int64_t(v) - int64_t(mask) - 1 : int64_t(v);
    }
  };
  switch (pixels.bytes_per_sample) {
    case 1: fill(uint8_t{}); break;
    case 2: fill(uint16_t{}); break;
    default: fill(uint32_t{}); break;
  }
  return values;
}

}  // namespace medlab::dicom
