// Run-time CPU feature detection and the ISA cap (DSPARK_CPU_ISA or set_isa_cap) that decides
// which kernel set the backend dispatches to.
#include <cstdlib>
#include <cstring>

#include "dspark/backend_cpu.h"

namespace dspark::cpu {
namespace {

CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // libgcc also checks that the OS saves the AVX / AVX-512 register state.
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.f16c = __builtin_cpu_supports("f16c");
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  f.avx512vnni = __builtin_cpu_supports("avx512vnni");
  f.avx512bf16 = __builtin_cpu_supports("avx512bf16");
  f.avxvnni = __builtin_cpu_supports("avxvnni");
#endif
  return f;
}

Isa level_of(const CpuFeatures& f) {
  if (!(f.avx2 && f.fma && f.f16c)) return Isa::Scalar;
  if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512vnni) return Isa::Avx512;
  return Isa::Avx2;
}

// Features with everything above `cap` switched off.
CpuFeatures capped(const CpuFeatures& f, Isa cap) {
  CpuFeatures c = f;
  if (cap < Isa::Avx512) {
    c.avx512f = c.avx512bw = c.avx512vl = c.avx512vnni = c.avx512bf16 = false;
  }
  if (cap < Isa::Avx2) c.avx2 = c.fma = c.f16c = c.avxvnni = false;
  return c;
}

Isa cap_from_env() {
  const char* v = std::getenv("DSPARK_CPU_ISA");
  if (v == nullptr) return Isa::Avx512;
  if (std::strcmp(v, "scalar") == 0) return Isa::Scalar;
  if (std::strcmp(v, "avx2") == 0) return Isa::Avx2;
  return Isa::Avx512;
}

struct State {
  CpuFeatures hardware = detect();
  CpuFeatures active = capped(hardware, cap_from_env());
};

State& state() {
  static State s;
  return s;
}

}  // namespace

const CpuFeatures& cpu_features() {
  return state().active;
}

Isa active_isa() {
  return level_of(state().active);
}

Isa set_isa_cap(Isa cap) {
  state().active = capped(state().hardware, cap);
  return active_isa();
}

const char* isa_name() {
  switch (active_isa()) {
    case Isa::Avx512:
      return "avx512-vnni";
    case Isa::Avx2:
      return "avx2";
    case Isa::Scalar:
      break;
  }
  return "scalar";
}

}  // namespace dspark::cpu
