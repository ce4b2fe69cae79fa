// The opt-in per-op timing table behind profile::Scope (see backend_cpu.h). Entries are keyed by
// (kind pointer, a, b): a handful of kinds and shapes per model, so a linear search is enough.
#include <chrono>
#include <cstdio>
#include <mutex>

#include "dspark/backend_cpu.h"

namespace dspark::cpu::profile {
namespace {

struct Slot {
  const char* kind;
  int64_t a, b;
  int64_t calls, ns;
};

std::mutex table_mutex;
std::vector<Slot>& table() {
  static std::vector<Slot> t;
  return t;
}

std::string name_of(const Slot& s) {
  std::string name = s.kind;
  if (s.a <= 0 && s.b <= 0) return name;
  const DTypeInfo* info = dtype_info(DType(s.a));
  char shape[96];
  // Weights are [rows, cols]: the op maps cols inputs to rows outputs per token.
  std::snprintf(shape, sizeof shape, " %s %lld->%lld", info != nullptr ? info->name : "?",
                static_cast<long long>(s.b & 0xFFFFFFFF), static_cast<long long>(s.b >> 32));
  return name + shape;
}

}  // namespace

namespace detail {

std::atomic<bool> on{false};

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void record(const char* kind, int64_t a, int64_t b, int64_t ns) {
  std::lock_guard<std::mutex> lock(table_mutex);
  for (Slot& s : table()) {
    if (s.kind == kind && s.a == a && s.b == b) {
      ++s.calls;
      s.ns += ns;
      return;
    }
  }
  table().push_back({kind, a, b, 1, ns});
}

}  // namespace detail

void set_enabled(bool on) {
  detail::on.store(on, std::memory_order_relaxed);
}

std::vector<Entry> take() {
  std::lock_guard<std::mutex> lock(table_mutex);
  std::vector<Entry> out;
  for (const Slot& s : table()) out.push_back({name_of(s), s.calls, double(s.ns) * 1e-9});
  table().clear();
  return out;
}

}  // namespace dspark::cpu::profile
