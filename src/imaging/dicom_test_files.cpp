// Synthetic DICOM writer for the unit tests, through DCMTK's encoders.
#include "imaging/dicom_test_files.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcrleerg.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmjpls/djencode.h>
#include <dcmtk/dcmjpls/djrparam.h>

#include <unistd.h>

#include <filesystem>

#include "core/error.h"

namespace medlab::dicom::testing {

void write_test_dicom(const std::string& path, const TestImage& image, const std::string& transfer_syntax) {
  static const bool encoders = [] {
    DcmRLEEncoderRegistration::registerCodecs();
    DJLSEncoderRegistration::registerCodecs();
    return true;
  }();
  (void)encoders;
  DcmFileFormat file;
  DcmDataset& d = *file.getDataset();
  char uid[100];
  d.putAndInsertString(DCM_SOPClassUID, UID_SecondaryCaptureImageStorage);
  d.putAndInsertString(DCM_SOPInstanceUID, dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT));
  d.putAndInsertString(DCM_Modality, image.modality.c_str());
  d.putAndInsertString(DCM_PatientName, "Secret^Patient");  // must never show up in medlab's output
  d.putAndInsertUint16(DCM_Rows, Uint16(image.rows));
  d.putAndInsertUint16(DCM_Columns, Uint16(image.columns));
  d.putAndInsertUint16(DCM_SamplesPerPixel, 1);
  d.putAndInsertString(DCM_PhotometricInterpretation, image.photometric.c_str());
  d.putAndInsertUint16(DCM_BitsAllocated, 16);
  d.putAndInsertUint16(DCM_BitsStored, Uint16(image.bits_stored));
  d.putAndInsertUint16(DCM_HighBit, Uint16(image.bits_stored - 1));
  d.putAndInsertUint16(DCM_PixelRepresentation, image.is_signed ? 1 : 0);
  if (image.frames > 1) d.putAndInsertString(DCM_NumberOfFrames, std::to_string(image.frames).c_str());
  if (image.pixels.size() != size_t(image.rows) * image.columns * image.frames) fail(path, ": test image has the wrong pixel count");
  d.putAndInsertUint16Array(DCM_PixelData, image.pixels.data(), image.pixels.size());
  if (image.extra) image.extra(d);
  E_TransferSyntax xfer = EXS_LittleEndianExplicit;
  if (transfer_syntax == "rle") xfer = EXS_RLELossless;
  else if (transfer_syntax == "jpeg-ls") xfer = EXS_JPEGLSLossless;
  else if (transfer_syntax == "big-endian") xfer = EXS_BigEndianExplicit;
  else if (transfer_syntax == "implicit") xfer = EXS_LittleEndianImplicit;
  else if (transfer_syntax == "deflated") xfer = EXS_DeflatedLittleEndianExplicit;
  else if (!transfer_syntax.empty()) fail("test transfer syntax ", transfer_syntax, " is unknown");
  if (d.chooseRepresentation(xfer, nullptr).bad()) fail(path, ": DCMTK cannot encode ", transfer_syntax);
  const OFCondition status = file.saveFile(path.c_str(), xfer);
  if (status.bad()) fail(path, ": cannot write: ", status.text());
}

TempFolder::TempFolder(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("medlab_dicom_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  path_ = dir.string();
}

TempFolder::~TempFolder() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

}  // namespace medlab::dicom::testing
