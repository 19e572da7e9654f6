// broker.cpp: see broker.hpp. The parent's loop over the cases (broker_case.hpp), printing each
// as it finishes (broker_report.hpp).
#include "broker/broker.hpp"

#include <utility>

#include "broker/broker_case.hpp"
#include "broker/broker_report.hpp"
#include "broker/jetstream_admin.hpp"

namespace pushstage::bench {

BrokerReport run_broker(const BrokerSpec& spec, std::ostream& out) {
  JetStreamAdmin admin(spec.url);
  print_broker_header(out, spec);
  out.flush();
  BrokerReport report;
  report.json = nlohmann::json::array();
  std::vector<CaseOutcome> outcomes;
  std::size_t case_no = 0;
  for (const std::size_t p : spec.processes) {
    for (std::size_t rep = 0; rep < spec.reps; ++rep) {
      CaseOutcome c = run_case(spec, admin, p, rep, case_no++);
      print_outcome(out, spec, c);
      out.flush();
      report.ok = report.ok && c.ok;
      report.json.push_back(outcome_json(c));
      outcomes.push_back(std::move(c));
    }
  }
  print_scale_out(out, outcomes);
  return report;
}

}  // namespace pushstage::bench
