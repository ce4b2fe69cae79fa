// RoPE context scaling from model metadata. GGUF: <arch>.rope.scaling.{type,factor,
// original_context_length,yarn_beta_fast,yarn_beta_slow} (or the older rope.scale_linear), and
// for llama 3 files the rope_freqs.weight tensor, which llama.cpp's converter writes instead of
// metadata. config.json: rope_scaling.{rope_type|type, factor, low_freq_factor, high_freq_factor,
// original_max_position_embeddings, beta_fast, beta_slow}.
#include <algorithm>
#include <cmath>
#include <vector>

#include "config_read.h"

namespace dspark::model_detail {

namespace {

using Scaling = RopeParams::Scaling;
constexpr double kPi = 3.14159265358979323846;

Status check_factor(const std::string& key, double factor) {
  if (!(factor > 0.0) || !std::isfinite(factor)) {
    return Error{"'" + key + "' = " + std::to_string(factor) + " must be a positive number"};
  }
  return Status::Ok();
}

// Divisor llama3 scaling applies to the frequency whose wavelength is `wavelen`.
double llama3_divisor(double wavelen, double factor, double low, double high, double orig) {
  if (wavelen < orig / high) return 1.0;
  if (wavelen > orig / low) return factor;
  const double smooth = (orig / wavelen - low) / (high - low);
  return 1.0 / ((1.0 - smooth) / factor + smooth);
}

bool reproduces(const std::vector<double>& wavelen, const std::vector<float>& divisors,
                double factor, double low, double high, double orig) {
  for (size_t i = 0; i < wavelen.size(); ++i) {
    const double d = llama3_divisor(wavelen[i], factor, low, high, orig);
    if (std::abs(d - divisors[i]) > 1e-4 * std::max(1.0, d)) return false;
  }
  return true;
}

// Finds llama3 parameters that give exactly the stored per-frequency divisors. Only the model's
// own frequencies matter, so the blend region is fitted to them: the blend is linear in
// 1/wavelength, equal to 1 at the last unscaled frequency's side and 0 at the first fully
// scaled one.
Status fit_llama3(const TensorInfo& t, const ModelConfig& c, RopeParams* rope) {
  const int half = c.rope.rot_dims / 2;
  if (t.shape.size() != 1 || t.shape[0] != half ||
      (t.type != DType::F32 && t.type != DType::F16 && t.type != DType::BF16)) {
    return Error{"tensor 'rope_freqs.weight' must be a float vector of " + std::to_string(half) +
                 " (rotary dims / 2) values"};
  }
  std::vector<float> div(static_cast<size_t>(half));
  dequantize_row(t.type, t.data, div.data(), half);
  std::vector<double> wavelen(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i) {
    wavelen[i] = 2.0 * kPi / std::pow(double(c.rope.theta), -2.0 * i / double(c.rope.rot_dims));
    if (!(div[i] >= 1.0f) || !std::isfinite(div[i])) {
      return Error{"rope_freqs.weight[" + std::to_string(i) + "] = " + std::to_string(div[i]) +
                   " is not a llama3 frequency divisor (>= 1)"};
    }
  }
  const double factor = *std::max_element(div.begin(), div.end());
  if (factor == 1.0) return Status::Ok();  // no scaling at all
  // Meta's published Llama 3.1 / 3.2 settings first.
  const double orig =
      c.context_length > 0 ? double(std::min<int64_t>(c.context_length, 8192)) : 8192.0;
  for (double o : {8192.0, orig}) {
    if (reproduces(wavelen, div, factor, 1.0, 4.0, o)) {
      *rope = c.rope;
      rope->scaling = Scaling::Llama3;
      rope->factor = static_cast<float>(factor);
      rope->low_freq_factor = 1.0f;
      rope->high_freq_factor = 4.0f;
      rope->original_context = static_cast<int64_t>(o);
      return Status::Ok();
    }
  }
  // Otherwise fit the blend s(w) = a / w - b (s >= 1: unscaled, s <= 0: fully scaled) to the
  // blended frequencies; with fewer than two of them, the neighbouring unscaled (s = 1) and
  // scaled (s = 0) frequencies pin the line down.
  std::vector<std::pair<double, double>> blended;  // (1 / wavelength, s)
  std::vector<std::pair<double, double>> edges;
  for (int i = 0; i < half; ++i) {
    const double x = 1.0 / wavelen[i];
    if (div[i] <= 1.0 + 1e-6) {
      if (i + 1 < half && div[i + 1] > 1.0 + 1e-6) edges.push_back({x, 1.0});
    } else if (div[i] >= factor * (1.0 - 1e-6)) {
      if (i > 0 && div[i - 1] < factor * (1.0 - 1e-6)) edges.push_back({x, 0.0});
    } else {
      blended.push_back({x, (factor / div[i] - 1.0) / (factor - 1.0)});
    }
  }
  std::vector<std::vector<std::pair<double, double>>> candidates;
  if (blended.size() >= 2) {
    candidates.push_back(blended);
  } else {
    for (const auto& e : edges) {
      auto pts = blended;
      pts.push_back(e);
      if (pts.size() == 2) candidates.push_back(pts);
    }
    if (edges.size() == 2 && blended.empty()) candidates.push_back(edges);
  }
  for (const auto& pts : candidates) {
    double mx = 0, my = 0, sxx = 0, sxy = 0;
    for (auto [x, y] : pts) mx += x, my += y;
    mx /= double(pts.size());
    my /= double(pts.size());
    for (auto [x, y] : pts) sxx += (x - mx) * (x - mx), sxy += (x - mx) * (y - my);
    if (!(sxx > 0.0)) continue;
    const double slope = sxy / sxx, offset = slope * mx - my;
    // s(w) = (orig / w - low) / (high - low): any orig works, take the trained context.
    const double low = orig * offset / slope, high = orig * (1.0 + offset) / slope;
    if (!(slope > 0.0) || !(low > 0.0) || !(high > low)) continue;
    if (!reproduces(wavelen, div, factor, low, high, orig)) continue;
    *rope = c.rope;
    rope->scaling = Scaling::Llama3;
    rope->factor = static_cast<float>(factor);
    rope->low_freq_factor = static_cast<float>(low);
    rope->high_freq_factor = static_cast<float>(high);
    rope->original_context = static_cast<int64_t>(orig);
    return Status::Ok();
  }
  return Error{"rope_freqs.weight does not follow llama3 frequency scaling"};
}

}  // namespace

Status read_gguf_rope_scaling(const ModelFile& file, const std::string& arch, ModelConfig* c) {
  const std::string p = arch + ".rope.";
  auto type = string_or(file, p + "scaling.type", "none");
  if (!type.ok()) return type.error();
  auto factor = float_or(file, p + "scaling.factor", 1.0);
  if (!factor.ok()) return factor.error();
  auto legacy_linear = float_or(file, p + "scale_linear", 1.0);
  if (!legacy_linear.ok()) return legacy_linear.error();
  RopeParams& r = c->rope;
  if (*type == "none" && *legacy_linear != 1.0) {
    DSPARK_RETURN_IF_ERROR(check_factor(p + "scale_linear", *legacy_linear));
    r.scaling = Scaling::Linear;
    r.factor = static_cast<float>(*legacy_linear);
  } else if (*type == "linear") {
    DSPARK_RETURN_IF_ERROR(check_factor(p + "scaling.factor", *factor));
    r.scaling = Scaling::Linear;
    r.factor = static_cast<float>(*factor);
  } else if (*type == "yarn") {
    DSPARK_RETURN_IF_ERROR(check_factor(p + "scaling.factor", *factor));
    auto orig = file.get_int(p + "scaling.original_context_length");
    if (!orig.ok()) return orig.error();
    if (*orig < 1) return Error{p + "scaling.original_context_length must be >= 1"};
    auto fast = float_or(file, p + "scaling.yarn_beta_fast", 32.0);
    if (!fast.ok()) return fast.error();
    auto slow = float_or(file, p + "scaling.yarn_beta_slow", 1.0);
    if (!slow.ok()) return slow.error();
    DSPARK_RETURN_IF_ERROR(check_factor(p + "scaling.yarn_beta_fast", *fast));
    DSPARK_RETURN_IF_ERROR(check_factor(p + "scaling.yarn_beta_slow", *slow));
    r.scaling = Scaling::Yarn;
    r.factor = static_cast<float>(*factor);
    r.original_context = *orig;
    r.yarn_beta_fast = static_cast<float>(*fast);
    r.yarn_beta_slow = static_cast<float>(*slow);
  } else if (*type != "none") {
    return Error{"unsupported RoPE scaling '" + *type + "' (" + p +
                 "scaling.type); dspark supports none, linear, yarn and llama3 (rope_freqs)"};
  }
  if (const TensorInfo* freqs = file.tensor("rope_freqs.weight")) {
    if (r.scaling != Scaling::None) {
      return Error{"GGUF has both " + p + "scaling.type '" + *type +
                   "' and a rope_freqs.weight tensor; dspark supports one scaling at a time"};
    }
    DSPARK_RETURN_IF_ERROR(fit_llama3(*freqs, *c, &r));
  }
  return Status::Ok();
}

Status read_hf_rope_scaling(const ModelFile& file, ModelConfig* c) {
  const std::string p = "hf.rope_scaling.";
  auto kind = string_or(file, p + "rope_type", "");
  if (!kind.ok()) return kind.error();
  if (kind->empty()) {
    kind = string_or(file, p + "type", "default");
    if (!kind.ok()) return kind.error();
  }
  RopeParams& r = c->rope;
  if (*kind == "default") return Status::Ok();
  auto factor = file.get_float(p + "factor");
  if (!factor.ok()) return factor.error();
  DSPARK_RETURN_IF_ERROR(check_factor(p + "factor", *factor));
  r.factor = static_cast<float>(*factor);
  if (*kind == "linear") {
    r.scaling = Scaling::Linear;
    return Status::Ok();
  }
  if (*kind == "llama3") {
    auto orig = file.get_int(p + "original_max_position_embeddings");
    if (!orig.ok()) return orig.error();
    auto low = float_or(file, p + "low_freq_factor", 1.0);
    if (!low.ok()) return low.error();
    auto high = float_or(file, p + "high_freq_factor", 4.0);
    if (!high.ok()) return high.error();
    if (*orig < 1 || !(*low > 0.0) || !(*high > *low)) {
      return Error{
          "config.json: llama3 rope_scaling needs original_max_position_embeddings >= 1 "
          "and 0 < low_freq_factor < high_freq_factor"};
    }
    r.scaling = Scaling::Llama3;
    r.original_context = *orig;
    r.low_freq_factor = static_cast<float>(*low);
    r.high_freq_factor = static_cast<float>(*high);
    return Status::Ok();
  }
  if (*kind == "yarn") {
    auto orig = int_or(file, p + "original_max_position_embeddings", c->context_length);
    if (!orig.ok()) return orig.error();
    auto fast = float_or(file, p + "beta_fast", 32.0);
    if (!fast.ok()) return fast.error();
    auto slow = float_or(file, p + "beta_slow", 1.0);
    if (!slow.ok()) return slow.error();
    if (*orig < 1) return Error{"config.json: yarn rope_scaling needs an original context >= 1"};
    DSPARK_RETURN_IF_ERROR(check_factor(p + "beta_fast", *fast));
    DSPARK_RETURN_IF_ERROR(check_factor(p + "beta_slow", *slow));
    r.scaling = Scaling::Yarn;
    r.original_context = *orig;
    r.yarn_beta_fast = static_cast<float>(*fast);
    r.yarn_beta_slow = static_cast<float>(*slow);
    return Status::Ok();
  }
  return Error{"unsupported rope_scaling type '" + *kind +
               "' in config.json; dspark supports default, linear, llama3 and yarn"};
}

}  // namespace dspark::model_detail
