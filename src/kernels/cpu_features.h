// The CPU features the kernel choice looks at, as this process sees them: what an environment report
// records beside the kernel set that best_kernels() chose from them.
#pragma once

#include <string>
#include <vector>

namespace medlab {

// Those this CPU (and OS) offers, in the order the kernel sets need them: "avx2", "fma", "f16c" (AVX2
// kernels), "avx512f", "avx512bw", "avx512vl" (AVX-512 kernels), "avx512vnni" (their Q8_0/Q4_0 products).
std::vector<std::string> cpu_features();

}  // namespace medlab
