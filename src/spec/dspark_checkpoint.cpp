// Loading a Qwen3DSparkModel checkpoint: config.json keys ("hf.*" metadata), geometry checks
// against the target, then every tensor bound with its shape and type checked.
#include "dspark_checkpoint.h"

#include <cmath>
#include <string>

namespace dspark::spec::dspark_detail {

namespace {

constexpr const char* kArchitecture = "Qwen3DSparkModel";

// Reads config.json keys with the file's path in every message.
class ConfigReader {
 public:
  explicit ConfigReader(const ModelFile& file) : file_(file) {}

  Result<int64_t> integer(const std::string& key) const {
    auto v = file_.get_int("hf." + key);
    if (!v.ok()) return where(v.error());
    return *v;
  }
  Result<int64_t> integer_or(const std::string& key, int64_t fallback) const {
    if (file_.find("hf." + key) == nullptr) return fallback;
    return integer(key);
  }
  Result<double> number_or(const std::string& key, double fallback) const {
    if (file_.find("hf." + key) == nullptr) return fallback;
    auto v = file_.get_float("hf." + key);
    if (!v.ok()) return where(v.error());
    return *v;
  }
  Result<bool> flag_or(const std::string& key, bool fallback) const {
    if (file_.find("hf." + key) == nullptr) return fallback;
    auto v = file_.get_bool("hf." + key);
    if (!v.ok()) return where(v.error());
    return *v;
  }
  Result<std::string> text_or(const std::string& key, const std::string& fallback) const {
    if (file_.find("hf." + key) == nullptr) return fallback;
    auto v = file_.get_string("hf." + key);
    if (!v.ok()) return where(v.error());
    return *v;
  }
  Error error(const std::string& message) const {
    return Error{"DSpark checkpoint " + file_.dir() + ": " + message};
  }

 private:
  Error where(const Error& e) const { return error("config.json: " + e.message); }
  const ModelFile& file_;
};

// Binds tensors by name, checking presence, dtype and shape.
class TensorBinder {
 public:
  TensorBinder(const ModelFile& file, const ConfigReader& config) : file_(file), config_(config) {}

  Result<WeightView> matrix(const std::string& name, int64_t rows, int64_t cols) const {
    auto t = find(name, {rows, cols});
    if (!t.ok()) return t.error();
    return WeightView::from(**t);
  }
  bool has(const std::string& name) const { return file_.tensor(name) != nullptr; }
  // A [n] vector, or a [1, n] matrix's single row when as_row.
  Result<std::vector<float>> vector(const std::string& name, int64_t n, bool as_row = false) const {
    auto t = as_row ? find(name, {1, n}) : find(name, {n});
    if (!t.ok()) return t.error();
    std::vector<float> out(static_cast<size_t>(n));
    dequantize_row((*t)->type, (*t)->data, out.data(), n);
    return out;
  }

 private:
  Result<const TensorInfo*> find(const std::string& name, const std::vector<int64_t>& shape) const {
    const TensorInfo* t = file_.tensor(name);
    if (t == nullptr) return config_.error("missing tensor '" + name + "'");
    if (t->type != DType::BF16 && t->type != DType::F16 && t->type != DType::F32) {
      const DTypeInfo* info = dtype_info(t->type);
      return config_.error("tensor '" + name + "' has type " +
                           (info ? info->name : std::string("unknown")) +
                           "; DSpark weights must be BF16, F16 or F32");
    }
    if (t->shape != shape) {
      return config_.error("tensor '" + name + "' has shape " + shape_text(t->shape) +
                           ", expected " + shape_text(shape));
    }
    return t;
  }

