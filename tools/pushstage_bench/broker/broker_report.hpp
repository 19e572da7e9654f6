// broker_report.hpp: what --broker prints and writes: the header, a table per case (a row per
// process and the total: events, share, throughput, latency percentiles, fetches, most in flight,
// CPU per event; then fairness, losses and duplicates), the scale-out summary, and each case for
// --json. Numbers are written as in every other report (report/format.hpp).
// Threading: plain functions.
#pragma once

#include <nlohmann/json.hpp>
#include <ostream>
#include <vector>

#include "broker/broker.hpp"
#include "broker/broker_case.hpp"

namespace pushstage::bench {

// What every case shares: the broker, the events, the work; and what the columns mean.
void print_broker_header(std::ostream& out, const BrokerSpec& spec);
void print_outcome(std::ostream& out, const BrokerSpec& spec, const CaseOutcome& c);
// Each case's total throughput relative to the first case's (when there is more than one case).
void print_scale_out(std::ostream& out, const std::vector<CaseOutcome>& outcomes);
[[nodiscard]] nlohmann::json outcome_json(const CaseOutcome& c);

}  // namespace pushstage::bench
