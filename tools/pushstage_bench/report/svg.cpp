// svg.cpp: see report.hpp.
#include <algorithm>
#include <cmath>
#include <sstream>
#include <utility>

#include "report/format.hpp"
#include "report/report.hpp"

namespace pushstage::bench {
namespace {

constexpr const char* kColours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                    "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};

std::string esc(const std::string& s) {
  std::string out;
  for (const char ch : s) {
    if (ch == '<') {
      out += "&lt;";
    } else if (ch == '>') {
      out += "&gt;";
    } else if (ch == '&') {
      out += "&amp;";
    } else {
      out += ch;
    }
  }
  return out;
}

struct Box {
  double x, y, w, h;
};

void text(std::ostringstream& o, double x, double y, const std::string& s,
          const char* anchor = "start", int size = 11) {
  o << "<text x='" << fixed(x, 1) << "' y='" << fixed(y, 1) << "' font-size='" << size
    << "' text-anchor='" << anchor << "'>" << esc(s) << "</text>\n";
}

// A CDF per implementation on a log-x axis; values below `floor_ns` are drawn at it.
void cdf_panel(std::ostringstream& o, const Box& b, const std::string& title,
               const std::vector<std::pair<std::string, const pushstage::Histogram*>>& series) {
  constexpr double kFloor = 100;  // ns: the left edge of every latency axis
  double hi = kFloor * 10;
  for (const auto& [name, h] : series) hi = std::max(hi, static_cast<double>(h->max()));
  const double lo_dec = std::log10(kFloor);
  const double hi_dec = std::ceil(std::log10(hi));
  auto px = [&](double v) {
    return b.x + (std::log10(std::max(v, kFloor)) - lo_dec) / (hi_dec - lo_dec) * b.w;
  };
  auto py = [&](double f) { return b.y + b.h - f * b.h; };
  o << "<rect x='" << b.x << "' y='" << b.y << "' width='" << b.w << "' height='" << b.h
    << "' fill='none' stroke='#999'/>\n";
  text(o, b.x + b.w / 2, b.y - 8, title, "middle", 12);
  for (double d = lo_dec; d <= hi_dec + 1e-9; d += 1) {
    const double x = px(std::pow(10, d));
    o << "<line x1='" << fixed(x, 1) << "' y1='" << b.y << "' x2='" << fixed(x, 1) << "' y2='"
      << b.y + b.h << "' stroke='#eee'/>\n";
    text(o, x, b.y + b.h + 14, format_ns(std::pow(10, d)), "middle", 10);
  }
  for (const double f : {0.0, 0.25, 0.5, 0.75, 0.9, 1.0}) {
    const double y = py(f);
    o << "<line x1='" << b.x << "' y1='" << fixed(y, 1) << "' x2='" << b.x + b.w << "' y2='"
      << fixed(y, 1) << "' stroke='#eee'/>\n";
    text(o, b.x - 4, y + 4, fixed(f * 100, 0) + "%", "end", 10);
  }
  for (std::size_t i = 0; i < series.size(); ++i) {
    const pushstage::Histogram& h = *series[i].second;
    if (h.count() == 0) continue;
    std::ostringstream pts;
    double cum = 0;
    pts << fixed(px(static_cast<double>(h.min())), 1) << "," << fixed(py(0), 1) << " ";
    for (const auto& [index, count] : h.nonzero_buckets()) {
      const double v = std::min(static_cast<double>(pushstage::Histogram::bucket_highest(index)),
                                static_cast<double>(h.max()));
      cum += static_cast<double>(count);
      pts << fixed(px(v), 1) << "," << fixed(py(cum / static_cast<double>(h.count())), 1) << " ";
    }
    o << "<polyline fill='none' stroke-width='1.5' stroke='" << kColours[i % 8] << "' points='"
      << pts.str() << "'/>\n";
  }
}

// Groups of bars, one group per implementation.
void bars_panel(std::ostringstream& o, const Box& b, const std::string& title,
                const std::string& unit, const std::vector<std::string>& names,
                const std::vector<std::vector<double>>& values) {
  double top = 0;
  for (const auto& g : values) {
    for (const double v : g) top = std::max(top, v);
  }
  if (top <= 0) top = 1;
  o << "<rect x='" << b.x << "' y='" << b.y << "' width='" << b.w << "' height='" << b.h
    << "' fill='none' stroke='#999'/>\n";
  text(o, b.x + b.w / 2, b.y - 8, title, "middle", 12);
  text(o, b.x - 4, b.y + 10, fixed(top, top < 10 ? 2 : 0) + unit, "end", 10);
  text(o, b.x - 4, b.y + b.h, "0", "end", 10);
  const double group_w = b.w / static_cast<double>(std::max<std::size_t>(names.size(), 1));
  for (std::size_t g = 0; g < values.size(); ++g) {
    const auto& vs = values[g];
    const double bar_w = (group_w * 0.8) / static_cast<double>(std::max<std::size_t>(vs.size(), 1));
    for (std::size_t k = 0; k < vs.size(); ++k) {
      const double h = vs[k] / top * b.h;
      o << "<rect x='"
        << fixed(b.x + group_w * static_cast<double>(g) + group_w * 0.1 +
                     bar_w * static_cast<double>(k),
                 1)
        << "' y='" << fixed(b.y + b.h - h, 1) << "' width='" << fixed(std::max(bar_w - 1, 1.0), 1)
        << "' height='" << fixed(h, 1) << "' fill='" << kColours[g % 8] << "'/>\n";
    }
    text(o, b.x + group_w * (static_cast<double>(g) + 0.5), b.y + b.h + 14, names[g], "middle", 9);
  }
}

}  // namespace

std::string render_svg(const std::vector<CaseResult>& cases, const std::string& title) {
  constexpr double kPanelW = 380;
  constexpr double kPanelH = 230;
  constexpr double kRowH = 330;
  constexpr double kLeft = 60;
  constexpr double kGap = 70;
  const double width = kLeft + 3 * kPanelW + 2 * kGap + 30;
  const double height = 60 + kRowH * static_cast<double>(cases.size());
  std::ostringstream o;
  o << "<svg xmlns='http://www.w3.org/2000/svg' width='" << width << "' height='" << height
    << "' font-family='sans-serif'>\n<rect width='100%' height='100%' fill='white'/>\n";
  text(o, 20, 24, title, "start", 15);
  for (std::size_t ci = 0; ci < cases.size(); ++ci) {
    const CaseResult& c = cases[ci];
    const double top = 50 + kRowH * static_cast<double>(ci);
    text(o, 20, top + 6, c.spec.name + ": " + c.spec.description, "start", 12);
    // Legend.
    double lx = 20;
    for (std::size_t i = 0; i < c.impls.size(); ++i) {
      o << "<rect x='" << lx << "' y='" << top + 14 << "' width='10' height='10' fill='"
        << kColours[i % 8] << "'/>\n";
      text(o, lx + 14, top + 23, c.impls[i].impl, "start", 10);
      lx += 30 + 6.0 * static_cast<double>(c.impls[i].impl.size());
    }
    const double py = top + 60;
    std::vector<std::string> names;
    for (const ImplSummary& s : c.impls) names.push_back(s.column);
    if (c.spec.config.kind == RunKind::kIdle) {
      std::vector<std::vector<double>> v;
      for (const ImplSummary& s : c.impls) v.push_back({s.idle_cpu_pct_per_consumer});
      bars_panel(o, Box{kLeft, py, kPanelW, kPanelH}, "idle CPU per consumer (% of a core)", "%",
                 names, v);
      continue;
    }
    std::vector<std::pair<std::string, const pushstage::Histogram*>> dispatch;
    std::vector<std::pair<std::string, const pushstage::Histogram*>> excess;
    std::vector<std::vector<double>> busy;
    for (const ImplSummary& s : c.impls) {
      dispatch.emplace_back(s.impl, &s.dispatch);
      excess.emplace_back(s.impl, &s.excess);
      busy.push_back(s.busy_by_rank_s);
    }
    cdf_panel(o, Box{kLeft, py, kPanelW, kPanelH}, "dispatch latency CDF (start - enqueue)",
              dispatch);
    bars_panel(o, Box{kLeft + kPanelW + kGap, py, kPanelW, kPanelH},
               "busy time per consumer, busiest first (s, all reps)", "s", names, busy);
    cdf_panel(o, Box{kLeft + 2 * (kPanelW + kGap), py, kPanelW, kPanelH},
              "excess over ideal FIFO CDF (<=100ns at left edge)", excess);
  }
  o << "</svg>\n";
  return o.str();
}

}  // namespace pushstage::bench
