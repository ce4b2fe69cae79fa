// Speculative decoding: draft trees, drafters (ngram prompt lookup, an independent draft model),
// lossless acceptance, online confidence calibration and the load-aware prefix scheduler
// (DSpark's controller, dspark-spec.md section 7) that decides how many drafted tokens of each
// request one target forward verifies.
//
// One round for a request: its anchor is its newest committed token (sampled last step, KV not
// yet written). The drafter proposes a tree of tokens after the anchor; the controller admits a
// prefix-closed subset; the target runs the anchor and the admitted nodes in one forward (each
// node attends to the anchor and its ancestors); acceptance walks the tree from the anchor and
// returns the accepted path plus one token sampled from the target (the bonus). Output is
// distributed exactly as the target alone would sample it.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "dspark/kv.h"
#include "dspark/model.h"
#include "dspark/sample.h"
#include "dspark/status.h"

namespace dspark::spec {

using RequestId = kv::RequestId;

// A distribution over a few ids that the drafter really sampled from (probs sum to 1).
struct SparseDist {
  std::vector<int32_t> ids;  // [n] distinct
  std::vector<float> probs;  // [n]
};

// Drafted tokens as a tree rooted at the anchor. Nodes are in topological order (a parent comes
// before its children) and siblings in the order they were drawn.
struct DraftTree {
  std::vector<int32_t> tokens;  // [n_nodes]
  std::vector<int32_t> parent;  // [n_nodes] index of the parent node; -1: a child of the anchor
  // [n_nodes] the drafter's raw confidence in [0, 1] that the node is accepted given that its
  // parent was (uncalibrated).
  std::vector<float> confidence;
  // [n_nodes] index into q of the distribution this node's sibling group was drawn from, without
  // replacement, in sibling order; -1: a deterministic proposal (a point mass on the token).
  std::vector<int32_t> q_index;
  std::vector<SparseDist> q;

  int32_t size() const { return static_cast<int32_t>(tokens.size()); }
  void clear();
  // Appends a node and returns its index.
  int32_t add(int32_t token, int32_t parent_node, float confidence, int32_t q_index = -1);
  int32_t depth(int32_t node) const;  // 1 for children of the anchor
  // Shapes agree, parents precede children, tokens lie in [0, vocab), confidences in [0, 1],
  // sibling tokens are distinct, q indices are valid and every stochastic node's token has
  // positive probability in its q. The error names the first violation.
  Status check(int64_t vocab) const;
  // The subtree of the nodes in keep (ascending, closed under parents), renumbered in order; q
  // keeps only the distributions still referenced. Entries that break that (unsorted, repeated,
  // out of range, parent not kept) are skipped. Exact sampling needs every stochastic sibling
  // group kept as a prefix of its draw order (drop later siblings, never earlier ones).
  DraftTree subset(std::span<const int32_t> keep) const;  // keep: [n_keep]
};

// ---------------------------------------------------------------------------------------------
// Acceptance

// The target's processed distribution (sample.h steps 1-8, with the history extended by the
// path from the anchor to the node) at the anchor (node -1) or after a node. Computed lazily:
// acceptance asks only for the nodes on the path it walks.
using TargetDist = std::function<const std::vector<float>&(int32_t node)>;  // -> [vocab]

// The token greedy decoding picks at the anchor (node -1) or after a node: the argmax of the
// processed logits, what the target's one-hot greedy distribution holds.
using TargetToken = std::function<int32_t(int32_t node)>;

struct Acceptance {
  std::vector<int32_t> path;  // [n_accepted] accepted node indices, anchor's child first
  int32_t bonus = -1;         // token sampled from the target after the path
};

// Greedy (temperature <= 1e-5, where every target distribution is one-hot): follows, from the
// anchor, the child whose token is the target's argmax; the bonus is the argmax after the path.
// Sampling: at each node with children, tries them in order with recursive rejection sampling
// (accept child x with probability min(1, p(x) / q_i(x)); on rejection p <- normalize(max(0,
// p - q_i)) and the group's q loses x; deterministic proposals have q_i = point mass); when every
// child is rejected (or there are none) the bonus is drawn from the current residual p. The
// output path plus bonus is then distributed exactly as sampling the target token by token.
// uniform() returns doubles in [0, 1).
Acceptance accept(const DraftTree& tree, bool greedy, const TargetDist& target,
                  const std::function<double()>& uniform);
// Greedy acceptance from the target's tokens alone (no distribution built): what accept() does
// for greedy parameters, with target(node) the argmax of its one-hot distribution.
Acceptance accept_greedy(const DraftTree& tree, const TargetToken& target);

// ---------------------------------------------------------------------------------------------
// Drafters

struct DraftInput {
  RequestId id = 0;
  std::span<const int32_t> tokens;  // [n] committed tokens (prompt, then output); last: anchor
  int32_t n_prompt = 0;
  int32_t max_nodes = 0;  // budget for this request's tree (0: propose nothing)
  int32_t max_depth = 0;
  const SamplingParams* params = nullptr;  // greedy drafts deterministically; else it may sample
  // [n_blocks] the target's KV blocks of the request: a drafter that keeps per-token context at
  // the target's slots (feature_layers() non-empty) reads the context positions [0, n - 1) there.
  std::span<const int32_t> block_table;
};

class Drafter {
 public:
  virtual ~Drafter() = default;
  virtual const char* name() const = 0;
  // One tree per input (out is resized to inputs.size()). Called once per engine step with every
  // request that decodes this step. A drafter with per-request state (a draft KV cache) catches
  // up on tokens committed since its last call for that id.
  virtual Status propose(std::span<const DraftInput> inputs, std::vector<DraftTree>& out) = 0;
  // The request finished, was aborted or was preempted: drop its state (its next propose, if
  // any, starts from scratch).
  virtual void release(RequestId id) = 0;

