#include "repro/environment.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <algorithm>
#include <cctype>
#include <fstream>

#include "core/error.h"

namespace medlab {
namespace {

const EnvironmentDifference* find(const std::vector<EnvironmentDifference>& diffs, const std::string& field) {
  for (const EnvironmentDifference& d : diffs)
    if (d.field == field) return &d;
  return nullptr;
}

std::string temp_path(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("medlab_environment_test_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

TEST(Environment, CollectFillsEveryField) {
  const Environment env = collect_environment({{"cpp-httplib", "0.11.4"}});
  for (const std::string* text : {&env.engine_version, &env.engine_commit, &env.compiler, &env.compile_flags,
                                   &env.build_type, &env.cpu_model, &env.isa, &env.os_name, &env.kernel_release,
                                   &env.glibc_version}) {
    EXPECT_FALSE(text->empty());
    EXPECT_NE(*text, "unknown");
  }
  EXPECT_GE(env.logical_cores, 1);
  EXPECT_GE(env.threads, 1);
  for (const char* library : {"DCMTK", "OpenJPEG", "OpenSSL", "libjpeg-turbo", "libpng", "nlohmann-json", "zlib"}) {
    ASSERT_TRUE(env.libraries.contains(library)) << library;
    EXPECT_TRUE(std::isdigit(static_cast<unsigned char>(env.libraries.at(library)[0])))
        << library << ": " << env.libraries.at(library);
  }
  EXPECT_EQ(env.libraries.at("cpp-httplib"), "0.11.4");
  // The kernels chose from the features they saw: AVX2 needs all three of its features.
  const bool avx2 = std::find(env.cpu_features.begin(), env.cpu_features.end(), "avx2") != env.cpu_features.end() &&
                    std::find(env.cpu_features.begin(), env.cpu_features.end(), "fma") != env.cpu_features.end() &&
                    std::find(env.cpu_features.begin(), env.cpu_features.end(), "f16c") != env.cpu_features.end();
  EXPECT_EQ(env.isa != "scalar", avx2) << env.isa;
}

TEST(Environment, LoadedVersionShowsHeadersThatDisagree) {
  EXPECT_EQ(loaded_version("1.6.39", "1.6.39"), "1.6.39");
  EXPECT_EQ(loaded_version("1.6.40", "1.6.39"), "1.6.40 (headers 1.6.39)");
}

TEST(Environment, JsonRoundTrip) {
  const Environment env = collect_environment();
  const nlohmann::ordered_json j = environment_json(env);
  EXPECT_EQ(environment_json(environment_from_json(j, "test")).dump(), j.dump());
  EXPECT_TRUE(check_environment(environment_from_json(j, "test"), env).empty());
}

TEST(Environment, LockFileRoundTripIsByteStable) {
  const Environment env = collect_environment();
  const std::string a = temp_path("a.lock"), b = temp_path("b.lock");
  write_environment_lock(env, a);
  write_environment_lock(read_environment_lock(a), b);
  std::ifstream fa(a), fb(b);
  const std::string ta((std::istreambuf_iterator<char>(fa)), {}), tb((std::istreambuf_iterator<char>(fb)), {});
  EXPECT_EQ(ta, tb);
  EXPECT_EQ(ta.back(), '\n');
  std::filesystem::remove_all(std::filesystem::path(a).parent_path());
}

TEST(Environment, IdenticalLockHasNoDifferences) {
  const Environment env = collect_environment();
  EXPECT_TRUE(check_environment(env, env).empty());
}

TEST(Environment, DifferencesCarryTheirSeverity) {
  const Environment here = collect_environment();
  Environment lock = here;
  lock.engine_commit = "0123456789abcdef0123456789abcdef01234567";
  lock.cpu_model = "Some Other CPU";
  lock.logical_cores = here.logical_cores + 8;
  lock.threads = here.threads + 8;
  lock.libraries["libpng"] = "1.0.0";
  lock.libraries["OpenSSL"] = "0.9.8";
  lock.libraries.erase("zlib");
  lock.os_name = "Another OS";
  const std::vector<EnvironmentDifference> diffs = check_environment(lock, here);
  EXPECT_EQ(diffs.size(), 8u);
  const std::pair<const char*, bool> expected[] = {
      {"engine.commit", true},     {"cpu.model", false},        {"cpu.logical_cores", false},
      {"threads", false},          {"libraries.libpng", true},  {"libraries.OpenSSL", false},
      {"libraries.zlib", true},    {"os.name", false}};
  for (const auto& [field, changes] : expected) {
    const EnvironmentDifference* d = find(diffs, field);
    ASSERT_NE(d, nullptr) << field;
    EXPECT_EQ(d->changes_results, changes) << field;
    EXPECT_FALSE(d->advice.empty()) << field;
  }
  EXPECT_NE(find(diffs, "engine.commit")->advice.find("git checkout 0123456789abcdef"), std::string::npos);
  EXPECT_EQ(find(diffs, "libraries.libpng")->locked, "1.0.0");
  EXPECT_EQ(find(diffs, "libraries.libpng")->here, here.libraries.at("libpng"));
  EXPECT_EQ(find(diffs, "libraries.zlib")->locked, "");
}

TEST(Environment, IsaAdviceSaysWhetherThisCpuCanRunTheLockedKernels) {
  Environment here = collect_environment();
  here.isa = "avx2";
  here.cpu_features = {"avx2", "fma", "f16c"};
  Environment lock = here;
  lock.isa = "scalar";
  std::vector<EnvironmentDifference> diffs = check_environment(lock, here);
  ASSERT_EQ(diffs.size(), 1u);
  EXPECT_TRUE(diffs[0].changes_results);
  EXPECT_NE(diffs[0].advice.find("--isa scalar"), std::string::npos) << diffs[0].advice;
  lock.isa = "avx512";
  lock.cpu_features = {"avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl"};
  diffs = check_environment(lock, here);
  ASSERT_EQ(diffs.size(), 2u);  // cpu.features (informational), kernels.isa
  EXPECT_FALSE(find(diffs, "cpu.features")->changes_results);
  const std::string& advice = find(diffs, "kernels.isa")->advice;
  EXPECT_EQ(advice.find("--isa"), std::string::npos) << advice;
  EXPECT_NE(advice.find("avx512f, avx512bw, avx512vl"), std::string::npos) << advice;
}

// The amx set's fast bf16 bits are its own (kernels/bf16_amx.cpp), so a run locked to it is reproduced with
// --isa amx, on a CPU whose features allow it.
TEST(Environment, AmxAndAvx512KernelsDifferForFastBf16) {
  Environment here = collect_environment();
  here.cpu_features = {"avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512vnni", "amx-bf16", "amx-int8"};
  here.isa = "avx512";
  Environment lock = here;
  lock.isa = "amx";
  const std::vector<EnvironmentDifference> diffs = check_environment(lock, here);
  ASSERT_EQ(diffs.size(), 1u);
  EXPECT_TRUE(diffs[0].changes_results);
  EXPECT_NE(diffs[0].advice.find("bf16"), std::string::npos) << diffs[0].advice;
  EXPECT_NE(diffs[0].advice.find("--isa amx"), std::string::npos) << diffs[0].advice;
}

TEST(Environment, MalformedLocksNameTheFileAndField) {
  nlohmann::ordered_json j = environment_json(collect_environment());
  j["kernels"].erase("isa");
  try {
    environment_from_json(j, "env.lock");
    FAIL() << "a lock without kernels.isa was accepted";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "env.lock: field 'kernels.isa' is missing");
  }
  j = environment_json(collect_environment());
  j["threads"] = "many";
  EXPECT_THROW(environment_from_json(j, "env.lock"), Error);
  j = environment_json(collect_environment());
  j["libraries"]["libpng"] = 16;
  EXPECT_THROW(environment_from_json(j, "env.lock"), Error);

  const std::string missing = temp_path("missing.lock");
  try {
    read_environment_lock(missing);
    FAIL() << "a missing lock was read";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  }
  const std::string bad = temp_path("bad.lock");
  std::ofstream(bad) << "{\"engine\": ";
  try {
    read_environment_lock(bad);
    FAIL() << "a truncated lock was read";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not valid JSON"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(std::filesystem::path(bad).parent_path());
}

}  // namespace
}  // namespace medlab
