// format.hpp: how every report writes a number: fixed digits, a duration, a rate, a percentile.
// The tables, the SVG, the targets and the --broker report all use these, so that one quantity
// reads the same everywhere.
// Threading: plain functions.
#pragma once

#include <string>

#include "pushstage/histogram.hpp"

namespace pushstage::bench {

// v with `digits` digits after the point, as printf's "%.*f".
[[nodiscard]] std::string fixed(double v, int digits);

// ns as 850ns, 12.3us, 1.23ms, 1.23s.
[[nodiscard]] std::string format_ns(double ns);

// Events per second as 1.23 M/s, 12.3 k/s, 850 /s.
[[nodiscard]] std::string format_rate(double per_s);

// The p-th percentile of h as format_ns() writes it; "-" when h is empty.
[[nodiscard]] std::string format_percentile(const pushstage::Histogram& h, double p);

}  // namespace pushstage::bench
