// weights.lock: writing and reading it back, strict reading of damaged locks, the comparison, and the
// behavioural fingerprint of the tiny test model (stable across thread counts and kernel sets).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>

#include "repro/weights_lock.h"
#include "runtime/test_model.h"

namespace medlab {
namespace {

WeightsLock sample_lock() {
  WeightsLock lock;
  lock.engine_version = "0.1.0";
  lock.model_sha256 = std::string(64, 'a');
  lock.files = {{"model-00001-of-00002.safetensors", 1000, std::string(64, 'b')},
                {"model-00002-of-00002.safetensors", 2000, std::string(64, 'c')},
                {"extra/model.safetensors", 30, std::string(64, 'd')}};
  lock.fingerprint.prompt = kFingerprintPrompt;
  lock.fingerprint.image = kFingerprintImage;
  lock.fingerprint.top3_logit_l2 = 12.345678;
  lock.fingerprint.top20_ids = {5, 3, 9};
  lock.fingerprint.top20_ids_sha256 = ids_sha256(lock.fingerprint.top20_ids);
  return lock;
}

// The error parse_lock gives for the sample lock's JSON after `edit`.
std::string parse_error(const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json j = nlohmann::json::parse(lock_text(sample_lock()));
  edit(j);
  try {
    parse_lock(j.dump(), "weights.lock");
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(WeightsLock, RoundTripGivesTheSameBytes) {
  const std::string text = lock_text(sample_lock());
  const WeightsLock read = parse_lock(text, "weights.lock");
  EXPECT_EQ(lock_text(read), text);
  ASSERT_EQ(read.files.size(), 3u);
  EXPECT_EQ(read.files[1].name, "model-00002-of-00002.safetensors");
  EXPECT_EQ(read.files[1].size, 2000u);
  EXPECT_EQ(read.fingerprint.top20_ids, (std::vector<TokenId>{5, 3, 9}));
  EXPECT_EQ(read.tolerance, kDefaultFingerprintTolerance);
  EXPECT_NE(text.find("\"top3_logit_l2\": \"12.345678\""), std::string::npos) << text;
  EXPECT_EQ(ids_sha256({5, 3, 9}), ids_sha256({5, 3, 9}));
  EXPECT_NE(ids_sha256({5, 3, 9}), ids_sha256({5, 9, 3}));
  EXPECT_EQ(joined_ids({2, 818, 5279}), "2,818,5279");
}

TEST(WeightsLock, DamagedLocksAreRefusedByField) {
  EXPECT_EQ(parse_error([](nlohmann::json& j) { j["files"][2].erase("sha256"); }),
            "weights.lock: field files[2].sha256 missing");
  EXPECT_EQ(parse_error([](nlohmann::json& j) { j["files"][0]["sha256"] = "ABC"; }),
            "weights.lock: field files[0].sha256 must be 64 lower-case hex digits");
  EXPECT_EQ(parse_error([](nlohmann::json& j) { j["files"][1]["size"] = -5; }),
            "weights.lock: field files[1].size must be a non-negative integer");
  EXPECT_EQ(parse_error([](nlohmann::json& j) { j["files"][1]["name"] = j["files"][0]["name"]; }),
            "weights.lock: field files[1].name repeats \"model-00001-of-00002.safetensors\"");
  EXPECT_EQ(parse_error([](nlohmann::json& j) { j["files"] = nlohmann::json::array(); }),
            "weights.lock: field files must be a non-empty array");
  EXPECT_EQ(parse_error([](nlohmann::json& j) { j.erase("fingerprint"); }), "weights.lock: field fingerprint missing");
  EXPECT_EQ(parse_error([](nlohmann::json& j) { j["fingerprint"]["top3_logit_l2"] = 12.345678; }),
            "weights.lock: field fingerprint.top3_logit_l2 must be a string");
  EXPECT_NE(parse_error([](nlohmann::json& j) { j["fingerprint"]["top3_logit_l2"] = "12.34"; })
                .find("field fingerprint.top3_logit_l2 must be a number with 6 decimals"),
            std::string::npos);
  EXPECT_NE(parse_error([](nlohmann::json& j) { j["fingerprint"]["top20_ids"][0] = 6; })
                .find("field fingerprint.top20_ids_sha256 does not match top20_ids"),
            std::string::npos);
  EXPECT_EQ(parse_error([](nlohmann::json& j) { j["fingerprint"]["tolerance"] = 0; }),
            "weights.lock: field fingerprint.tolerance must be a positive number");
  EXPECT_EQ(parse_error([](nlohmann::json& j) { j["fingerprint"]["seed"] = 1; }),
            "weights.lock: field fingerprint.seed is not part of medlab-weights-lock/1");
  EXPECT_NE(parse_error([](nlohmann::json& j) { j["format"] = "medlab-weights-lock/2"; }).find("is not medlab-weights-lock/1"),
            std::string::npos);
  EXPECT_NE(parse_error([](nlohmann::json& j) { j = nlohmann::json::array(); }).find("expected a JSON object"),
            std::string::npos);
  try {
    parse_lock("{\"format\": ", "x.lock");
    FAIL() << "truncated JSON accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x.lock: not valid JSON"), std::string::npos) << e.what();
  }
}

TEST(WeightsLock, MissingLockSaysHowToWriteOne) {
  try {
    read_lock("/nonexistent/weights.lock");
    FAIL() << "a missing lock was read";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("/nonexistent/weights.lock: no such lock file"), std::string::npos) << message;
    EXPECT_NE(message.find("--write-lock"), std::string::npos) << message;
  }
}

TEST(WeightsLock, WrittenFileReadsBack) {
  const auto path = std::filesystem::temp_directory_path() / ("weights_lock_test_" + std::to_string(::getpid()) + ".lock");
  write_lock(sample_lock(), path);
  EXPECT_EQ(lock_text(read_lock(path)), lock_text(sample_lock()));
  std::filesystem::remove(path);
}

TEST(WeightsLock, SameModelHasNoDifferences) {
  const std::vector<LockCheck> checks = compare_lock(sample_lock(), sample_lock(), 1e-4);
  EXPECT_TRUE(lock_differences(checks).empty());
  EXPECT_EQ(checks.size(), 3u + 1u + 4u);  // files, model_sha256, prompt, image, top3_logit_l2, top20_ids
}

TEST(WeightsLock, ComparisonNamesWhatDiffers) {
  const WeightsLock locked = sample_lock();
  WeightsLock found = sample_lock();
  found.files[1].sha256 = std::string(64, 'e');
  found.model_sha256 = std::string(64, 'f');
  std::vector<std::string> lines = lock_differences(compare_lock(locked, found, 1e-4));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "sha256 model-00002-of-00002.safetensors: MISMATCH expected " + std::string(64, 'c') +
                          " (2000 bytes) found " + std::string(64, 'e') + " (2000 bytes)");
  EXPECT_EQ(lines[1].rfind("model_sha256: MISMATCH", 0), 0u) << lines[1];

