// The engine flags shared by `dspark generate` and `dspark serve`: model, threads, KV memory,
// batching limits, prefix caching and speculative decoding; and building an Engine from them.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "args.h"
#include "dspark/engine.h"
#include "model_loading.h"

namespace dspark::cli {

// Declares -m/--model, --threads, --ctx, --kv-cache-mem, --max-num-seqs,
// --max-num-batched-tokens, --no-prefix-caching, --spec-method, --draft-model, --spec-max-depth,
// --spec-tree-budget, --spec-top-k, --spec-fixed-depth, --no-profile-cache.
void add_engine_options(Args& args);

// The engine options, checked, before any file is opened: what setup_engine starts from.
struct EngineFlags {
  engine::EngineConfig config;  // threads, batching, prefix caching, speculation settings
  int64_t ctx = 0;              // --ctx (0: the model's trained context)
  int64_t kv_mib = 0;           // --kv-cache-mem (0: sized to the work)
};
Result<EngineFlags> read_engine_flags(const Args& args);

struct EngineSetup {
  LoadedModel target;
  std::optional<LoadedModel> draft;  // --spec-method draft-model
  engine::EngineConfig config;       // model, tokenizer and KV sizing filled in
  int64_t context = 0;               // tokens a request may hold (prompt + output)
};

// Loads the model (and the draft model, refusing one whose vocabulary differs from the
// target's) and sizes the KV pool: --kv-cache-mem MiB, or by default kv_tokens_hint tokens plus a
// spare block per request (capped to a quarter of the machine's memory).
Result<EngineSetup> setup_engine(const Args& args, bool quiet, int64_t kv_tokens_hint);

// Where the engine keeps the start-up profile of these settings (SpecConfig::profile_cache): a
// file under $XDG_CACHE_HOME/dspark (else ~/.cache/dspark) named by a hash of what the timings
// depend on (model and draft files, method, CPU model, threads, dspark's version); "" with
// --no-profile-cache, without speculation or without a cache folder.
std::string profile_cache_path(const Args& args, const engine::EngineConfig& c);

// Engine::create, with a line before a speculative engine's start-up profile (seconds of
// forwards on the real model) and one after it with its time, unless quiet.
Result<std::unique_ptr<engine::Engine>> start_engine(const engine::EngineConfig& config,
                                                     bool quiet);

}  // namespace dspark::cli
