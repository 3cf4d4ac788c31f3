#include "repro/environment.h"

#include <gnu/libc-version.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "core/build_info.h"
#include "core/error.h"
#include "imaging/library_versions.h"
#include "kernels/cpu_features.h"
#include "kernels/kernels.h"

namespace medlab {
namespace {

using Json = nlohmann::ordered_json;

std::string trim(const std::string& s, const char* blanks = " \t") {
  const size_t begin = s.find_first_not_of(blanks);
  const size_t end = s.find_last_not_of(blanks);
  return begin == std::string::npos ? "" : s.substr(begin, end - begin + 1);
}

// The value after "key" in a "key: value" or key="value" file (/proc/cpuinfo, os-release), or "unknown".
std::string file_value(const std::string& path, const std::string& key, char separator) {
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    const size_t at = line.find(separator);
    if (at != std::string::npos && trim(line.substr(0, at)) == key) return trim(line.substr(at + 1), " \t\"'");
  }
  return "unknown";
}

std::string kernel_release() {
  utsname names{};
  return uname(&names) == 0 ? names.release : "unknown";
}

// --- reading a lock: every field by its dotted path, so that an error can name it ---

const Json& field(const Json& root, const std::string& path, const std::string& source) {
  const Json* node = &root;
  for (size_t begin = 0;;) {
    const size_t dot = path.find('.', begin);
    const std::string key = path.substr(begin, dot == std::string::npos ? std::string::npos : dot - begin);
    if (!node->is_object() || !node->contains(key)) fail(source, ": field '", path, "' is missing");
    node = &node->at(key);
    if (dot == std::string::npos) return *node;
    begin = dot + 1;
  }
}

std::string text_field(const Json& root, const std::string& path, const std::string& source) {
  const Json& value = field(root, path, source);
  if (!value.is_string()) fail(source, ": field '", path, "' must be a string, not ", value.dump());
  return value.get<std::string>();
}

int count_field(const Json& root, const std::string& path, const std::string& source) {
  const Json& value = field(root, path, source);
  if (!value.is_number_integer() || value.get<int64_t>() < 1 || value.get<int64_t>() > 1 << 20)
    fail(source, ": field '", path, "' must be a positive integer, not ", value.dump());
  return value.get<int>();
}

// --- comparing: what each difference means ---

// The CPU features each kernel set needs (avx2_kernels(), avx512_kernels()).
const std::map<std::string, std::vector<std::string>>& isa_needs() {
  static const std::map<std::string, std::vector<std::string>> needs = {
      {"scalar", {}},
      {"avx2", {"avx2", "fma", "f16c"}},
      {"avx512", {"avx512f", "avx512bw", "avx512vl"}},
      {"amx", {"avx512f", "avx512bw", "avx512vl", "avx512vnni", "amx-bf16", "amx-int8"}}};
  return needs;
}

std::string isa_advice(const std::string& locked, const Environment& here) {
  const auto needs = isa_needs().find(locked);
  if (needs == isa_needs().end()) return "this build has no '" + locked + "' kernels: expect differences in the last bits";
  std::string missing;
  for (const std::string& feature : needs->second)
    if (std::find(here.cpu_features.begin(), here.cpu_features.end(), feature) == here.cpu_features.end())
      missing += (missing.empty() ? "" : ", ") + feature;
  const std::string pass = "pass --isa " + locked + " to medlab run and medlab bench to run the locked kernels";
  // The amx set is the avx512 set with AMX tiles: the same bits for quantized weights, its own for fast bf16.
  if (missing.empty() && (locked == "amx" || locked == "avx512") && (here.isa == "amx" || here.isa == "avx512"))
    return "the amx and avx512 kernels give the same bits except for bf16 weights in fast precision, which AMX "
           "rounds its own way; " + pass;
  if (missing.empty()) return "kernel sets round differently; " + pass;
  return "kernel sets round differently, and this CPU cannot run " + locked + " kernels (it lacks " + missing +
         "): reproduce on a CPU that has them";
}

std::string commit_advice(const std::string& locked, const std::string& here) {
  if (locked == "unknown") return "the locked engine was built outside git: build it from the same source";
  const std::string dirty = "-dirty";
  const bool locked_dirty = locked.ends_with(dirty);
  const std::string commit = locked_dirty ? locked.substr(0, locked.size() - dirty.size()) : locked;
  if (!locked_dirty && here == locked + dirty)
    return "this build has uncommitted changes: build commit " + commit + " without them, then scripts/setup.sh";
  std::string advice = "another engine: build the locked commit: git checkout " + commit + " && scripts/setup.sh";
  if (locked_dirty) advice += ", with the uncommitted changes the lock was written with (git does not have them)";
  return advice;
}

// Libraries whose version can change the decoded pixels, and so what the model sees.
bool decodes_images(const std::string& library) {
  static const std::set<std::string> decoders = {"DCMTK", "OpenJPEG", "libjpeg-turbo", "libpng", "zlib"};
  return decoders.contains(library);
}

std::string library_advice(const std::string& name, const std::string& locked, const std::string& here) {
  if (!decodes_images(name)) return name + " does not touch results";
  if (locked.empty()) return "the lock has no " + name + ": write a new lock with this build";
  if (here.empty()) return "this build has no " + name + ": build the locked commit";
  if (name == "DCMTK" || name == "OpenJPEG")
    return "decoded DICOM pixels can differ: install " + name + " " + locked +
           ", or compare the pixel SHA-256 that medlab dicom info prints on both machines";
  return "decoded image pixels can differ: install " + name + " " + locked + ", as the lock has";
}

void compare(std::vector<EnvironmentDifference>& out, const std::string& name, const std::string& locked,
             const std::string& here, bool changes_results, const std::string& advice) {
  if (locked != here) out.push_back({name, locked, here, changes_results, advice});
}

std::string joined(const std::vector<std::string>& items) {
  std::string all;
  for (const std::string& item : items) all += (all.empty() ? "" : " ") + item;
  return all;
}

}  // namespace