  found = sample_lock();  // a lock of another model: one file gone, one new
  found.files.pop_back();
  found.files.push_back({"model.safetensors", 5, std::string(64, '0')});
  lines = lock_differences(compare_lock(locked, found, 1e-4));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].rfind("file extra/model.safetensors: MISSING", 0), 0u) << lines[0];
  EXPECT_EQ(lines[1].rfind("file model.safetensors: EXTRA", 0), 0u) << lines[1];
}

TEST(WeightsLock, FingerprintWithinToleranceMatches) {
  const WeightsLock locked = sample_lock();
  WeightsLock found = sample_lock();
  found.fingerprint.top3_logit_l2 = 12.345678 * (1 + 5e-5);
  EXPECT_TRUE(lock_differences(compare_lock(locked, found, 1e-4)).empty());
  std::vector<std::string> lines = lock_differences(compare_lock(locked, found, 1e-5));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].rfind("fingerprint top3_logit_l2: MISMATCH expected 12.345678 found 12.346295", 0), 0u) << lines[0];

  found = sample_lock();
  found.fingerprint.top20_ids = {5, 9, 3};
  found.fingerprint.top20_ids_sha256 = ids_sha256(found.fingerprint.top20_ids);
  lines = lock_differences(compare_lock(locked, found, 1e-4));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("first difference at rank 2"), std::string::npos) << lines[0];

  found = sample_lock();
  found.fingerprint.image = "none";
  lines = lock_differences(compare_lock(locked, found, 1e-4));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].rfind("fingerprint image: MISMATCH", 0), 0u) << lines[0];
}

