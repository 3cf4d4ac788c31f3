// DICOM rendering: a 3000 x 3000 16-bit CR (read + decode, render, PNG) and a 512-slice CT series
// (header scan and sort, MedGemma's 85-slice ct-rgb sample, all 512 slices). Files are generated once
// into the temp folder. Numbers go into docs/BENCHMARKS.md under "DICOM rendering".
#include <benchmark/benchmark.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcdeftag.h>

#include <filesystem>
#include <random>
#include <string>

#include "imaging/dicom_file.h"
#include "imaging/dicom_render.h"
#include "imaging/dicom_series.h"
#include "imaging/dicom_test_files.h"
#include "imaging/png_write.h"

namespace {

using namespace medlab::dicom;

// The generated files live as long as the process; the folders are removed at exit.
const std::string& cr_file() {
  static const testing::TempFolder dir("bench_cr");
  static const std::string path = [] {
    const std::string p = dir.path() + "/cr_3000.dcm";
    testing::TestImage image;
    image.rows = image.columns = 3000;
    image.bits_stored = 12;
    image.modality = "CR";
    image.photometric = "MONOCHROME1";
    std::mt19937 random(1);
    image.pixels.resize(size_t(3000) * 3000);
    for (size_t i = 0; i < image.pixels.size(); ++i) image.pixels[i] = uint16_t((i % 3000) + random() % 1000);
    image.extra = [](DcmDataset& d) {
      d.putAndInsertString(DCM_WindowCenter, "2000");
      d.putAndInsertString(DCM_WindowWidth, "3000");
    };
    testing::write_test_dicom(p, image);
    return p;
  }();
  return path;
}

const std::string& ct_folder() {
  static const testing::TempFolder folder("bench_ct");
  static const std::string dir = [] {
    const std::string& d = folder.path();
    std::mt19937 random(2);
    for (int z = 0; z < 512; ++z) {
      testing::TestImage image;
      image.rows = image.columns = 512;
      image.is_signed = true;
      image.pixels.resize(size_t(512) * 512);
      for (auto& v : image.pixels) v = uint16_t(random() % 2400);
      image.extra = [z](DcmDataset& ds) {
        ds.putAndInsertString(DCM_SeriesInstanceUID, "1.2.826.0.1.3680043.9.7433.99.1");
        ds.putAndInsertString(DCM_RescaleSlope, "1");
        ds.putAndInsertString(DCM_RescaleIntercept, "-1024");
        ds.putAndInsertString(DCM_ImageOrientationPatient, "1\\0\\0\\0\\1\\0");
        ds.putAndInsertString(DCM_ImagePositionPatient, ("0\\0\\" + std::to_string(-0.625 * z)).c_str());
        ds.putAndInsertString(DCM_InstanceNumber, std::to_string(z + 1).c_str());
      };
      // Written in shuffled name order so sorting has work to do.
      testing::write_test_dicom(d + "/slice_" + std::to_string((z * 337) % 512) + ".dcm", image);
    }
    return d;
  }();
  return dir;
}

// Each benchmark fetches its files before timing: the first call generates them.
void BM_CrReadDecode(benchmark::State& state) {
  const std::string& file = cr_file();
  for (auto _ : state) benchmark::DoNotOptimize(read_dicom(file));
}

void BM_CrRenderFileWindow(benchmark::State& state) {
  const DicomImage image = read_dicom(cr_file());
  const WindowSpec window = parse_window("file");
  for (auto _ : state) benchmark::DoNotOptimize(render(image, window));
}

void BM_CrReadRenderPng(benchmark::State& state) {
  const std::string& file = cr_file();
  const std::string out = std::filesystem::path(file).replace_extension(".png").string();
  for (auto _ : state) {
    const Rendered r = render(read_dicom(file), parse_window("file"));
    medlab::write_png(out, r.width, r.height, r.channels, r.pixels.data());
  }
}

void BM_CtSeriesScanSort(benchmark::State& state) {
  const std::string& dir = ct_folder();
  for (auto _ : state) benchmark::DoNotOptimize(scan_folder(dir));
}

// What MedGemma's CT input needs: scan, sort, 85 evenly spaced slices, each read and rendered ct-rgb.
void BM_CtSeries85CtRgb(benchmark::State& state) {
  const std::string& dir = ct_folder();
  const WindowSpec window = parse_window("ct-rgb");
  for (auto _ : state) {
    const FolderScan scan = scan_folder(dir);
    const auto& slices = scan.series.front().slices;
    for (size_t i : sample_slices(slices.size())) benchmark::DoNotOptimize(render(read_dicom(slices[i].path), window));
  }
}

void BM_CtSeriesAll512Windowed(benchmark::State& state) {
  const std::string& dir = ct_folder();
  const WindowSpec window = parse_window("mediastinum");
  for (auto _ : state) {
    const FolderScan scan = scan_folder(dir);
    for (const Slice& slice : scan.series.front().slices) benchmark::DoNotOptimize(render(read_dicom(slice.path), window));
  }
}

BENCHMARK(BM_CrReadDecode)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CrRenderFileWindow)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CrReadRenderPng)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CtSeriesScanSort)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_CtSeries85CtRgb)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_CtSeriesAll512Windowed)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace

BENCHMARK_MAIN();