  // Drafters that read the target's hidden states (DSpark) name the layers here
  // (ForwardBatch::capture_layers ids: -1 = embeddings, l = after layer l); the engine then
  // captures them in every target forward and hands over each committed token's features.
  virtual std::vector<int32_t> feature_layers() const { return {}; }
  // Committed tokens: token i sits at position positions[i] and its target K/V at target slot
  // slots[i]; features are its captured hidden states in feature_layers() order. The drafter
  // keeps what it derives from them at the same slots, so the target's block sharing (prefix
  // cache, forks) shares it too.
  virtual Status commit_features(std::span<const int64_t> slots,      // [n]
                                 std::span<const int32_t> positions,  // [n]
                                 std::span<const float> features) {   // [n, n_layers, d_model]
    (void)slots, (void)positions, (void)features;
    return Status::Ok();
  }
  // Tokens of the request the drafter must forward before its next draft, given that it has
  // n_committed committed tokens (a draft model's catch-up; 0 for drafters without a cache).
  virtual int64_t pending_tokens(RequestId id, int64_t n_committed) const {
    (void)id, (void)n_committed;
    return 0;
  }
  // Mirrors KvStorage::copy_slots on the target's KV (copy-on-write of a shared block).
  virtual void copy_slots(int64_t from_slot, int64_t to_slot, int64_t n) {
    (void)from_slot, (void)to_slot, (void)n;
  }
  // A step in which requests could have drafted and the engine chose not to (the load, the
  // payoff guard): drafting is off for now.
  virtual void rest() {}
};

struct NgramConfig {
  int32_t max_ngram = 4;  // longest suffix matched
  int32_t min_ngram = 1;  // shortest suffix matched
};
// Prompt lookup: finds the most recent earlier occurrence of the longest suffix (max_ngram down
// to min_ngram tokens) of the request's tokens and proposes what followed it as a chain (or a
// small tree when several earlier occurrences continue differently). Confidence grows with the
// matched length and with how often that continuation followed the suffix.
std::unique_ptr<Drafter> make_ngram_drafter(const NgramConfig& config);

struct DraftModelConfig {
  std::shared_ptr<const Model> model;  // shares the target's tokenizer (checked by the caller)
  int32_t kv_blocks = 0;               // its own paged KV pool
  int32_t block_size = 16;
  int32_t top_k = 4;           // children expanded per node (EAGLE-2 style)
  Backend* backend = nullptr;  // runs its forwards (the engine's; nullptr: its own CPU one)
  // Drafts come from ids below this only, so each draft forward computes that many rows of the
  // output projection (for a 0.5B model with a 152k vocabulary the head is ~40% of the weights
  // read). Byte-level BPE ids rise with rarity, so the first 32k cover nearly every token
  // drafted. 0: the whole vocabulary.
  int32_t vocab_limit = 32768;
};
// An independent small model with its own KV (paged, prefix-cached) proposing trees: at each
// depth it expands the top_k children of the most promising frontier nodes (by path probability)
// up to the node budget. Greedy requests draft deterministically (q_index -1, confidence = the
// draft probability of the token); sampling requests draw children without replacement from the
// draft's processed distribution (recorded in q), each with a confidence fixed before its draw
// (the group's top remaining share times the chance that earlier siblings missed), so which
// sampled node gets verified never depends on its own token. A request whose KV cannot be
// allocated gets an empty tree.
Result<std::unique_ptr<Drafter>> make_draft_model_drafter(DraftModelConfig config);

// ---------------------------------------------------------------------------------------------
// DSpark drafter (dspark-spec.md sections 1-5)

struct DSparkDrafterConfig {
  std::string path;  // checkpoint folder (config.json + safetensors)
  // The target: its config() is the geometry the checkpoint must match (d_model, heads,
  // head_dim, vocab, num_target_layers == n_layers), and its token embedding and output head
  // stand in for the checkpoint's embed_tokens / lm_head when those are absent. Must outlive
  // the drafter (the drafter reads those weights in place).
  const Model* target_model = nullptr;
  int32_t kv_blocks = 0;  // the target's KV pool: context K/V lives at its slots
  int32_t block_size = 16;
  int32_t max_requests = 8;    // blocks drafted per pass (more inputs: in groups)
  Backend* backend = nullptr;  // runs its ops (the engine's; nullptr: its own CPU one)
  uint64_t seed = 0;           // the drafter's sampling generator
  // fc and the draft layers' projections as Q8_0 (dspark_checkpoint.h quantize_layers): about
  // 2.5x faster context commits and block passes on the CPU, drafts within quantization noise.
  // Off: the checkpoint's float weights exactly (what the reference tests compare).
  bool quantize_layers = false;
  // Committed feature values kept unprojected until a round needs them (default 32 MiB of
  // floats). Beyond it they are projected, or, once the engine has rested the drafter for
  // rest_steps_to_drop steps in a row (load keeps drafting off), dropped: the requests whose
  // context they were then never draft again (their context K/V would be stale), and a server
  // whose load keeps drafting off pays no projection at all.
  size_t max_pending_floats = size_t{8} << 20;
  int32_t rest_steps_to_drop = 16;
};
// A Qwen3DSparkModel checkpoint: draft layers attending non-causally over the target's features
// (projected once per committed token into K/V kept at the target's slots) and one block of
// [anchor, MASK x (B-1)]; a vanilla Markov head corrects the B parallel logits sequentially and
// a confidence head scores each position. Proposes one chain of min(B, max_depth, max_nodes)
// nodes per request: greedy requests take the argmax (q_index -1), sampling ones draw from the
// top 64 of softmax(L / T) renormalised (recorded in q). Confidence: the confidence head's
// sigmoid (of z_k / T_k when config.json has `confidence_temperatures`, B positive floats), or
// the token's draft probability when the checkpoint has none.
// The draft layers always rotate Hugging Face style (rotate-half over the whole head), whatever
// layout the target's own RoPE uses (a GGUF llama target's is interleaved); theta and scaling
// are the target's. embed_tokens.weight and lm_head.weight are optional: DeepSpec freezes them
// as copies of the target's, so each one missing is read from the target itself (its token
// embedding, its output head; possibly quantized), which saves the checkpoint's copy and, for
// the head, reads the target's (smaller) quantized rows every round.
Result<std::unique_ptr<Drafter>> make_dspark_drafter(const DSparkDrafterConfig& config);

// ---------------------------------------------------------------------------------------------
// Confidence calibration

// Online calibration of drafter confidences, per depth (dspark-spec.md section 5): depth k's raw
// confidence c is mapped to sigmoid(logit(c) / T_k + b_k), the probability that the node is
// accepted given its parent was. T_k and b_k are fitted by logistic regression (Platt scaling)
// on the recorded rounds that reached depth k, so the product of calibrated confidences along a
// path is an honest prefix survival. T_k alone (the paper's temperature scaling) keeps a raw 0.5
// at 0.5 and cannot correct a drafter that is confident and usually wrong (prompt lookup on
// prose: raw 0.67, accepted 16%); the bias can. Refits every refit_every observed rounds, and
// before that at 32, 64, 128, ... rounds.
class Calibrator {
 public:
  explicit Calibrator(int32_t max_depth, int32_t refit_every = 64);  // 0: only refit() fits
  float calibrate(int32_t depth, float raw) const;                   // depth >= 1
  // One verified chain: raw confidences of the verified nodes along the walked path
  // ([n_verified], depth 1 first) and how many were accepted.
  void observe(std::span<const float> raw_path, int32_t n_accepted);
  // 20-bin ECE of the current calibration on the recorded rounds, pooled over the verified
  // depths of each round (calibrated survival after k nodes vs "the first k were accepted").
  double ece() const;
  double temperature(int32_t depth) const;  // T_k: 1 = the raw confidence's own spread
  double bias(int32_t depth) const;         // b_k: 0 = no shift
  int64_t n_rounds() const;  // rounds observed since construction (the ring keeps the last ones)
  // Fits T_k and b_k of every depth now on the recorded rounds (observe() calls it every
  // refit_every); a few Newton steps over the rounds, about 1 ms per 1,000 recorded rounds.
  void refit();

