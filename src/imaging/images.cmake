# PNG/JPEG decoding (libpng, libjpeg-turbo) and the model's image preprocessing.
find_package(PNG REQUIRED)
find_package(JPEG REQUIRED)
find_package(ZLIB REQUIRED)

add_library(medlab_imaging STATIC ${CMAKE_CURRENT_LIST_DIR}/decode.cpp ${CMAKE_CURRENT_LIST_DIR}/preprocess.cpp
            ${CMAKE_CURRENT_LIST_DIR}/region.cpp ${CMAKE_CURRENT_LIST_DIR}/synthetic_image.cpp
            ${CMAKE_CURRENT_LIST_DIR}/synthetic_chest.cpp
            ${CMAKE_CURRENT_LIST_DIR}/library_versions.cpp)
# zlib is libpng's; medlab links it only to ask its version (library_versions.cpp).
target_link_libraries(medlab_imaging PUBLIC medlab_core PRIVATE PNG::PNG JPEG::JPEG ZLIB::ZLIB)

# The tests write their own PNGs and JPEGs, hence zlib and libjpeg.
medlab_test(decode_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/decode_test.cpp LIBS medlab_imaging ZLIB::ZLIB JPEG::JPEG)
medlab_test(preprocess_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/preprocess_test.cpp LIBS medlab_imaging)
medlab_test(region_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/region_test.cpp LIBS medlab_imaging)

# Parity with Pillow: tests/parity/pillow_reference.py (run by the test) writes images and Pillow's results.
# Debian's python3-pil belongs to /usr/bin/python3, which a python3 earlier on PATH (pyenv, a venv) may hide.
set(MEDLAB_PILLOW_PYTHON /usr/bin/python3 CACHE FILEPATH "Python with Pillow and numpy, for the Pillow parity tests")
medlab_test(pillow_parity_test SOURCES ${PROJECT_SOURCE_DIR}/tests/parity/pillow_parity_test.cpp
            LIBS medlab_imaging nlohmann_json::nlohmann_json)
if(TARGET pillow_parity_test)
  target_compile_definitions(pillow_parity_test PRIVATE MEDLAB_PILLOW_PYTHON="${MEDLAB_PILLOW_PYTHON}")
endif()
