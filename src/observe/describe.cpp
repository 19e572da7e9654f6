// describe.cpp: options and stats as a Topology lists them (observe/listing.hpp).
#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "pushstage/observe/listing.hpp"

namespace pushstage::detail {
namespace {

std::string overflow_name(Overflow o) {
  switch (o) {
    case Overflow::Block:
      return "Block";
    case Overflow::Reject:
      return "Reject";
    case Overflow::DropOldest:
      return "DropOldest";
  }
  return "?";
}

std::string duration_text(std::chrono::nanoseconds ns) {
  return std::to_string(ns.count()) + " ns";
}

}  // namespace

std::vector<std::pair<std::string, std::string>> describe(const DispatcherOptions& o) {
  std::vector<std::pair<std::string, std::string>> out;
  out.emplace_back("capacity", std::to_string(o.capacity));
  out.emplace_back("overflow", overflow_name(o.overflow));
  out.emplace_back("wake_order", o.wake_order == WakeOrder::Fifo ? "Fifo" : "Lifo");
  out.emplace_back("spin", duration_text(o.spin));
  out.emplace_back("max_spinners", o.max_spinners == DispatcherOptions::kAutoSpinners
                                       ? std::string("auto")
                                       : std::to_string(o.max_spinners));
  return out;
}

std::vector<std::pair<std::string, std::string>> describe(const PoolOptions& o) {
  std::vector<std::pair<std::string, std::string>> out;
  out.emplace_back("consumers", std::to_string(o.consumers));
  out.emplace_back("max_demand", std::to_string(o.max_demand));
  out.emplace_back("min_demand", o.min_demand == PoolOptions::kAutoMinDemand
                                     ? std::string("auto")
                                     : std::to_string(o.min_demand));
  out.emplace_back("demand", o.demand == DemandMode::Manual ? "Manual" : "Automatic");
  out.emplace_back("pin", o.pin ? "true" : "false");
  out.emplace_back("pin_to", o.pin_to == PinTo::CacheDomain ? "CacheDomain" : "Cpu");
  out.emplace_back("retry.max_attempts", std::to_string(o.retry.max_attempts));
  out.emplace_back("deadline", duration_text(o.deadline));
  out.emplace_back("rate_limit", o.rate_limit ? "shared limiter" : "none");
  return out;
}

ListingSpec dispatcher_spec(ComponentKind kind, const DispatcherOptions& options,
                            const void* identity) {
  ListingSpec spec;
  spec.kind = kind;
  spec.name = options.name;
  spec.name_field = "DispatcherOptions::name";
  spec.observer = options.observer;
  spec.identity = identity;
  spec.options = describe(options);
  return spec;
}

PoolSnapshot sum_consumers(const std::vector<ConsumerStats>& consumers) {
  PoolSnapshot p;
  for (const ConsumerStats& c : consumers) {
    if (c.active) ++p.active;
    p.handled += c.handled;
    p.failed += c.failed;
    p.retried += c.retried;
    p.expired += c.expired;
    p.busy += c.busy;
  }
  return p;
}

}  // namespace pushstage::detail
