#include "kernels/cpu_features.h"

#include <cpuid.h>

namespace medlab {

std::vector<std::string> cpu_features() {
  // The same tests as avx2_kernels() and avx512_kernels(): GCC's CPU probe (which also asks the OS, through
  // XGETBV, whether it saves the wide registers) and CPUID leaf 1 for F16C, which the probe lacks.
  unsigned eax, ebx, ecx, edx;
  const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C);
  const std::pair<const char*, bool> checks[] = {
      {"avx2", __builtin_cpu_supports("avx2")},         {"fma", __builtin_cpu_supports("fma")},
      {"f16c", f16c},                                   {"avx512f", __builtin_cpu_supports("avx512f")},
      {"avx512bw", __builtin_cpu_supports("avx512bw")}, {"avx512vl", __builtin_cpu_supports("avx512vl")},
      {"avx512vnni", __builtin_cpu_supports("avx512vnni")}, {"avx512bf16", __builtin_cpu_supports("avx512bf16")}};
  std::vector<std::string> present;
  for (const auto& [name, has] : checks)
    if (has) present.push_back(name);
  return present;
}

}  // namespace medlab