  const ModelFile& file_;
  const ConfigReader& config_;
};

Status read_heads(const ModelFile& file, const ConfigReader& cfg, Checkpoint* ck);

// The architecture, the geometry shared with the target and the DSpark keys.
Status read_config(const ModelFile& file, const ConfigReader& cfg, const ModelConfig& target,
                   Checkpoint* ck) {
  auto archs = file.get_string_array("hf.architectures");
  if (!archs.ok()) return cfg.error("config.json: " + archs.error().message);
  if (archs->size() != 1 || archs->front() != kArchitecture) {
    std::string listed;
    for (const auto& a : *archs) listed += (listed.empty() ? "" : ", ") + a;
    return cfg.error("unsupported architecture [" + listed + "]; the DSpark drafter reads " +
                     kArchitecture);
  }
  ModelConfig& lc = ck->layers_config;
  lc = target;
  lc.arch = Arch::Qwen3;
  lc.qk_norm = true;
  lc.qkv_bias = false;
  lc.tied_embeddings = false;
  lc.name = file.dir();
  // DeepSpec's draft layers are Hugging Face Qwen3 layers: rotate-half over the whole head,
  // even when the target's own q/k rows were permuted for the interleaved layout (GGUF llama).
  lc.rope.layout = RopeLayout::Neox;
  lc.rope.rot_dims = target.head_dim;

  // Geometry that must equal the target's (the draft reads its features and shares its KV
  // slots and vocabulary).
  const int64_t d = target.d_model;
  struct Same {
    const char* key;
    int64_t fallback, want;
  };
  for (const Same& s :
       {Same{"hidden_size", -1, d}, Same{"num_attention_heads", -1, target.n_heads},
        Same{"num_key_value_heads", -1, target.n_kv_heads},
        Same{"head_dim", target.n_heads > 0 ? d / target.n_heads : -1, target.head_dim},
        Same{"vocab_size", -1, target.vocab_size},
        Same{"num_target_layers", -1, target.n_layers}}) {
    auto v = s.fallback < 0 ? cfg.integer(s.key) : cfg.integer_or(s.key, s.fallback);
    if (!v.ok()) return v.error();
    if (*v != s.want) {
      return cfg.error(std::string(s.key) + " is " + std::to_string(*v) + " but the target's is " +
                       std::to_string(s.want) + " (the checkpoint belongs to another target)");
    }
  }
  auto theta = cfg.number_or("rope_theta", target.rope.theta);
  if (!theta.ok()) return theta.error();
  if (std::abs(*theta - target.rope.theta) > 1e-4 * std::abs(double(target.rope.theta))) {
    return cfg.error("rope_theta " + std::to_string(*theta) + " differs from the target's " +
                     std::to_string(target.rope.theta));
  }
  auto bias = cfg.flag_or("attention_bias", false);
  if (!bias.ok()) return bias.error();
  if (*bias) return cfg.error("attention_bias is true; Qwen3 draft layers have no biases");

  auto n_layers = cfg.integer("num_hidden_layers");
  if (!n_layers.ok()) return n_layers.error();
  if (*n_layers < 1 || *n_layers > 1024) {
    return cfg.error("num_hidden_layers " + std::to_string(*n_layers) + " is not in [1, 1024]");
  }
  lc.n_layers = static_cast<int>(*n_layers);
  auto d_ff = cfg.integer("intermediate_size");
  if (!d_ff.ok()) return d_ff.error();
  if (*d_ff < 1 || *d_ff > (int64_t{1} << 20)) {
    return cfg.error("intermediate_size " + std::to_string(*d_ff) + " is out of range");
  }
  lc.d_ff = static_cast<int>(*d_ff);
  auto eps = cfg.number_or("rms_norm_eps", 1e-6);
  if (!eps.ok()) return eps.error();
  if (!(*eps > 0.0) || !std::isfinite(*eps)) {
    return cfg.error("rms_norm_eps " + std::to_string(*eps) + " must be positive");
  }
  lc.rms_eps = static_cast<float>(*eps);

  auto block = cfg.integer("block_size");
  if (!block.ok()) return block.error();
  if (*block < 1 || *block > 64) {
    return cfg.error("block_size " + std::to_string(*block) + " is not in [1, 64]");
  }
  ck->block_size = static_cast<int32_t>(*block);
  auto mask = cfg.integer("mask_token_id");
  if (!mask.ok()) return mask.error();
  if (*mask < 0 || *mask >= target.vocab_size) {
    return cfg.error("mask_token_id " + std::to_string(*mask) + " is outside the vocabulary of " +
                     std::to_string(target.vocab_size));
  }
  ck->mask_token = static_cast<int32_t>(*mask);

  auto ids = file.get_int_array("hf.target_layer_ids");
  if (!ids.ok()) return cfg.error("config.json: " + ids.error().message);
  if (ids->empty()) return cfg.error("target_layer_ids is empty");
  for (size_t i = 0; i < ids->size(); ++i) {
    const int64_t id = (*ids)[i];
    // The last layer is banned: Hugging Face reports it after the final norm, so training saw
    // no raw residual there.
    if (id < -1 || id > target.n_layers - 2) {
      return cfg.error("target_layer_ids entry " + std::to_string(id) + " is not in [-1, " +
                       std::to_string(target.n_layers - 2) +
                       "] (-1 = embeddings; the target's last layer cannot be captured)");
    }
    if (i > 0 && id <= (*ids)[i - 1]) {
      return cfg.error("target_layer_ids must be increasing (" + std::to_string((*ids)[i - 1]) +
                       " then " + std::to_string(id) + ")");
    }
    ck->target_layer_ids.push_back(static_cast<int32_t>(id));
  }

  return read_heads(file, cfg, ck);
}

// confidence_temperatures (optional): B finite positive T_k of c_k = sigmoid(z_k / T_k).
Status read_temperatures(const ModelFile& file, const ConfigReader& cfg, Checkpoint* ck) {
  const std::string key = "confidence_temperatures";
  if (file.find("hf." + key) == nullptr) return Status::Ok();
  if (!ck->confidence_head) {
    return cfg.error(key + " is given but enable_confidence_head is false");
  }
  auto temps = file.get_float_array("hf." + key);
  if (!temps.ok()) return cfg.error("config.json: " + temps.error().message);
  if (int64_t(temps->size()) != ck->block_size) {
    return cfg.error(key + " has " + std::to_string(temps->size()) +
                     " entries; it needs one per block position (block_size " +
                     std::to_string(ck->block_size) + ")");
  }
  for (size_t k = 0; k < temps->size(); ++k) {
    const float t = static_cast<float>((*temps)[k]);  // checked as the float it is used as
    if (!std::isfinite(t) || !(t > 0.0f)) {
      return cfg.error(key + " entry " + std::to_string(k) + " is " + std::to_string((*temps)[k]) +
                       "; temperatures must be finite and positive");
    }
    ck->confidence_temperatures.push_back(t);
  }
  return Status::Ok();
}

// The Markov head (vanilla or none) and the confidence head's keys.
Status read_heads(const ModelFile& file, const ConfigReader& cfg, Checkpoint* ck) {
  auto rank = cfg.integer_or("markov_rank", 0);
  if (!rank.ok()) return rank.error();
  if (*rank < 0 || *rank > 65536) {
    return cfg.error("markov_rank " + std::to_string(*rank) + " is out of range");
  }
  ck->markov_rank = static_cast<int32_t>(*rank);
  if (ck->markov_rank > 0) {
    auto type = cfg.text_or("markov_head_type", "vanilla");
    if (!type.ok()) return type.error();
    if (*type != "vanilla") {
      return cfg.error("markov_head_type '" + *type +
                       "' is not supported; the DSpark drafter implements 'vanilla' only");
    }
  }
  auto conf = cfg.flag_or("enable_confidence_head", false);
  if (!conf.ok()) return conf.error();
  ck->confidence_head = *conf;
  if (ck->confidence_head) {
    auto with_markov = cfg.flag_or("confidence_head_with_markov", ck->markov_rank > 0);
    if (!with_markov.ok()) return with_markov.error();
    if (*with_markov != (ck->markov_rank > 0)) {
      return cfg.error(std::string("confidence_head_with_markov is ") +
                       (*with_markov ? "true" : "false") + " but markov_rank is " +
                       std::to_string(ck->markov_rank));
    }
  }
  return read_temperatures(file, cfg, ck);
}

Status bind_layer(const TensorBinder& tb, const ModelConfig& c, int i, DraftLayer* L) {
  const std::string p = "layers." + std::to_string(i) + ".";
  const int64_t d = c.d_model, hd = c.head_dim;
  const int64_t q_rows = int64_t{c.n_heads} * hd, kv_rows = int64_t{c.n_kv_heads} * hd;
  struct Mat {
    const char* name;
    int64_t rows, cols;
    WeightView* dst;
  };
  for (const Mat& m : {Mat{"self_attn.q_proj.weight", q_rows, d, &L->q},
                       Mat{"self_attn.k_proj.weight", kv_rows, d, &L->k},
                       Mat{"self_attn.v_proj.weight", kv_rows, d, &L->v},
                       Mat{"self_attn.o_proj.weight", d, q_rows, &L->o},
                       Mat{"mlp.gate_proj.weight", c.d_ff, d, &L->gate},
                       Mat{"mlp.up_proj.weight", c.d_ff, d, &L->up},
                       Mat{"mlp.down_proj.weight", d, c.d_ff, &L->down}}) {
    auto w = tb.matrix(p + m.name, m.rows, m.cols);
    if (!w.ok()) return w.error();
    *m.dst = *w;
  }
  struct Vec {
    const char* name;
    int64_t n;
    std::vector<float>* dst;
  };
  for (const Vec& v : {Vec{"input_layernorm.weight", d, &L->attn_norm},
                       Vec{"post_attention_layernorm.weight", d, &L->ffn_norm},
                       Vec{"self_attn.q_norm.weight", hd, &L->q_norm},
                       Vec{"self_attn.k_norm.weight", hd, &L->k_norm}}) {
    auto w = tb.vector(p + v.name, v.n);
    if (!w.ok()) return w.error();
    *v.dst = std::move(*w);
  }
  return Status::Ok();
}

Status bind_tensors(const TensorBinder& tb, Checkpoint* ck) {
  const ModelConfig& c = ck->layers_config;
  const int64_t d = c.d_model, V = c.vocab_size, r = ck->markov_rank;
  struct Mat {
    const char* name;
    int64_t rows, cols;
    WeightView* dst;
  };
  std::vector<Mat> mats = {Mat{"fc.weight", d, ck->n_features() * d, &ck->fc}};
  // Frozen copies of the target's: optional, the target's own weights stand in (share_with).
  ck->own_embed = tb.has("embed_tokens.weight");
  ck->own_lm_head = tb.has("lm_head.weight");
  if (ck->own_embed) mats.push_back(Mat{"embed_tokens.weight", V, d, &ck->embed});
  if (ck->own_lm_head) mats.push_back(Mat{"lm_head.weight", V, d, &ck->lm_head});
  if (r > 0) {
    mats.push_back(Mat{"markov_head.markov_w1.weight", V, r, &ck->markov_w1});
    mats.push_back(Mat{"markov_head.markov_w2.weight", V, r, &ck->markov_w2});
  }
  for (const Mat& m : mats) {
    auto w = tb.matrix(m.name, m.rows, m.cols);
    if (!w.ok()) return w.error();
    *m.dst = *w;
  }
  auto hidden_norm = tb.vector("hidden_norm.weight", d);
  if (!hidden_norm.ok()) return hidden_norm.error();
  ck->hidden_norm = std::move(*hidden_norm);
  auto norm = tb.vector("norm.weight", d);
  if (!norm.ok()) return norm.error();
  ck->norm = std::move(*norm);
  if (ck->confidence_head) {
    auto w = tb.vector("confidence_head.proj.weight", d + r, /*as_row=*/true);
    if (!w.ok()) return w.error();
    ck->confidence_w = std::move(*w);
    auto b = tb.vector("confidence_head.proj.bias", 1);
    if (!b.ok()) return b.error();
    ck->confidence_b = b->front();
  }
  ck->layers.resize(static_cast<size_t>(c.n_layers));
  for (int i = 0; i < c.n_layers; ++i) {
    DSPARK_RETURN_IF_ERROR(bind_layer(tb, c, i, &ck->layers[size_t(i)]));
  }
  return Status::Ok();
}

// The target's token embedding and output head for the tensors the checkpoint lacks.
Status share_with(const Model& model, Checkpoint* ck) {
  const ModelConfig& c = ck->layers_config;
  const WeightView* from[] = {&model.token_embedding(), &model.output_head()};
  WeightView* to[] = {&ck->embed, &ck->lm_head};
  const bool own[] = {ck->own_embed, ck->own_lm_head};
  const char* what[] = {"token embedding", "output head"};
  for (int i = 0; i < 2; ++i) {
    if (own[i]) continue;
    if (from[i]->rows != c.vocab_size || from[i]->cols != c.d_model || from[i]->data == nullptr) {
      return Error{"DSpark checkpoint " + c.name + ": the target's " + what[i] + " is " +
                   std::to_string(from[i]->rows) + " x " + std::to_string(from[i]->cols) +
                   ", expected " + std::to_string(c.vocab_size) + " x " +
                   std::to_string(c.d_model)};
    }
    *to[i] = *from[i];
  }
  return Status::Ok();
}

}  // namespace

Result<Checkpoint> load_checkpoint(const std::string& path, const Model& model, Backend& backend) {
  const ModelConfig& target = model.config();
  if (target.d_model < 1 || target.n_heads < 1 || target.n_kv_heads < 1 || target.head_dim < 1 ||
      target.vocab_size < 1 || target.n_layers < 1) {
    return Error{"DSpark checkpoint " + path + ": the target's geometry is incomplete"};
  }
  auto file = ModelFile::open(path);
  if (!file.ok()) return Error{"DSpark checkpoint: " + file.error().message};
  if ((*file)->format() != FileFormat::Safetensors) {
    return Error{"DSpark checkpoint " + path +
                 ": expected a Hugging Face folder (config.json + safetensors), not GGUF"};
  }
  Checkpoint ck;
  ck.file = *file;
  const ConfigReader cfg(*ck.file);
  DSPARK_RETURN_IF_ERROR(read_config(*ck.file, cfg, target, &ck));
  DSPARK_RETURN_IF_ERROR(bind_tensors(TensorBinder(*ck.file, cfg), &ck));
  DSPARK_RETURN_IF_ERROR(share_with(model, &ck));
  DSPARK_RETURN_IF_ERROR(cut_draft_vocab(*ck.file, backend, &ck));
  return ck;
}

}  // namespace dspark::spec::dspark_detail
