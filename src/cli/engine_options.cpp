// Shared engine flags: parsing, model and draft loading, KV sizing.
#include "engine_options.h"

#include "commands.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace dspark::cli {

namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;

uint64_t physical_memory() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? uint64_t(pages) * uint64_t(page) : uint64_t{8} << 30;
}

// Same vocabulary: same size and the same bytes for every token.
Status check_same_vocabulary(const Tokenizer& target, const Tokenizer& draft) {
  if (target.vocab_size() != draft.vocab_size()) {
    return Error{"the draft model's vocabulary has " + std::to_string(draft.vocab_size()) +
                 " tokens, the target's " + std::to_string(target.vocab_size()) +
                 ": speculative decoding needs the same tokenizer"};
  }
  for (int32_t id = 0; id < target.vocab_size(); ++id) {
    if (target.token_bytes(id, true) != draft.token_bytes(id, true)) {
      return Error{"the draft model's token " + std::to_string(id) +
                   " differs from the target's: speculative decoding needs the same tokenizer"};
    }
  }
  return Status::Ok();
}

Result<engine::SpecMethod> parse_method(const std::string& name) {
  if (name == "none") return engine::SpecMethod::kNone;
  if (name == "ngram") return engine::SpecMethod::kNgram;
  if (name == "draft-model") return engine::SpecMethod::kDraftModel;
  if (name == "dspark") return engine::SpecMethod::kDSpark;
  return Error{"--spec-method '" + name + "': expected none, ngram, draft-model or dspark"};
}

// KV bytes per block of a DSpark checkpoint's context cache: its draft layers have the
// target's layer geometry, so a share of the target's bytes per block.
Result<uint64_t> dspark_bytes_per_block(const std::string& path, const ModelConfig& target,
                                        int block_size) {
  auto file = ModelFile::open(path);
  if (!file.ok()) return Error{"dspark checkpoint: " + file.error().message};
  auto layers = (*file)->get_int("hf.num_hidden_layers");
  if (!layers.ok() || *layers < 1 || *layers > 1024) {
    return Error{"dspark checkpoint " + path +
                 ": config.json needs num_hidden_layers in [1, 1024]"};
  }
  return KvStorage::bytes_per_block(target, block_size) / uint64_t(target.n_layers) *
         uint64_t(*layers);
}

}  // namespace

void add_engine_options(Args& args) {
  args.option("model", "m", "PATH", "GGUF file or Hugging Face folder", default_model_path())
      .option("threads", "t", "K", "CPU threads; 0 = all cores", "0")
      .option("ctx", "c", "N", "context length; 0 = the model's trained context", "0")
      .option("kv-cache-mem", "", "MIB", "KV cache memory in MiB (default: sized to the work)")
      .option("max-num-seqs", "", "N", "requests running at once", "16")
      .option("max-num-batched-tokens", "", "N", "tokens computed per engine step", "512")
      .option("no-prefix-caching", "", "", "do not reuse the KV of shared prompt prefixes")
      .option("spec-method", "", "M", "speculative decoding: none, ngram, draft-model or dspark",
              "none")
      .option("draft-model", "", "PATH",
              "draft model (--spec-method draft-model) or DSpark checkpoint folder (dspark)")
      .option("spec-max-depth", "", "N", "deepest drafted token", "6")
      .option("spec-tree-budget", "", "N", "draft tokens per request per step", "12")
      .option("spec-top-k", "", "K", "children per draft node (1: chains)", "2")
      .option("spec-fixed-depth", "", "N",
              "verify every draft up to depth N (no load-aware controller; for comparison)")
      .option("no-profile-cache", "", "",
              "profile step latencies at every start; keep no profile on disk");
}