Environment collect_environment(const LibraryVersions& higher_libraries) {
  const BuildInfo& build = build_info();
  Environment env;
  env.engine_version = build.version;
  env.engine_commit = build.git_commit;
  env.compiler = build.compiler;
  env.compile_flags = trim(build.compile_flags);
  env.build_type = build.build_type;
  env.cpu_model = file_value("/proc/cpuinfo", "model name", ':');
  env.logical_cores = int(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
  env.cpu_features = cpu_features();
  env.isa = isa_name(best_kernels().isa);
  env.threads = int(std::max(1u, std::thread::hardware_concurrency()));
  env.libraries = core_library_versions();
  env.libraries.merge(image_library_versions());
  env.libraries.merge(dicom_library_versions());
  env.libraries["nlohmann-json"] = std::to_string(NLOHMANN_JSON_VERSION_MAJOR) + "." +
                                   std::to_string(NLOHMANN_JSON_VERSION_MINOR) + "." +
                                   std::to_string(NLOHMANN_JSON_VERSION_PATCH);  // headers only
  for (const auto& [name, version] : higher_libraries) env.libraries[name] = version;
  env.os_name = file_value("/etc/os-release", "PRETTY_NAME", '=');
  if (env.os_name == "unknown") env.os_name = file_value("/usr/lib/os-release", "PRETTY_NAME", '=');
  env.kernel_release = kernel_release();
  env.glibc_version = gnu_get_libc_version();
  return env;
}

Json environment_json(const Environment& env) {
  Json libraries = Json::object();
  for (const auto& [name, version] : env.libraries) libraries[name] = version;
  return {{"engine", {{"version", env.engine_version}, {"commit", env.engine_commit}}},
          {"build", {{"compiler", env.compiler}, {"flags", env.compile_flags}, {"type", env.build_type}}},
          {"cpu", {{"model", env.cpu_model}, {"logical_cores", env.logical_cores}, {"features", env.cpu_features}}},
          {"kernels", {{"isa", env.isa}}},
          {"threads", env.threads},
          {"libraries", libraries},
          {"os", {{"name", env.os_name}, {"kernel", env.kernel_release}, {"glibc", env.glibc_version}}}};
}

Environment environment_from_json(const Json& j, const std::string& source) {
  if (!j.is_object()) fail(source, ": expected a JSON object, as medlab env --write-lock writes");
  Environment env;
  env.engine_version = text_field(j, "engine.version", source);
  env.engine_commit = text_field(j, "engine.commit", source);
  env.compiler = text_field(j, "build.compiler", source);
  env.compile_flags = text_field(j, "build.flags", source);
  env.build_type = text_field(j, "build.type", source);
  env.cpu_model = text_field(j, "cpu.model", source);
  env.logical_cores = count_field(j, "cpu.logical_cores", source);
  const Json& features = field(j, "cpu.features", source);
  const bool names = features.is_array() && std::all_of(features.begin(), features.end(),
                                                         [](const Json& f) { return f.is_string(); });
  if (!names) fail(source, ": field 'cpu.features' must be a list of names, not ", features.dump());
  for (const Json& feature : features) env.cpu_features.push_back(feature.get<std::string>());
  env.isa = text_field(j, "kernels.isa", source);
  env.threads = count_field(j, "threads", source);
  const Json& libraries = field(j, "libraries", source);
  if (!libraries.is_object()) fail(source, ": field 'libraries' must be an object of name: version");
  for (const auto& [name, version] : libraries.items()) {
    if (!version.is_string()) fail(source, ": field 'libraries.", name, "' must be a string, not ", version.dump());
    env.libraries[name] = version.get<std::string>();
  }
  env.os_name = text_field(j, "os.name", source);
  env.kernel_release = text_field(j, "os.kernel", source);
  env.glibc_version = text_field(j, "os.glibc", source);
  return env;
}

void write_environment_lock(const Environment& env, const std::string& path) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << environment_json(env).dump(2) << '\n';
  if (!out.flush()) fail(path, ": cannot write the lock file");
}

