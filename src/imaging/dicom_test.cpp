// DICOM reading, the C.11 pipeline, MedGemma modes, series sorting and sampling, bad input.
// pydicom parity on real files is tests/parity/pydicom_parity.py; these pin the formulas themselves.
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include "core/error.h"
#include "imaging/dicom_file.h"
#include "imaging/dicom_render.h"
#include "imaging/dicom_series.h"
#include "imaging/dicom_test_files.h"
#include "imaging/png_write.h"

namespace medlab::dicom {
namespace {

using testing::TestImage;
using testing::TempFolder;
using testing::write_test_dicom;

// A signed CT row of HU values (stored = HU + 1024 with intercept -1024).
TestImage ct_image(const std::vector<int>& hu) {
  TestImage image;
  image.rows = 1;
  image.columns = uint32_t(hu.size());
  image.is_signed = true;
  for (int v : hu) image.pixels.push_back(uint16_t(int16_t(v + 1024)));
  image.extra = [](DcmDataset& d) {
    d.putAndInsertString(DCM_RescaleSlope, "1");
    d.putAndInsertString(DCM_RescaleIntercept, "-1024");
  };
  return image;
}

DicomImage write_and_read(const std::string& name, const TestImage& image, const std::string& syntax = "") {
  const TempFolder dir(name);
  const std::string path = dir.path() + "/" + name + ".dcm";
  write_test_dicom(path, image, syntax);
  return read_dicom(path);
}

template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(DicomVoi, LinearMatchesTheStandardsBreakpoints) {
  // C.11.2.1.2.1 with c = 50, w = 351: below c - 0.5 - (w-1)/2 = -125.5 is 0, above 224.5 is 1.
  EXPECT_EQ(voi_fraction(-125.5, 50, 351, VoiFunction::linear), 0.0);
  EXPECT_EQ(voi_fraction(224.6, 50, 351, VoiFunction::linear), 1.0);
  EXPECT_DOUBLE_EQ(voi_fraction(49.5, 50, 351, VoiFunction::linear), 0.5);
  EXPECT_DOUBLE_EQ(voi_fraction(0, 50, 351, VoiFunction::linear), (0 - 49.5) / 350 + 0.5);
}

TEST(DicomVoi, LinearExactAndSigmoid) {
  // C.11.2.1.3.2: no half-pixel shift; C.11.2.1.3.1: 1 / (1 + exp(-4 (x - c) / w)).
  EXPECT_EQ(voi_fraction(-125.5, 50, 351, VoiFunction::linear_exact), 0.0);
  EXPECT_DOUBLE_EQ(voi_fraction(50, 50, 351, VoiFunction::linear_exact), 0.5);
  EXPECT_DOUBLE_EQ(voi_fraction(0, 50, 351, VoiFunction::linear_exact), -50.0 / 351 + 0.5);
  EXPECT_DOUBLE_EQ(voi_fraction(50, 50, 351, VoiFunction::sigmoid), 0.5);
  EXPECT_DOUBLE_EQ(voi_fraction(100, 50, 200, VoiFunction::sigmoid), 1 / (1 + std::exp(-1.0)));
}

TEST(DicomRender, FileWindowRescaleAndPresets) {
  TestImage image = ct_image({-1000, -600, 0, 40, 240, 1000});
  const auto base = image.extra;
  image.extra = [base](DcmDataset& d) {
    base(d);
    d.putAndInsertString(DCM_WindowCenter, "40\\-600");
    d.putAndInsertString(DCM_WindowWidth, "400\\1500");
  };
  const DicomImage dicom = write_and_read("windows", image);
  // File window 1 is C40 W400: -160..240 HU.
  const Rendered first = render(dicom, parse_window("file"));
  const std::vector<uint8_t> expected_first = {0, 0, 102, 128, 255, 255};
  for (size_t i = 0; i < 6; ++i) EXPECT_NEAR(first.pixels[i], expected_first[i], 1) << i;
  EXPECT_EQ(first.pixels[3], uint8_t(std::floor(((40 - 39.5) / 399 + 0.5) * 255 + 0.5)));
  // file:2 and the lung preset are both C-600 W1500.
  EXPECT_EQ(render(dicom, parse_window("file:2")).pixels, render(dicom, parse_window("lung")).pixels);
  EXPECT_EQ(render(dicom, parse_window("-600,1500")).pixels, render(dicom, parse_window("lung")).pixels);
  EXPECT_NE(error_of([&] { render(dicom, parse_window("file:3")); }).find("has 2 windows"), std::string::npos);
}

TEST(DicomRender, NoWindowMeansFullRangeAndMonochrome1Inverts) {
  TestImage image;
  image.rows = 1;
  image.columns = 3;
  image.pixels = {100, 200, 300};
  image.modality = "CR";
  EXPECT_EQ(render(write_and_read("full", image), parse_window("file")).pixels, (std::vector<uint8_t>{0, 128, 255}));
  image.photometric = "MONOCHROME1";
  EXPECT_EQ(render(write_and_read("mono1", image), parse_window("file")).pixels, (std::vector<uint8_t>{255, 127, 0}));
}

TEST(DicomRender, ModalityLutSequenceClampsOutOfRangeInput) {
  TestImage image;
  image.rows = 1;
  image.columns = 4;
  image.pixels = {0, 10, 11, 500};
  image.extra = [](DcmDataset& d) {
    DcmItem* item = nullptr;
    d.findOrCreateSequenceItem(DCM_ModalityLUTSequence, item, -2);
    const Uint16 descriptor[3] = {3, 10, 16};
    item->putAndInsertUint16Array(DCM_LUTDescriptor, descriptor, 3);
    const Uint16 data[3] = {1000, 2000, 4000};
    item->putAndInsertUint16Array(DCM_LUTData, data, 3);
  };
  const DicomImage dicom = write_and_read("modality_lut", image);
  EXPECT_EQ(modality_values(dicom, 0), (std::vector<double>{1000, 1000, 2000, 4000}));
}

TEST(DicomRender, FunctionalGroupsGiveEachFrameItsTransforms) {
  TestImage image;
  image.rows = 1;
  image.columns = 2;
  image.frames = 2;
  image.pixels = {10, 20, 10, 20};
  image.extra = [](DcmDataset& d) {
    DcmItem* shared = nullptr;
    DcmItem* macro = nullptr;
    d.findOrCreateSequenceItem(DCM_SharedFunctionalGroupsSequence, shared, -2);
    shared->findOrCreateSequenceItem(DCM_PixelValueTransformationSequence, macro, -2);
    macro->putAndInsertString(DCM_RescaleSlope, "2");
    macro->putAndInsertString(DCM_RescaleIntercept, "-10");
    for (int f = 0; f < 2; ++f) {
      DcmItem* frame = nullptr;
      d.findOrCreateSequenceItem(DCM_PerFrameFunctionalGroupsSequence, frame, f);
      frame->findOrCreateSequenceItem(DCM_FrameVOILUTSequence, macro, -2);
      macro->putAndInsertString(DCM_WindowCenter, f == 0 ? "20" : "5");
      macro->putAndInsertString(DCM_WindowWidth, "20");
      macro->putAndInsertString(DCM_VOILUTFunction, "LINEAR_EXACT");
    }
  };
  const DicomImage dicom = write_and_read("functional_groups", image);
  EXPECT_EQ(modality_values(dicom, 1), (std::vector<double>{10, 30}));
  // Frame 1: window 10..30 -> 10 is 0, 30 is 255; frame 2: window -5..15 -> 10 is 0.75 (191), 30 saturates.
  EXPECT_EQ(render(dicom, parse_window("file"), 0).pixels, (std::vector<uint8_t>{0, 255}));
  EXPECT_EQ(render(dicom, parse_window("file"), 1).pixels, (std::vector<uint8_t>{191, 255}));
}

TEST(DicomFile, HugeFrameCountWithFunctionalGroupsAllocatesByItems) {
  // Number of Frames 2^31 - 1 beside a shared functional group: the header must not hold a copy of the
  // group per declared frame (hundreds of GB), and reading the pixels is refused by their size.
  TestImage image;
  image.pixels.assign(16, 7);
  image.extra = [](DcmDataset& d) {
    DcmItem* shared = nullptr;
    DcmItem* macro = nullptr;
    d.findOrCreateSequenceItem(DCM_SharedFunctionalGroupsSequence, shared, -2);
    shared->findOrCreateSequenceItem(DCM_PixelValueTransformationSequence, macro, -2);
    macro->putAndInsertString(DCM_RescaleSlope, "2");
    d.putAndInsertString(DCM_NumberOfFrames, "2147483647");
  };
  const TempFolder dir("frames");
  const std::string path = dir.path() + "/frames.dcm";
  write_test_dicom(path, image);
  const DicomHeader h = read_dicom_header(path);
  EXPECT_EQ(h.frames, 2147483647u);
  EXPECT_LE(h.per_frame.size(), 1u);
  ASSERT_TRUE(h.frame_transforms(2147483646).rescale);
  EXPECT_EQ(h.frame_transforms(2147483646).rescale->slope, 2.0);
  EXPECT_THROW(read_dicom(path), Error);
}

TEST(DicomFile, DeeplyNestedSequencesAreRefusedBeforeParsing) {
  // 20000 sequences of one undefined-length item each, 640 KB, in implicit VR: DCMTK's recursive reader
  // overflows an 8 MB stack at about 5000.
  const auto tag = [](uint16_t group, uint16_t element, uint32_t length) {
    std::string s(8, '\0');
    const uint8_t b[8] = {uint8_t(group), uint8_t(group >> 8), uint8_t(element), uint8_t(element >> 8),
                          uint8_t(length), uint8_t(length >> 8), uint8_t(length >> 16), uint8_t(length >> 24)};
    std::memcpy(s.data(), b, 8);
    return s;
  };
  std::string bytes = tag(0x0008, 0x0060, 2) + "CT";
  for (int i = 0; i < 20000; ++i) bytes += tag(0x0008, 0x1115, 0xffffffff) + tag(0xfffe, 0xe000, 0xffffffff);
  for (int i = 0; i < 20000; ++i) bytes += tag(0xfffe, 0xe00d, 0) + tag(0xfffe, 0xe0dd, 0);
  const std::span<const uint8_t> span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  const std::string message = error_of([&] { read_dicom_header(span, "upload.dcm"); });
  EXPECT_NE(message.find("upload.dcm: sequences nest more than 64 deep"), std::string::npos) << message;
  const TempFolder dir("nested");
  const std::string path = dir.path() + "/nested.dcm";
  std::ofstream(path, std::ios::binary) << bytes;
  EXPECT_NE(error_of([&] { read_dicom_header(path); }).find("nest more than 64"), std::string::npos);
}

TEST(DicomFile, ValuesLongerThanTheUploadAreRefusedBeforeDcmtkAllocatesThem) {
  // Found by fuzzing: DCMTK sizes a value's buffer from its claimed length, 4 GB for a few hundred bytes.
  const auto element = [](uint16_t group, uint16_t number, uint32_t length) {
    const uint8_t b[8] = {uint8_t(group), uint8_t(group >> 8), uint8_t(number), uint8_t(number >> 8),
                          uint8_t(length), uint8_t(length >> 8), uint8_t(length >> 16), uint8_t(length >> 24)};
    return std::string(reinterpret_cast<const char*>(b), 8);
  };
  const std::string value = element(0x0008, 0x0060, 2) + "CT" + element(0x0010, 0x4000, 0xfffffff0) + "text";
  std::span<const uint8_t> span(reinterpret_cast<const uint8_t*>(value.data()), value.size());
  std::string message = error_of([&] { read_dicom(span, "upload.dcm"); });
  EXPECT_NE(message.find("upload.dcm: not a DICOM file (no Part 10 header, and element (0010,4000) claims 4294967280 bytes where 4 remain)"),
            std::string::npos) << message;
  // An encapsulated fragment (an item) that claims the same.
  const std::string fragment = element(0x0008, 0x0060, 2) + "CT" + element(0x7fe0, 0x0010, 0xffffffff) +
                               element(0xfffe, 0xe000, 0) + element(0xfffe, 0xe000, 0xfffffff0) + "pixels";
  span = {reinterpret_cast<const uint8_t*>(fragment.data()), fragment.size()};
  message = error_of([&] { read_dicom(span, "upload.dcm"); });
  EXPECT_NE(message.find("an item claims 4294967280 bytes where 6 remain"), std::string::npos) << message;
}

TEST(DicomRender, CtRgbMatchesTheNotebooksBytes) {
  // Expected bytes computed with the notebook's numpy code (float32, np.round half to even).
  const DicomImage dicom = write_and_read("ct_rgb", ct_image({-1024, 0, 40, 100, -135, 215, 1500, -2000}));
  const Rendered r = render(dicom, parse_window("ct-rgb"));
  ASSERT_EQ(r.channels, 3u);
  const std::vector<uint8_t> expected = {0, 0, 0, 128, 98, 0, 132, 128, 128, 140, 171, 255,
                                         111, 0, 0, 154, 255, 255, 255, 255, 255, 0, 0, 0};
  EXPECT_EQ(r.pixels, expected);
}

TEST(DicomRender, CxrUsesTheHandlersWindowThenInverts) {
  TestImage image;
  image.rows = 1;
  image.columns = 3;
  image.pixels = {0, 50, 300};
  image.photometric = "MONOCHROME1";
  image.modality = "DX";
  image.extra = [](DcmDataset& d) {
    d.putAndInsertString(DCM_WindowCenter, "100");
    d.putAndInsertString(DCM_WindowWidth, "201");
  };
  // floor(201 / 2) = 100: window 0..200, 50 -> 63.75 -> 64, then inverted.
  EXPECT_EQ(render(write_and_read("cxr", image), parse_window("cxr")).pixels, (std::vector<uint8_t>{255, 191, 0}));
}

TEST(DicomHash, IndependentOfEncodingAndSensitiveToPixels) {
  TestImage image;
  image.rows = 16;
  image.columns = 24;
  image.frames = 3;
  image.bits_stored = 12;
  std::mt19937 random(7);
  for (size_t i = 0; i < size_t(image.rows) * image.columns * image.frames; ++i) image.pixels.push_back(uint16_t(random() % 4096));
  const std::string reference = pixel_hash(write_and_read("hash_native", image));
  for (const char* syntax : {"rle", "jpeg-ls", "big-endian", "implicit", "deflated"}) {
    const DicomImage dicom = write_and_read(std::string("hash_") + syntax, image, syntax);
    EXPECT_EQ(pixel_hash(dicom), reference) << syntax << " (" << dicom.header.transfer_syntax_name << ")";
  }
  image.pixels[100] ^= 1;
  EXPECT_NE(pixel_hash(write_and_read("hash_changed", image)), reference);
}

TEST(DicomRead, BadInputFailsWithTheTagAtFault) {
  const TempFolder folder("bad");
  const std::string& dir = folder.path();
  TestImage image;
  image.pixels.assign(16, 7);
  image.extra = [](DcmDataset& d) { d.findAndDeleteElement(DCM_Rows); };
  write_test_dicom(dir + "/no_rows.dcm", image);
  EXPECT_EQ(error_of([&] { read_dicom(dir + "/no_rows.dcm"); }), "no_rows.dcm: (0028,0010) Rows is missing");

  image.extra = [](DcmDataset& d) { d.putAndInsertUint16(DCM_Rows, 400); };
  write_test_dicom(dir + "/short.dcm", image);
  EXPECT_NE(error_of([&] { read_dicom(dir + "/short.dcm"); }).find("(7FE0,0010) Pixel Data has 32 bytes"), std::string::npos);

  image.extra = nullptr;
  write_test_dicom(dir + "/ok.dcm", image);
  ReadOptions tiny;
  tiny.max_pixel_bytes = 16;
  EXPECT_NE(error_of([&] { read_dicom(dir + "/ok.dcm", tiny); }).find("limit on decoded pixel data"), std::string::npos);

  std::ofstream(dir + "/text.dcm") << "not a DICOM file at all, just some words to read";
  EXPECT_NE(error_of([&] { read_dicom(dir + "/text.dcm"); }).find("text.dcm: not a DICOM"), std::string::npos);
}

// Uploads: the same object from memory reads as from its file, with the same errors.
TEST(DicomRead, FromBytesAsFromTheFile) {
  const TempFolder folder("bytes");
  TestImage image;
  image.rows = 4;
  image.columns = 6;
  for (int i = 0; i < 24; ++i) image.pixels.push_back(uint16_t(i * 100));
  for (const char* syntax : {"", "rle", "implicit"}) {
    const std::string path = folder.path() + "/x" + syntax + ".dcm";
    write_test_dicom(path, image, syntax);
    std::ifstream in(path, std::ios::binary);
    const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const DicomImage from_file = read_dicom(path);
    const DicomImage from_bytes = read_dicom(bytes, "upload");
    EXPECT_EQ(from_bytes.header.file_name, "upload");
    EXPECT_EQ(from_bytes.header.transfer_syntax_uid, from_file.header.transfer_syntax_uid) << syntax;
    EXPECT_EQ(pixel_hash(from_bytes), pixel_hash(from_file)) << syntax;
    EXPECT_EQ(read_dicom_header(bytes, "upload").columns, 6u);
    const std::vector<uint8_t> cut(bytes.begin(), bytes.end() - 20);
    EXPECT_NE(error_of([&] { read_dicom(cut, "upload"); }).find("upload: "), std::string::npos) << syntax;
  }
  const std::string words = "not a DICOM file at all, just some words to read";
  EXPECT_NE(error_of([&] { read_dicom(std::vector<uint8_t>(words.begin(), words.end()), "upload"); }).find("upload: not a DICOM"),
            std::string::npos);
}

TEST(DicomRead, NothingPatientIdentifyingInTheHeader) {
  // The header type has no field for patient attributes; the file's patient name is "Secret^Patient".
  const DicomImage dicom = write_and_read("privacy", ct_image({0, 1}));
  const DicomHeader& h = dicom.header;
  for (const std::string& s : {h.file_name, h.modality, h.photometric, h.transfer_syntax_name}) {
    EXPECT_EQ(s.find("Secret"), std::string::npos);
  }
}

TEST(DicomSeries, SortsAlongTheNormalAndFallsBackToInstanceNumber) {
  const TempFolder folder("series");
  const std::string& dir = folder.path();
  const std::vector<int> order = {3, 0, 4, 1, 2};  // file k holds slice order[k]
  for (size_t k = 0; k < order.size(); ++k) {
    TestImage image;
    image.pixels.assign(16, uint16_t(order[k]));
    const int z = order[k];
    image.extra = [z](DcmDataset& d) {
      d.putAndInsertString(DCM_SeriesInstanceUID, "1.2.3.4");
      // Oblique: rows along x, columns along (0, cos 30, -sin 30); the normal is (0, 0.5, 0.866).
      d.putAndInsertString(DCM_ImageOrientationPatient, "1\\0\\0\\0\\0.8660254\\-0.5");
      d.putAndInsertString(DCM_ImagePositionPatient, ("0\\" + std::to_string(0.5 * z) + "\\" + std::to_string(0.8660254 * z)).c_str());
      d.putAndInsertString(DCM_InstanceNumber, std::to_string(10 - z).c_str());
    };
    write_test_dicom(dir + "/f" + std::to_string(k) + ".dcm", image);
  }
  std::ofstream(dir + "/notes.txt") << "not an image";
  const FolderScan scan = scan_folder(dir);
  ASSERT_EQ(scan.series.size(), 1u);
  EXPECT_EQ(scan.skipped.size(), 1u);
  const Series& s = scan.series[0];
  EXPECT_EQ(s.order, SliceOrder::position);
  for (size_t i = 0; i < s.slices.size(); ++i) EXPECT_EQ(s.slices[i].header.file_name, "f" + std::to_string(
      std::find(order.begin(), order.end(), int(i)) - order.begin()) + ".dcm");

  std::vector<Slice> no_position = s.slices;
  for (Slice& slice : no_position) slice.header.geometry.position.reset();
  EXPECT_EQ(sort_slices(no_position), SliceOrder::instance_number);
  EXPECT_EQ(no_position.front().header.geometry.instance_number, 6);  // 10 - z, z = 4
}

TEST(DicomSeries, SamplesLikeTheMedGemmaNotebook) {
  const auto all = sample_slices(40);
  EXPECT_EQ(all.size(), 40u);
  // Python: [int(round(i / 85 * (n - 1))) for i in range(1, 86)].
  const auto picked = sample_slices(512);
  ASSERT_EQ(picked.size(), 85u);
  EXPECT_EQ(std::vector<size_t>(picked.begin(), picked.begin() + 3), (std::vector<size_t>{6, 12, 18}));
  EXPECT_EQ(picked.back(), 511u);
  const auto hundred = sample_slices(100);
  EXPECT_EQ(std::vector<size_t>(hundred.begin(), hundred.begin() + 10), (std::vector<size_t>{1, 2, 3, 5, 6, 7, 8, 9, 10, 12}));
}

TEST(DicomWindow, ParsesNamesAndRejectsNonsense) {
  EXPECT_EQ(parse_window("brain").center, 40);
  EXPECT_EQ(parse_window("brain").width, 80);
  EXPECT_EQ(parse_window("40,400,SIGMOID").function, VoiFunction::sigmoid);
  EXPECT_EQ(parse_window("file:2").index, 1u);
  EXPECT_NE(error_of([] { parse_window("lungs"); }).find("--window lungs"), std::string::npos);
  EXPECT_NE(error_of([] { parse_window("40,0"); }).find("too small"), std::string::npos);
  EXPECT_NE(error_of([] { parse_window("file:0"); }).find("from 1"), std::string::npos);
}

TEST(PngWrite, WritesASignature) {
  const TempFolder dir("png");
  const std::string path = dir.path() + "/x.png";
  const uint8_t pixels[6] = {0, 50, 100, 150, 200, 250};
  write_png(path, 3, 2, 1, pixels);
  std::ifstream in(path, std::ios::binary);
  char signature[8];
  in.read(signature, 8);
  EXPECT_EQ(std::string(signature + 1, 3), "PNG");
}

TEST(PngWrite, EncodesToMemoryWhatTheFileHolds) {
  const TempFolder dir("png_memory");
  const std::string path = dir.path() + "/x.png";
  const uint8_t pixels[18] = {0, 50, 100, 150, 200, 250, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  write_png(path, 3, 2, 3, pixels);
  std::ifstream in(path, std::ios::binary);
  const std::vector<uint8_t> file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(encode_png(3, 2, 3, pixels), file);
}

}  // namespace
}  // namespace medlab::dicom
