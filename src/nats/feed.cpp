// feed.cpp: the JetStream feed of a pushstage::Pipeline and its acknowledger (feed.hpp). The feed
// is a Source filling a Dispatcher<Message> and a one-thread Stage that moves each message into
// the pipeline with the acknowledger attached: the Stage is one of the pipeline's upstreams, so
// the pipeline closes when the source ends for good.
#include "pushstage/nats/feed.hpp"

#include <algorithm>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "pushstage/dispatcher.hpp"
#include "pushstage/stages/pipeline.hpp"
#include "pushstage/stages/stage.hpp"
#include "settling.hpp"

namespace pushstage::nats {

void JetStreamAcknowledger::ack(std::span<pushstage::Message<Message>> successful,
                                std::span<pushstage::Message<Message>> failed) {
  for (pushstage::Message<Message>& m : successful) detail::ack_quietly(m.data());
  for (pushstage::Message<Message>& m : failed) {
    const MessageFailure kind = m.error()->kind;
    if (kind == MessageFailure::Shutdown || kind == MessageFailure::Refused) {
      detail::give_back_quietly(m.data());
    } else {
      detail::fail_quietly(m.data());
    }
  }
}

void JetStreamAcknowledger::attempt_failed(pushstage::Message<Message>& message) noexcept {
  detail::still_working(message.data());
}

namespace {

constexpr std::size_t kMaxInFlight = 1'000'000;

class JetStreamFeed final : public PipelineFeed<Message> {
  using Into = pushstage::Pipeline<Message>;

 public:
  JetStreamFeed(SourceOptions options, std::size_t in_flight)
      : options_(std::move(options)), in_flight_(in_flight) {
    if (in_flight_ > kMaxInFlight) {
      throw std::invalid_argument("pushstage::nats::from_jetstream: in_flight must be in [0, " +
                                  std::to_string(kMaxInFlight) +
                                  "] (0: the pipeline's hint); got " + std::to_string(in_flight_));
    }
  }
  ~JetStreamFeed() override { stop(); }
  JetStreamFeed(const JetStreamFeed&) = delete;
  JetStreamFeed& operator=(const JetStreamFeed&) = delete;

  void start(Into& into) override {
    const std::size_t demand =
        in_flight_ != 0 ? in_flight_
                        : std::clamp<std::size_t>(into.in_flight_hint(), 1, kMaxInFlight);
    PoolOptions mover;
    mover.consumers = 1;
    mover.pin = false;
    mover.max_demand = 64;
    mover.min_demand = 0;
    mover_.emplace(fetched_, into, mover, [this](std::span<Message> fetched, Into::Producer& out) {
      for (Message& m : fetched) {
        (void)out.push(pushstage::Message<Message>(std::move(m), &acknowledger_));
      }
    });
    source_.emplace(fetched_, demand, options_);
  }
  void stop() noexcept override {
    if (source_) source_->stop();  // stops fetching
    fetched_.close();  // (the source closed it, unless it never started): the mover drains it
    if (mover_) mover_->join();  // and leaves the pipeline
  }
  [[nodiscard]] std::exception_ptr error() const override {
    if (!source_) return nullptr;
    if (std::optional<Error> e = source_->error()) return std::make_exception_ptr(*e);
    return nullptr;
  }

 private:
  const SourceOptions options_;
  const std::size_t in_flight_;
  JetStreamAcknowledger acknowledger_;
  Dispatcher<Message> fetched_;
  std::optional<Stage<Message, Into>> mover_;  // declared after fetched_: stops before it goes
  std::optional<Source> source_;               // and the source before the mover
};

}  // namespace

std::unique_ptr<PipelineFeed<Message>> from_jetstream(SourceOptions options,
                                                      std::size_t in_flight) {
  return std::make_unique<JetStreamFeed>(std::move(options), in_flight);
}

}  // namespace pushstage::nats
