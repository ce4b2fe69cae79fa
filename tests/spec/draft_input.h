// A drafter input for tests: the request's committed tokens (all counted as prompt; the anchor
// is tokens.back()), its budget and, for drafters that read the target's KV slots, its table.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "dspark/spec.h"

namespace dspark::test {

// tokens and block_table must outlive the result (DraftInput holds spans).
inline spec::DraftInput draft_input(spec::RequestId id, const std::vector<int32_t>& tokens,
                                    int32_t max_nodes, int32_t max_depth,
                                    const SamplingParams* params = nullptr,
                                    std::span<const int32_t> block_table = {}) {
  spec::DraftInput in;
  in.id = id;
  in.tokens = tokens;
  in.n_prompt = int32_t(tokens.size());
  in.max_nodes = max_nodes;
  in.max_depth = max_depth;
  in.params = params;
  in.block_table = block_table;
  return in;
}

}  // namespace dspark::test
