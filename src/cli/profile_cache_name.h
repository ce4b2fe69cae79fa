// Where `serve` and `generate` keep the speculation start-up profile between runs, and the key
// naming what its timings depend on.
#pragma once

#include <string>

#include "dspark/engine.h"

namespace dspark::cli {

// Sets config.spec.profile_cache and profile_key: the key names the target and draft files (a
// fingerprint of their tensor tables and first and last bytes, not their paths), the method, the
// CPU model and instruction set, the thread count, the step budget and the dspark version; the
// file is $XDG_CACHE_HOME/dspark/profile-<hash of key>.txt (else ~/.cache/dspark/...). Leaves the
// cache off where no cache folder can be named.
void name_profile_cache(engine::EngineConfig& config, const std::string& draft_path);

}  // namespace dspark::cli
