// The CPU features the kernel choice looks at, as this process sees them: what an environment report
// records beside the kernel set that best_kernels() chose from them.
#pragma once

#include <string>
#include <vector>

namespace medlab {

// Those this CPU (and OS) offers, in the order the kernel sets need them: "avx2", "fma", "f16c" (AVX2
// kernels), "avx512f", "avx512bw", "avx512vl" (AVX-512 kernels), "avx512vnni" (their Q8_0/Q4_0 products),
// "avx512bf16" (their fast bf16 products), "amx-bf16" and "amx-int8" (the amx set; see amx_usable).
std::vector<std::string> cpu_features();

// Whether this process may use AMX's bf16 and int8 tiles: the CPU has them and Linux granted the process
// their state, which it asks for on the first call (arch_prctl; Linux 5.16 and later hand it out only on
// request).
bool amx_usable();

}  // namespace medlab