  static constexpr int32_t kCapacity = 4096;  // rounds kept (ring buffer)
  static constexpr int32_t kBins = 20;        // ECE bins over [0, 1]
  static constexpr int32_t kMinRounds = 32;   // a depth reached fewer times keeps its fit
  static constexpr double kMinTemperature = 0.25, kMaxTemperature = 8.0, kMaxBias = 10.0;

 private:
  int32_t max_depth_;
  int32_t refit_every_;
  std::vector<double> scale_;        // [max_depth] 1 / T_k
  std::vector<double> bias_;         // [max_depth] b_k
  std::vector<float> raw_;           // [kCapacity, max_depth] ring of raw confidences
  std::vector<int32_t> n_verified_;  // [kCapacity]
  std::vector<int32_t> n_accepted_;  // [kCapacity]
  int32_t n_recorded_ = 0;           // filled slots (<= kCapacity)
  int32_t next_slot_ = 0;            // where the next round goes
  int64_t n_rounds_ = 0;
  int32_t since_refit_ = 0;
  // ece()'s 20 bins over the recorded rounds under the current fit, kept up to date so that
  // ece() is cheap (an engine publishes it every step): a round's terms go in when it is
  // recorded and out when the ring overwrites it, and all are recomputed when a refit changes
  // the fit.
  std::array<double, kBins> ece_sum_x_{};  // calibrated survivals per bin
  std::array<double, kBins> ece_sum_y_{};  // accepted prefixes per bin
  int64_t ece_n_ = 0;
  void count_in_ece(size_t slot, double sign);  // the round in slot, added (+1) or removed (-1)
};

// ---------------------------------------------------------------------------------------------
// Steps per second at B forward tokens

// SPS(B) for B = 1..max_tokens: profiled at start-up, which fixes how the sizes compare; each
// live step then scales the whole table toward its own latency (exponential moving average of
// the ratio to the prediction), so the table follows the machine's speed while its shape stays
// the profile's. Steps beyond the largest size are ignored. Read by linear interpolation
// between profiled sizes.
class SpsTable {
 public:
  // sizes: ascending token counts profiled; seconds: step latency at each size. Entries with a
  // non-positive size, a non-finite or non-positive latency or a size not above the previous one
  // are dropped; an empty table reports 0 steps per second everywhere.
  SpsTable(std::vector<int32_t> sizes, std::vector<double> seconds);
  double sps(int32_t n_tokens) const;  // steps per second; sizes beyond the last extrapolate
  // Seconds per step: the first size's below it, linear in between, the last segment's slope
  // (held at >= 0) beyond the last size; 0 for an empty table.
  double latency(int32_t n_tokens) const;
  void observe(int32_t n_tokens, double seconds);  // ignores non-finite or non-positive seconds
  const std::vector<int32_t>& sizes() const;

