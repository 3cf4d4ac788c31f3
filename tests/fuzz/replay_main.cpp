// The normal build's main for a fuzz target: runs LLVMFuzzerTestOneInput once on every file of the
// folders given (the committed seeds and every input that once crashed), as libFuzzer would replay them.
// Fails when a folder holds no input, so a missing corpus cannot pass for a clean one.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);  // optional, as in libFuzzer

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  for (int i = 1; i < argc; ++i) {
    std::vector<fs::path> inputs;
    std::error_code ec;
    for (const auto& entry : fs::recursive_directory_iterator(argv[i], ec))
      if (entry.is_regular_file() && entry.path().filename() != "README.md") inputs.push_back(entry.path());
    if (ec || inputs.empty()) {
      std::fprintf(stderr, "%s: no inputs to replay%s%s\n", argv[i], ec ? ": " : "", ec ? ec.message().c_str() : "");
      return 1;
    }
    std::sort(inputs.begin(), inputs.end());
    for (const fs::path& input : inputs) {
      std::ifstream in(input, std::ios::binary);
      const std::vector<uint8_t> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
      std::fprintf(stderr, "replaying %s\n", input.c_str());
      LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
    }
    std::printf("%s: %zu inputs replayed\n", argv[i], inputs.size());
  }
  return argc > 1 ? 0 : 2;
}