WeightsLock lock_with_adapters() {
  WeightsLock lock = sample_lock();
  lock.adapters = {{"chest-lora", std::string(64, 'e'), 1.0f, false}, {"style", std::string(64, 'f'), 0.1f, true}};
  return lock;
}

std::string adapters_parse_error(const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json j = nlohmann::json::parse(lock_text(lock_with_adapters()));
  edit(j);
  try {
    parse_lock(j.dump(), "weights.lock");
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(WeightsLock, AdaptersAreWrittenOnlyWhenPresent) {
  EXPECT_EQ(lock_text(sample_lock()).find("adapters"), std::string::npos);
  const std::string text = lock_text(lock_with_adapters());
  const size_t adapters = text.find("\"adapters\""), files = text.find("\"files\""), fp = text.find("\"fingerprint\"");
  ASSERT_NE(adapters, std::string::npos) << text;
  EXPECT_LT(files, adapters);
  EXPECT_LT(adapters, fp);
  EXPECT_NE(text.find("\"scale\": 0.1,"), std::string::npos) << text;
  const WeightsLock read = parse_lock(text, "weights.lock");
  EXPECT_EQ(lock_text(read), text);
  ASSERT_EQ(read.adapters.size(), 2u);
  EXPECT_EQ(read.adapters[1].name, "style");
  EXPECT_EQ(read.adapters[1].scale, 0.1f);
  EXPECT_TRUE(read.adapters[1].merged);
  EXPECT_FALSE(read.adapters[0].merged);
}

TEST(WeightsLock, DamagedAdaptersAreRefusedByField) {
  EXPECT_EQ(adapters_parse_error([](nlohmann::json& j) { j["adapters"] = nlohmann::json::array(); }),
            "weights.lock: field adapters must be a non-empty array (or absent: no adapters)");
  EXPECT_EQ(adapters_parse_error([](nlohmann::json& j) { j["adapters"][1].erase("sha256"); }),
            "weights.lock: field adapters[1].sha256 missing");
  EXPECT_EQ(adapters_parse_error([](nlohmann::json& j) { j["adapters"][0]["merged"] = "no"; }),
            "weights.lock: field adapters[0].merged must be true or false");
  EXPECT_EQ(adapters_parse_error([](nlohmann::json& j) { j["adapters"][0]["scale"] = "1"; }),
            "weights.lock: field adapters[0].scale must be a number");
  EXPECT_EQ(adapters_parse_error([](nlohmann::json& j) { j["adapters"][0]["name"] = ""; }),
            "weights.lock: field adapters[0].name is empty");
  EXPECT_EQ(adapters_parse_error([](nlohmann::json& j) { j["adapters"][0]["rank"] = 8; }),
            "weights.lock: field adapters[0].rank is not part of medlab-weights-lock/1");
  EXPECT_EQ(adapters_parse_error([](nlohmann::json& j) { j["adapters"] = nlohmann::json::object(); }),
            "weights.lock: field adapters must be a non-empty array (or absent: no adapters)");
}

TEST(WeightsLock, AdaptersAreComparedInOrder) {
  const WeightsLock locked = lock_with_adapters();
  std::vector<LockCheck> checks = compare_lock(locked, locked, 1e-4);
  EXPECT_TRUE(lock_differences(checks).empty());
  ASSERT_EQ(checks.size(), 3u + 1u + 2u + 4u);  // files, model_sha256, two adapters, the fingerprint's four
  EXPECT_EQ(checks[4].subject, "adapter chest-lora sha256");
  EXPECT_EQ(checks[4].detail, "scale 1, runtime");
  EXPECT_EQ(checks[5].subject, "adapter style sha256");
  EXPECT_EQ(checks[5].detail, "scale 0.1, merged");

  WeightsLock found = lock_with_adapters();
  found.adapters[0].sha256 = std::string(64, '1');
  found.adapters[1].merged = false;
  std::vector<std::string> lines = lock_differences(compare_lock(locked, found, 1e-4));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "adapter chest-lora sha256: MISMATCH expected chest-lora " + std::string(64, 'e') +
                          " (scale 1, runtime) found chest-lora " + std::string(64, '1') + " (scale 1, runtime)");
  EXPECT_EQ(lines[1], "adapter style sha256: MISMATCH expected style " + std::string(64, 'f') +
                          " (scale 0.1, merged) found style " + std::string(64, 'f') + " (scale 0.1, runtime)");

  found = lock_with_adapters();
  found.adapters[1].scale = 0.2f;
  lines = lock_differences(compare_lock(locked, found, 1e-4));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("(scale 0.1, merged) found style"), std::string::npos) << lines[0];
}

