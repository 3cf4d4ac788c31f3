#include "kernels/cpu_features.h"

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace medlab {

namespace {

constexpr unsigned kAmxBf16 = 1u << 22, kAmxTile = 1u << 24, kAmxInt8 = 1u << 25;  // CPUID.(7,0):EDX

unsigned amx_bits() {
  unsigned eax, ebx, ecx, edx;
  return __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) ? edx & (kAmxBf16 | kAmxTile | kAmxInt8) : 0;
}

bool tile_state_granted() {
  static const bool granted = [] {
    if ((amx_bits() & kAmxTile) == 0) return false;
    constexpr int kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return granted;
}

}  // namespace

bool amx_usable() {
  return (amx_bits() & (kAmxBf16 | kAmxInt8)) == (kAmxBf16 | kAmxInt8) && tile_state_granted();
}

std::vector<std::string> cpu_features() {
  // The same tests as avx2_kernels() and avx512_kernels(): GCC's CPU probe (which also asks the OS, through
  // XGETBV, whether it saves the wide registers) and CPUID leaf 1 for F16C, which the probe lacks.
  unsigned eax, ebx, ecx, edx;
  const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C);
  const std::pair<const char*, bool> checks[] = {
      {"avx2", __builtin_cpu_supports("avx2")},         {"fma", __builtin_cpu_supports("fma")},
      {"f16c", f16c},                                   {"avx512f", __builtin_cpu_supports("avx512f")},
      {"avx512bw", __builtin_cpu_supports("avx512bw")}, {"avx512vl", __builtin_cpu_supports("avx512vl")},
      {"avx512vnni", __builtin_cpu_supports("avx512vnni")}, {"avx512bf16", __builtin_cpu_supports("avx512bf16")},
      {"amx-bf16", (amx_bits() & kAmxBf16) && tile_state_granted()},
      {"amx-int8", (amx_bits() & kAmxInt8) && tile_state_granted()}};
  std::vector<std::string> present;
  for (const auto& [name, has] : checks)
    if (has) present.push_back(name);
  return present;
}

}  // namespace medlab
