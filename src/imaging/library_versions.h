// Versions of the image libraries, as loaded at run time where the library can say (core/library_versions.h).
#pragma once

#include "core/library_versions.h"

namespace medlab {

// libpng, libjpeg-turbo and zlib (PNG and JPEG decoding; medlab_imaging).
LibraryVersions image_library_versions();
// DCMTK and OpenJPEG (DICOM parsing and its codecs; medlab_dicom).
LibraryVersions dicom_library_versions();

}  // namespace medlab