  static constexpr double kAlpha = 0.1;  // EMA weight of one observed step

 private:
  std::vector<int32_t> sizes_;   // [n_sizes] ascending
  std::vector<double> seconds_;  // [n_sizes] latency per size
};

// ---------------------------------------------------------------------------------------------
// Draft depth, chosen before drafting

// The bucket of a count n in power-of-two buckets 1, 2-3, 4-7, ... (n < 1 counts as 1), the last
// of n_buckets taking everything above: how the draft cost table and the payoff guard group
// loads.
int32_t power_of_two_bucket(int32_t n, int32_t n_buckets);

// Seconds a drafter spends per step, by how many requests it drafts for (buckets of powers of
// two) and how deep; learnt from live steps (exponential moving average per entry).
class DraftCostTable {
 public:
  explicit DraftCostTable(int32_t max_depth);
  void observe(int32_t n_requests, int32_t depth, double seconds);  // ignores bad values
  // A depth never measured in the bucket costs what the deepest measured shallower one did (0
  // when none was): optimistic, so a depth that may pay gets tried once and then known.
  double seconds(int32_t n_requests, int32_t depth) const;

  static constexpr double kAlpha = 0.2;   // EMA weight of one observed step
  static constexpr int32_t kBuckets = 8;  // 1, 2-3, 4-7, ..., 128 and more