Environment read_environment_lock(const std::string& path) {
  if (!std::filesystem::is_regular_file(path))
    fail(path, ": no such lock file (write one with medlab env --write-lock ", path, ")");
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in) fail(path, ": cannot read the lock file");
  Json j;
  try {
    j = Json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {
    fail(path, ": not valid JSON: ", e.what());
  }
  return environment_from_json(j, path);
}

std::vector<EnvironmentDifference> check_environment(const Environment& lock, const Environment& here) {
  std::vector<EnvironmentDifference> out;
  compare(out, "engine.version", lock.engine_version, here.engine_version, true,
          "another medlab release: build the locked commit (engine.commit)");
  compare(out, "engine.commit", lock.engine_commit, here.engine_commit, true,
          commit_advice(lock.engine_commit, here.engine_commit));
  compare(out, "build.compiler", lock.compiler, here.compiler, true,
          "compilers order and fuse floating-point operations differently: build with " + lock.compiler +
              " (CXX, in a fresh build folder)");
  compare(out, "build.flags", lock.compile_flags, here.compile_flags, true,
          "optimisation flags can change floating-point results: build with the locked flags (CMAKE_CXX_FLAGS, "
          "then the build type's)");
  compare(out, "build.type", lock.build_type, here.build_type, true,
          "the build type sets the optimisation flags: configure with -DCMAKE_BUILD_TYPE=" + lock.build_type);
  compare(out, "cpu.model", lock.cpu_model, here.cpu_model, false,
          "the CPU matters only through the kernel set it allows (kernels.isa)");
  compare(out, "cpu.logical_cores", std::to_string(lock.logical_cores), std::to_string(here.logical_cores), false,
          "speed only: results do not depend on the core count");
  compare(out, "cpu.features", joined(lock.cpu_features), joined(here.cpu_features), false,
          "the features matter only through the kernel set chosen from them (kernels.isa)");
  compare(out, "kernels.isa", lock.isa, here.isa, true, isa_advice(lock.isa, here));
  compare(out, "threads", std::to_string(lock.threads), std::to_string(here.threads), false,
          "speed only: results are bit-identical for any thread count");
  std::set<std::string> libraries;
  for (const Environment* env : {&lock, &here})
    for (const auto& entry : env->libraries) libraries.insert(entry.first);
  for (const std::string& name : libraries) {
    const std::string locked = lock.libraries.contains(name) ? lock.libraries.at(name) : "";
    const std::string mine = here.libraries.contains(name) ? here.libraries.at(name) : "";
    compare(out, "libraries." + name, locked, mine, decodes_images(name), library_advice(name, locked, mine));
  }
  compare(out, "os.name", lock.os_name, here.os_name, false,
          "the distribution matters only through its glibc and libraries, compared on their own lines");
  compare(out, "os.kernel", lock.kernel_release, here.kernel_release, false, "the OS kernel does not touch results");
  // Softmax, GELU, soft-capping and the rotary tables call libm's exp, tanh, pow, sin and cos, whose last bits
  // have changed between glibc releases.
  compare(out, "os.glibc", lock.glibc_version, here.glibc_version, true,
          "libm's exp, tanh, pow, sin and cos can round differently: run on glibc " + lock.glibc_version +
              " (the locked OS release, or a container of it)");
  return out;
}

std::string difference_line(const EnvironmentDifference& d) {
  const auto shown = [](const std::string& value) -> std::string {
    if (value.empty()) return "(none)";
    return value.find(' ') == std::string::npos ? value : "\"" + value + "\"";
  };
  return d.field + ": lock " + shown(d.locked) + ", here " + shown(d.here) + " (" +
         (d.changes_results ? "can change results" : "informational") + "): " + d.advice;
}

}  // namespace medlab
