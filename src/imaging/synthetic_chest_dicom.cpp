// Synthetic chest films as DICOM (see synthetic_chest_dicom.h): Digital X-Ray Image Storage - For
// Presentation, MONOCHROME2, 16 bits allocated and 12 stored, explicit VR little endian.
#include "imaging/synthetic_chest_dicom.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>

#include <cstdio>

#include "core/error.h"
#include "imaging/synthetic_chest.h"

namespace medlab {
namespace {

constexpr int kFilmWidthMicrometres = 430000;  // a 43 cm detector across the film

}  // namespace

std::string synthetic_uid(uint64_t seed, int case_number, int level) {
  const uint64_t hash = splitmix64(splitmix64(splitmix64(seed) ^ uint64_t(case_number)) ^ uint64_t(level));
  return "2.25." + std::to_string(hash);
}

void write_synthetic_chest_dicom(const std::string& path, const ChestFilm& film, const TestCase& test_case,
                                 uint64_t seed, int case_number) {
  DcmFileFormat file;
  DcmDataset& d = *file.getDataset();
  const std::string instance = synthetic_uid(seed, case_number, 3);
  const int spacing = kFilmWidthMicrometres / film.size;
  char spacing_text[32];
  std::snprintf(spacing_text, sizeof spacing_text, "%d.%03d\\%d.%03d", spacing / 1000, spacing % 1000, spacing / 1000,
                spacing % 1000);
  const std::string patient_id = "SYNTH-" + std::to_string(case_number);
  const std::string comment = "Synthetic test image drawn by medlab make-test-set (" + test_case.category +
                              "); not a patient, not anatomy";
  auto put = [&](const DcmTagKey& tag, const std::string& value) {
    if (d.putAndInsertString(tag, value.c_str()).bad()) fail(path, ": DCMTK rejected the value of ", DcmTag(tag).getTagName());
  };
  put(DCM_SpecificCharacterSet, "ISO_IR 100");
  put(DCM_ImageType, "DERIVED\\PRIMARY");
  put(DCM_SOPClassUID, UID_DigitalXRayImageStorageForPresentation);
  put(DCM_SOPInstanceUID, instance);
  put(DCM_StudyDate, "20000101");
  put(DCM_SeriesDate, "20000101");
  put(DCM_ContentDate, "20000101");
  put(DCM_StudyTime, "000000");
  put(DCM_SeriesTime, "000000");
  put(DCM_ContentTime, "000000");
  put(DCM_AccessionNumber, "");
  put(DCM_Modality, "DX");
  put(DCM_PresentationIntentType, "FOR PRESENTATION");
  put(DCM_Manufacturer, "medlab (synthetic)");
  put(DCM_ReferringPhysicianName, "");
  put(DCM_StudyDescription, "Synthetic chest test film");
  put(DCM_SeriesDescription, test_case.category);
  put(DCM_PatientName, "SYNTHETIC^TEST");
  put(DCM_PatientID, patient_id);
  put(DCM_PatientBirthDate, "");
  put(DCM_PatientSex, "O");
  put(DCM_PatientIdentityRemoved, "YES");
  put(DCM_BodyPartExamined, "CHEST");
  put(DCM_ViewPosition, "PA");
  put(DCM_ImagerPixelSpacing, spacing_text);
  put(DCM_StudyInstanceUID, synthetic_uid(seed, case_number, 1));
  put(DCM_SeriesInstanceUID, synthetic_uid(seed, case_number, 2));
  put(DCM_StudyID, "1");
  put(DCM_SeriesNumber, "1");
  put(DCM_InstanceNumber, "1");
  put(DCM_PatientOrientation, "L\\F");
  put(DCM_ImageComments, comment);
  put(DCM_BurnedInAnnotation, "NO");
  d.putAndInsertUint16(DCM_SamplesPerPixel, 1);
  put(DCM_PhotometricInterpretation, "MONOCHROME2");
  d.putAndInsertUint16(DCM_Rows, Uint16(film.size));
  d.putAndInsertUint16(DCM_Columns, Uint16(film.size));
  put(DCM_PixelSpacing, spacing_text);
  d.putAndInsertUint16(DCM_BitsAllocated, 16);
  d.putAndInsertUint16(DCM_BitsStored, 12);
  d.putAndInsertUint16(DCM_HighBit, 11);
  d.putAndInsertUint16(DCM_PixelRepresentation, 0);
  put(DCM_PixelIntensityRelationship, "LIN");
  d.putAndInsertSint16(DCM_PixelIntensityRelationshipSign, 1);
  put(DCM_WindowCenter, std::to_string(kChestFilmWindowCenter));
  put(DCM_WindowWidth, std::to_string(kChestFilmWindowWidth));
  put(DCM_WindowCenterWidthExplanation, "FILM");
  put(DCM_RescaleIntercept, "0");
  put(DCM_RescaleSlope, "1");
  put(DCM_RescaleType, "US");
  put(DCM_PresentationLUTShape, "IDENTITY");
  put(DCM_LossyImageCompression, "00");
  if (film.pixels.size() != size_t(film.size) * film.size) fail(path, ": film has the wrong pixel count");
  d.putAndInsertUint16Array(DCM_PixelData, film.pixels.data(), film.pixels.size());
  const OFCondition status = file.saveFile(path.c_str(), EXS_LittleEndianExplicit);
  if (status.bad()) fail(path, ": cannot write: ", status.text());
}

}  // namespace medlab