 private:
  int32_t max_depth_;
  std::vector<double> seconds_;  // [kBuckets, max_depth]; < 0: not measured
};

// Whether drafting has paid, measured after the fact. The depth choice predicts from forecasts
// and cost tables; this checks the prediction against what drafted steps achieved: for each
// load (requests a step serves, power-of-two buckets) a moving average of the log of realised
// commits per second of drafted steps over what plain decoding would have done in the same
// step (the SPS table's latency for the step without drafts). Where that average shows
// drafting losing throughput, the load decodes plainly, except for one retry step in
// kRetryEvery, so that a change (a better-calibrated drafter, another mix of requests) is
// seen. This is what keeps speculation at or above plain decoding where the models behind the
// depth choice are wrong (a draft model paying a catch-up on every sporadic round, a
// miscalibrated confidence).
class PayoffGuard {
 public:
  // A drafted step serving `served` requests committed at realised_rate (commits per second,
  // drafting and the forward included) where plain decoding would have reached plain_rate.
  // Non-finite or non-positive rates are ignored.
  void observe(int32_t served, double plain_rate, double realised_rate);
  // Whether a step serving `served` requests may draft; counts the refused steps of a losing
  // load so that every kRetryEvery-th one is allowed.
  bool allows(int32_t served);
  // The measured gain exp(mean log ratio) at this load (1 before any drafted step).
  double gain(int32_t served) const;

  static constexpr int32_t kBuckets = 8;      // 1, 2-3, 4-7, ..., 128 and more
  static constexpr double kAlpha = 0.1;       // EMA weight of one drafted step
  static constexpr int32_t kMinSteps = 12;    // drafted steps before a load can be judged
  static constexpr double kFloor = 0.98;      // a gain under this is a loss beyond step noise
  static constexpr int32_t kRetryEvery = 32;  // refused steps between retries at a losing load

 private:
  struct Load {
    double log_gain = 0.0;
    int32_t n_steps = 0;  // drafted steps observed (saturates)
    int32_t refused = 0;  // steps refused since the last allowed one
  };
  Load loads_[kBuckets];
};

struct DepthInput {
  int32_t base_tokens = 0;  // the step's forward tokens without drafts
  // Progress the step makes without drafts, in requests served: one per request it carries
  // (decoding or prefilling: a longer step delays a prompt's first token as much as a decode's
  // next one) and one per request waiting for admission. Drafting pays only if its extra commits
  // per extra second beat this rate.
  int32_t base_commits = 0;
  int32_t n_drafting = 0;  // requests that would draft
  int32_t max_depth = 0;
  int32_t max_draft_tokens = 0;  // budget left for drafts in the step
  // [max_depth] expected survival of the best drafted node at each depth (recent calibrated
  // confidences).
  std::span<const double> survival;
  // A drafter that must first catch up on history it has not seen (a draft model meeting a
  // request's prompt): those seconds are paid once and then serve the request's remaining
  // steps, so each step is charged catch_up_seconds / (remaining_tokens / tokens per step).
  double catch_up_seconds = 0.0;
  double remaining_tokens = 0.0;  // mean tokens the drafting requests may still generate
  // The catch-up is amortised only if drafting would still pay, caught up, once the coming
  // load decodes: coming_requests requests (running and waiting; 0: no check) judged on
  // cautious_survival ([max_depth], see cautious_survival()) must beat plain decoding by
  // catch_up_margin. Otherwise those steps may be few (a step is cheap to verify in while
  // prompts prefill, not after), and this step pays it all.
  int32_t coming_requests = 0;
  std::span<const double> cautious_survival;
  double catch_up_margin = 0.1;
  // Drafting that costs less than this (seconds, catch-up included) at the deepest depth the
  // budget allows is free: it goes that deep, and the admission controller alone decides what
  // is verified. 0: never free.
  double free_draft_seconds = 0.0;
  // Requests whose prompt the step prefills: their first token waits for the whole step. Where
  // there are any, drafting (its own seconds, the catch-up and the extra verified tokens) may
  // lengthen the step by at most max_prefill_delay of its plain latency, so a prompt arriving
  // among drafting requests gets its first token about as soon as without speculation.
  int32_t n_prefilling = 0;
  double max_prefill_delay = 0.05;
};
// The draft depth D in [0, max_depth] with the most expected committed tokens per second,
// counting the drafter's own time: (base_commits + n_drafting * sum_{j<=D} survival_j) /
// (SPS latency of base_tokens + n_drafting * D + drafting seconds at D + the amortised
// catch-up); ties go to the shallower depth, and none deeper than a prefill allows (see
// n_prefilling). A free drafter (see free_draft_seconds) drafts as
// deep as allowed instead, which also keeps the survival forecast fresh: a forecast read only
// after drafting would stay at its last low value once drafting stopped. It reads only past
// steps, so the step's own drafts never influence how deep they are drafted (the admission
// controller then decides, with its early stop, what to verify).
int32_t choose_draft_depth(const DepthInput& input, const SpsTable& sps,
                           const DraftCostTable& cost);

// Per depth, how many recent verified rounds reached it and how many accepted there: counts
// that fade by kKeep per round, so the estimate follows a workload that changes (cumulative
// totals would trust the server's first hour forever). Depth d is index d - 1.
class RecentAcceptance {
 public:
  static constexpr double kKeep = 1.0 - 1.0 / 256.0;  // weight of the past per observed round

