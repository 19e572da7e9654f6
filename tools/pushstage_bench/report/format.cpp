// format.cpp: see format.hpp.
#include "report/format.hpp"

#include <cstdio>

namespace pushstage::bench {

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string format_ns(double ns) {
  if (ns < 1e3) return fixed(ns, 0) + "ns";
  if (ns < 1e6) return fixed(ns / 1e3, ns < 1e4 ? 2 : 1) + "us";
  if (ns < 1e9) return fixed(ns / 1e6, ns < 1e7 ? 2 : 1) + "ms";
  return fixed(ns / 1e9, 2) + "s";
}

std::string format_rate(double per_s) {
  if (per_s >= 1e6) return fixed(per_s / 1e6, 2) + " M/s";
  if (per_s >= 1e3) return fixed(per_s / 1e3, 1) + " k/s";
  return fixed(per_s, 0) + " /s";
}

std::string format_percentile(const pushstage::Histogram& h, double p) {
  return h.count() == 0 ? std::string("-")
                        : format_ns(static_cast<double>(h.value_at_percentile(p)));
}

}  // namespace pushstage::bench