Result<EngineFlags> read_engine_flags(const Args& args) {
  EngineFlags flags;
  engine::EngineConfig& c = flags.config;
  DSPARK_RETURN_IF_ERROR(take(args.integer("threads", 0, 1024), c.threads));
  DSPARK_RETURN_IF_ERROR(take(args.integer("ctx", 0, 1 << 24), flags.ctx));
  DSPARK_RETURN_IF_ERROR(take(args.integer("max-num-seqs", 1, 4096), c.max_num_seqs));
  DSPARK_RETURN_IF_ERROR(
      take(args.integer("max-num-batched-tokens", 1, 1 << 20), c.max_num_batched_tokens));
  c.prefix_caching = !args.has("no-prefix-caching");
  auto method = parse_method(args.str("spec-method"));
  if (!method.ok()) return method.error();
  c.spec.method = *method;
  DSPARK_RETURN_IF_ERROR(take(args.integer("spec-max-depth", 1, 64), c.spec.max_depth));
  DSPARK_RETURN_IF_ERROR(take(args.integer("spec-tree-budget", 1, 256), c.spec.tree_budget));
  DSPARK_RETURN_IF_ERROR(take(args.integer("spec-top-k", 1, 16), c.spec.draft_top_k));
  if (args.has("spec-fixed-depth")) {
    int32_t depth = 0;
    DSPARK_RETURN_IF_ERROR(take(args.integer("spec-fixed-depth", 0, 64), depth));
    c.spec.fixed_depth = depth;
  }
  const bool needs_draft = c.spec.method == engine::SpecMethod::kDraftModel ||
                           c.spec.method == engine::SpecMethod::kDSpark;
  if (args.has("draft-model") != needs_draft) {
    return Error{
        "--draft-model PATH goes with --spec-method draft-model or dspark (and only "
        "with them)"};
  }
  if (args.has("kv-cache-mem")) {
    DSPARK_RETURN_IF_ERROR(take(args.integer("kv-cache-mem", 1, int64_t{1} << 30), flags.kv_mib));
  }
  return flags;
}

Result<EngineSetup> setup_engine(const Args& args, bool quiet, int64_t kv_tokens_hint) {
  auto flags = read_engine_flags(args);
  if (!flags.ok()) return flags.error();
  EngineSetup setup;
  setup.config = flags->config;
  engine::EngineConfig& c = setup.config;
  const int64_t ctx = flags->ctx;

  auto target = load_model(args.str("model"), quiet);
  if (!target.ok()) return target.error();
  setup.target = std::move(target).value();
  c.model = setup.target.model;
  c.spec.profile_cache = profile_cache_path(args, c);
  c.tokenizer = setup.target.tokenizer;
  const int64_t trained = setup.target.model->config().context_length;
  setup.context = ctx > 0 && (trained <= 0 || ctx < trained) ? ctx : trained;
  c.max_context = setup.context;

  if (c.spec.method == engine::SpecMethod::kDraftModel) {
    auto draft = load_model(args.str("draft-model"), quiet);
    if (!draft.ok()) return Error{"draft model: " + draft.error().message};
    Status same = check_same_vocabulary(*setup.target.tokenizer, *draft->tokenizer);
    if (!same.ok()) return same.error();
    c.spec.draft_model = draft->model;
    setup.draft = std::move(draft).value();
  }

  // KV: what the flag says, else enough for the hinted tokens plus a spare block per request,
  // never more than a quarter of the machine's memory.
  uint64_t per_block = KvStorage::bytes_per_block(c.model->config(), c.block_size);
  if (setup.draft)
    per_block += KvStorage::bytes_per_block(setup.draft->model->config(), c.block_size);
  if (c.spec.method == engine::SpecMethod::kDSpark) {
    c.spec.dspark_checkpoint = args.str("draft-model");
    auto extra = dspark_bytes_per_block(c.spec.dspark_checkpoint, c.model->config(), c.block_size);
    if (!extra.ok()) return extra.error();
    per_block += *extra;
  }
  uint64_t budget = 0;
  if (flags->kv_mib > 0) {
    budget = uint64_t(flags->kv_mib) * kMiB;
  } else {
    const int64_t blocks =
        (std::max<int64_t>(kv_tokens_hint, 1) + c.block_size - 1) / c.block_size + c.max_num_seqs;
    budget = std::min<uint64_t>(uint64_t(blocks) * per_block, physical_memory() / 4);
  }
  auto blocks = kv::blocks_for_budget(budget, per_block);
  if (!blocks.ok()) return Error{"--kv-cache-mem: " + blocks.error().message};
  c.kv_blocks = *blocks;
  c.spec.draft_kv_blocks = c.kv_blocks;
  if (!quiet) {
    std::fprintf(stderr, "kv cache: %d blocks of %d tokens (%.1f MiB), context %ld, spec %s\n",
                 c.kv_blocks, c.block_size, double(uint64_t(c.kv_blocks) * per_block) / kMiB,
                 long(setup.context), engine::spec_method_name(c.spec.method));
  }
  return setup;
}

Result<std::unique_ptr<engine::Engine>> start_engine(const engine::EngineConfig& config,
                                                     bool quiet) {
  const bool profiles =
      config.spec.method != engine::SpecMethod::kNone && config.spec.profile && !quiet;
  if (profiles) {
    std::fprintf(stderr, "speculation: %s, profiling step latencies on the model...\n",
                 engine::spec_method_name(config.spec.method));
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto made = engine::Engine::create(config);
  if (made.ok() && profiles) {
    std::fprintf(stderr, "speculation: ready in %.2f s\n",
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return made;
}

}  // namespace dspark::cli
