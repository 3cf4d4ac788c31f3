# DICOM reading and rendering: DCMTK parses and decompresses, OpenJPEG decodes JPEG 2000, libpng writes
# the rendered images.
find_package(DCMTK REQUIRED)
find_package(PNG REQUIRED)
find_package(ZLIB REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(OPENJPEG REQUIRED IMPORTED_TARGET libopenjp2)

add_library(medlab_dicom STATIC
  ${CMAKE_CURRENT_LIST_DIR}/dicom_file.cpp
  ${CMAKE_CURRENT_LIST_DIR}/dicom_nesting.cpp
  ${CMAKE_CURRENT_LIST_DIR}/dicom_decode.cpp
  ${CMAKE_CURRENT_LIST_DIR}/dicom_jpeg2000.cpp
  ${CMAKE_CURRENT_LIST_DIR}/dicom_render.cpp
  ${CMAKE_CURRENT_LIST_DIR}/dicom_series.cpp
  ${CMAKE_CURRENT_LIST_DIR}/dicom_library_versions.cpp
  ${CMAKE_CURRENT_LIST_DIR}/synthetic_chest_dicom.cpp
  ${CMAKE_CURRENT_LIST_DIR}/png_write.cpp)
# Debian's DCMTKConfig.cmake exports DCMTK::<lib> targets; older configs only set DCMTK_LIBRARIES.
if(TARGET DCMTK::dcmdata)
  set(MEDLAB_DCMTK_LIBS DCMTK::dcmjpls DCMTK::dcmjpeg DCMTK::dcmimgle DCMTK::dcmdata DCMTK::oflog DCMTK::ofstd)
else()
  set(MEDLAB_DCMTK_LIBS ${DCMTK_LIBRARIES})
  target_include_directories(medlab_dicom SYSTEM PRIVATE ${DCMTK_INCLUDE_DIRS})
endif()
target_link_libraries(medlab_dicom PUBLIC medlab_core PRIVATE ${MEDLAB_DCMTK_LIBS} PkgConfig::OPENJPEG PNG::PNG ZLIB::ZLIB)

# Synthetic DICOM files written through DCMTK's encoders: shared by the unit tests and the benchmark.
add_library(medlab_dicom_testing STATIC EXCLUDE_FROM_ALL ${CMAKE_CURRENT_LIST_DIR}/dicom_test_files.cpp)
target_link_libraries(medlab_dicom_testing PUBLIC medlab_dicom ${MEDLAB_DCMTK_LIBS})

medlab_test(dicom_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/dicom_test.cpp LIBS medlab_dicom_testing)

# Synthetic chest films: deterministic pixels, category differences, DICOM round trip, reports the labeller reads.
medlab_test(synthetic_chest_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/synthetic_chest_test.cpp
            LIBS medlab_dicom_testing medlab_imaging medlab_eval)