TEST(WeightsLock, AdaptersOnOneSideOnlyDiffer) {
  std::vector<std::string> lines = lock_differences(compare_lock(lock_with_adapters(), sample_lock(), 1e-4));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "adapter chest-lora: MISSING: in the lock, not applied to the model (pass its folder with --lora)");
  EXPECT_EQ(lines[1].rfind("adapter style: MISSING", 0), 0u) << lines[1];

  lines = lock_differences(compare_lock(sample_lock(), lock_with_adapters(), 1e-4));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "adapter chest-lora: EXTRA: applied to the model, not in the lock");
  EXPECT_EQ(lines[1], "adapter style: EXTRA: applied to the model, not in the lock");

  WeightsLock one = lock_with_adapters();
  one.adapters.pop_back();
  lines = lock_differences(compare_lock(lock_with_adapters(), one, 1e-4));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].rfind("adapter style: MISSING", 0), 0u) << lines[0];
}

class TinyFingerprint : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { tiny_ = new testing::TinyTestModel("weights_lock_tiny", 5); }
  static void TearDownTestSuite() { delete tiny_; }
  static Fingerprint fingerprint(int threads, const KernelTable& kernels) {
    ThreadPool pool(threads);
    return behavioural_fingerprint(tiny_->model(), pool, kernels);
  }
  static inline testing::TinyTestModel* tiny_ = nullptr;
};

TEST_F(TinyFingerprint, SameOnAnyThreadCountAndCloseOnAnyKernelSet) {
  const Fingerprint one = fingerprint(1, best_kernels()), two = fingerprint(2, best_kernels());
  EXPECT_EQ(one.top3_logit_l2, two.top3_logit_l2);  // bit-identical whatever the thread count
  EXPECT_EQ(one.top20_ids, two.top20_ids);
  EXPECT_EQ(one.image, kFingerprintImage);
  EXPECT_EQ(one.top20_ids.size(), 20u);
  EXPECT_EQ(one.top20_ids_sha256, ids_sha256(one.top20_ids));
  EXPECT_GT(one.top3_logit_l2, 0);

  const Fingerprint scalar = fingerprint(2, kernels_for("scalar"));
  std::printf("top3_logit_l2: %s kernels %.9f, scalar %.9f, relative difference %.2e\n", isa_name(best_kernels().isa),
              one.top3_logit_l2, scalar.top3_logit_l2, std::abs(scalar.top3_logit_l2 - one.top3_logit_l2) / one.top3_logit_l2);
  EXPECT_EQ(scalar.top20_ids, one.top20_ids);
  EXPECT_LE(std::abs(scalar.top3_logit_l2 - one.top3_logit_l2), 1e-5 * one.top3_logit_l2);
}

TEST_F(TinyFingerprint, LockNamesFilesInTheModelFolder) {
  const LoadedModel& model = tiny_->model();
  const WeightHashes hashes = hash_weights(model.checkpoint);
  const WeightsLock lock = make_lock(hashes, model.checkpoint.dir(), fingerprint(2, best_kernels()), 1e-4);
  ASSERT_EQ(lock.files.size(), 2u);
  EXPECT_EQ(lock.files[0].name, "model-00001-of-00002.safetensors");
  EXPECT_EQ(lock.files[1].name, "model-00002-of-00002.safetensors");
  EXPECT_EQ(lock.files[0].size, std::filesystem::file_size(tiny_->dir() / lock.files[0].name));
  EXPECT_EQ(lock_text(parse_lock(lock_text(lock), "weights.lock")), lock_text(lock));
}

}  // namespace
}  // namespace medlab
