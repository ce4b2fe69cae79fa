// The AVX-512 (VNNI) matmul kernels, one getter per weight family; kernels_avx512() assembles
// them into a KernelSet.
#pragma once

#include "kernels.h"

namespace dspark::cpu {

MatmulKernel avx512_q4_0();
MatmulKernel avx512_q4_1();
MatmulKernel avx512_q5_0();
MatmulKernel avx512_q5_1();
MatmulKernel avx512_q8_0();
MatmulKernel avx512_q4_k();
MatmulKernel avx512_q5_k();
MatmulKernel avx512_q6_k();
MatmulKernel avx512_f32();
MatmulKernel avx512_f16();
MatmulKernel avx512_bf16();

}  // namespace dspark::cpu
