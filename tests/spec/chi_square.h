// Pearson chi-square goodness of fit for the distribution tests of tests/spec.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace dspark::spec::testing {

// Regularized upper incomplete gamma Q(a, x): a power series for P below a + 1, Lentz's
// continued fraction for Q above.
inline double gamma_q(double a, double x) {
  if (x <= 0.0) return 1.0;
  const double log_prefactor = -x + a * std::log(x) - std::lgamma(a);
  if (x < a + 1.0) {
    double term = 1.0 / a;
    double sum = term;
    for (int n = 1; n < 10000; ++n) {
      term *= x / (a + n);
      sum += term;
      if (std::abs(term) < std::abs(sum) * 1e-15) break;
    }
    return 1.0 - sum * std::exp(log_prefactor);
  }
  constexpr double kTiny = 1e-300;
  double b = x + 1.0 - a;
  double c = 1.0 / kTiny;
  double d = 1.0 / b;
  double h = d;
  for (int i = 1; i < 10000; ++i) {
    const double an = -i * (i - a);
    b += 2.0;
    d = an * d + b;
    if (std::abs(d) < kTiny) d = kTiny;
    c = b + an / c;
    if (std::abs(c) < kTiny) c = kTiny;
    d = 1.0 / d;
    const double delta = d * c;
    h *= delta;
    if (std::abs(delta - 1.0) < 1e-15) break;
  }
  return std::exp(log_prefactor) * h;
}

// P(X >= statistic) for X ~ chi-square with df degrees of freedom.
inline double chi_square_p_value(double statistic, int64_t df) {
  return gamma_q(0.5 * static_cast<double>(df), 0.5 * statistic);
}

struct FitResult {
  double statistic = 0.0;
  int64_t df = 0;
  double p_value = 1.0;
  double total_variation = 0.0;
  int64_t impossible = 0;  // samples in cells of probability 0
  std::string describe() const {
    return "chi2=" + std::to_string(statistic) + " df=" + std::to_string(df) +
           " p=" + std::to_string(p_value) + " tv=" + std::to_string(total_variation) +
           " impossible=" + std::to_string(impossible);
  }
};

// counts[i] observed in cell i; expected[i] the cell's probability (sums to 1).
inline FitResult fit(const std::vector<int64_t>& counts, const std::vector<double>& expected) {
  FitResult r;
  int64_t n = 0;
  for (const int64_t c : counts) n += c;
  int64_t cells = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    const double observed = static_cast<double>(counts[i]);
    const double e = expected[i] * static_cast<double>(n);
    r.total_variation += 0.5 * std::abs(observed / static_cast<double>(n) - expected[i]);
    if (expected[i] <= 0.0) {
      r.impossible += counts[i];
      continue;
    }
    r.statistic += (observed - e) * (observed - e) / e;
    cells += 1;
  }
  r.df = cells - 1;
  r.p_value = chi_square_p_value(r.statistic, r.df);
  return r;
}

}  // namespace dspark::spec::testing