  // One verified round: depths 1..n_tried were verified, 1..n_accepted accepted
  // (n_accepted <= n_tried).
  void observe(size_t n_tried, size_t n_accepted);
  std::span<const double> verified_at() const { return verified_at_; }  // [depths seen]
  std::span<const double> accepted_at() const { return accepted_at_; }  // [depths seen]

 private:
  std::vector<double> verified_at_;  // [depths seen]
  std::vector<double> accepted_at_;  // [depths seen]
};

// Where a wrong guess costs others (a step under load, a catch-up): per depth, the lower of the
// forecast ([max_depth], optimistic where untried or miscalibrated) and the survival seen in
// verified rounds (verified_at / accepted_at per depth, as RecentAcceptance keeps them, each
// depth's acceptance rate shrunk toward prior_acceptance as if prior_rounds more rounds had
// been seen at it).
std::vector<double> cautious_survival(std::span<const double> forecast,
                                      std::span<const double> verified_at,
                                      std::span<const double> accepted_at,
                                      double prior_rounds = 8.0, double prior_acceptance = 0.5);

// ---------------------------------------------------------------------------------------------
// Prefix scheduler (controller)

struct Candidates {
  // [n_nodes] calibrated survival a = product of calibrated confidences from the anchor to the
  // node (non-increasing along every path).
  std::vector<float> survival;
  std::vector<int32_t> parent;  // [n_nodes] as in DraftTree
};

struct ControllerInput {
  int32_t base_tokens = 0;  // tokens the step computes anyway (prefill chunks + one per decode)
  std::vector<Candidates> requests;  // one per decoding request
  // Requests the step carries or keeps waiting that verify nothing (prefills, opted-out or
  // non-drafting decodes, requests not yet admitted): a deeper verify delays them too, so the
  // admission objective counts each as one served request beside the drafting ones.
  int32_t other_commits = 0;
  int32_t max_draft_tokens = 0;        // budget and KV limit on admitted nodes, all requests
  std::optional<int32_t> fixed_depth;  // comparison mode: every node up to this depth
};

struct ControllerOutput {
  std::vector<std::vector<int32_t>> admitted;  // per request: node indices, ascending
  double expected_tokens = 0.0;                // tau: sum over requests of 1 + admitted survival
  double predicted_throughput = 0.0;           // tau * SPS(base + admitted)
};

// Greedy admission by descending survival (ties: shallower first, then request order, then node
// index), a node only after its parent, while (expected_tokens + other_commits) * SPS(B)
// improves; stops at the
// first node that does not improve it (the early stop keeps the process lossless).
ControllerOutput admit(const ControllerInput& input, const SpsTable& sps);

}  // namespace dspark::spec
