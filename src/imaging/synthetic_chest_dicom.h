// Writes a synthetic chest film (imaging/synthetic_chest.h) as a DX DICOM file: byte-identical for the same
// case and seed on any machine (fixed dates, UIDs derived from the seed and case number), with no patient data.
#pragma once

#include <cstdint>
#include <string>

#include "imaging/synthetic_chest.h"

namespace medlab {

// UIDs of synthetic files: "2.25." and the decimal of a 64-bit hash of (seed, case number, level), where level
// is 1 study, 2 series, 3 instance. 2.25 is the root for UIDs made from large numbers (PS3.5 B.2); these are
// test identifiers and name no real study.
std::string synthetic_uid(uint64_t seed, int case_number, int level);

// case_number counts from 1 and names the patient: Patient ID "SYNTH-<case_number>".
void write_synthetic_chest_dicom(const std::string& path, const ChestFilm& film, const TestCase& test_case,
                                 uint64_t seed, int case_number);

}  // namespace medlab
