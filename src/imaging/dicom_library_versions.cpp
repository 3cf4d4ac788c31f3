#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <openjpeg.h>
#include <opj_config.h>

#include "imaging/library_versions.h"

namespace medlab {
namespace {

// DCMTK has no version call, but the implementation class UID it writes into a file's meta header is
// compiled into libdcmdata and ends in the release: "1.2.276.0.7230010.3.0.3.6.7" for 3.6.7.
std::string dcmtk_loaded_version() {
  DcmFileFormat file;
  file.validateMetaInfo(EXS_LittleEndianExplicit);
  OFString uid;
  file.getMetaInfo()->findAndGetOFString(DCM_ImplementationClassUID, uid);
  const std::string prefix = OFFIS_UID_ROOT ".0.";
  const std::string text = uid.c_str();
  return text.starts_with(prefix) ? text.substr(prefix.size()) : "unknown (implementation UID " + text + ")";
}

}  // namespace

LibraryVersions dicom_library_versions() {
  const std::string openjpeg_headers = std::to_string(OPJ_VERSION_MAJOR) + "." + std::to_string(OPJ_VERSION_MINOR) +
                                       "." + std::to_string(OPJ_VERSION_BUILD);
  return {{"DCMTK", loaded_version(dcmtk_loaded_version(), OFFIS_DCMTK_VERSION_STRING)},
          {"OpenJPEG", loaded_version(opj_version(), openjpeg_headers)}};
}

}  // namespace medlab
