// pushstage/stages/message.hpp: Broadway's Message and Acknowledger, the unit a Pipeline moves:
// data, metadata, a status (ok, or failed with a reason), the batcher and batch key a handler
// chose, and the acknowledger that settles the message with wherever it came from.
//
// Threading: a Message belongs to one thread at a time, like any event; moving it hands it over.
//            An Acknowledger is called from pipeline threads concurrently (see ack()).
// Status:    ok until fail() (a handler's verdict) or the pipeline fails it (a throw on every
//            attempt, a deadline, stop(), a drop); failed is final. The pipeline acknowledges each
//            message it accepted exactly once, with the status it has then (pipeline.hpp).
// Not guaranteed: that a failed message's handler was called at all (a deadline or stop() may
//            come first).
#pragma once

#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace pushstage {

template <class T>
class Pipeline;  // pushstage/stages/pipeline.hpp
template <class T>
class Message;

// Why a message failed.
enum class MessageFailure {
  Marked,            // a handler called fail(reason)
  Threw,             // handle_message, handle_batch or prepare_messages threw (every attempt)
  DeadlineExceeded,  // PoolOptions::deadline (of the processors or the batcher) passed first
  Shutdown,          // stop()'s deadline passed before it was handled
  Dropped,           // the pipeline's input dropped it for a newer one (Overflow::DropOldest)
  Refused,           // the pipeline's input refused it: closed, or full under Overflow::Reject
  NoBatcher,         // handle_message routed it to a batcher the pipeline does not have
};

// A failed message's reason.
struct MessageError {
  MessageFailure kind = MessageFailure::Marked;
  std::string reason;        // fail()'s text, or what the pipeline says (an exception's what())
  std::exception_ptr error;  // the exception, for Threw
  unsigned attempts = 0;     // handler calls made for it (Threw, DeadlineExceeded)
};

// Broadway's acknowledger: settles messages with their origin (a broker, a caller, a test). A
// Pipeline calls ack() once for every group of messages that finish together (a processor's chunk
// when they go to no batcher, a batch), with this acknowledger's messages of the group split by
// status; every message it accepted comes through ack() exactly once. Implementations must be
// safe to call from several threads at once; ack() may move from the messages (they are destroyed
// afterwards); a throw is reported to the processors' on_error and otherwise ignored. An
// acknowledger must outlive every message that names it.
template <class T>
class Acknowledger {
 public:
  virtual ~Acknowledger() = default;
  virtual void ack(std::span<Message<T>> successful, std::span<Message<T>> failed) = 0;
  // An attempt of handle_message or handle_batch threw and the message may be tried again (or
  // fail): e.g. tell a broker the message is still being worked on. Must not throw.
  virtual void attempt_failed(Message<T>& /*message*/) noexcept {}
};

template <class T>
class Message {
  static_assert(std::is_nothrow_move_constructible_v<T> && std::is_nothrow_destructible_v<T>,
                "Message<T> needs a T whose move constructor and destructor are noexcept (it goes "
                "through Dispatchers)");

 public:
  using Metadata = std::vector<std::pair<std::string, std::string>>;

  // A message without an acknowledger: the pipeline counts it (barriers, stats) and acknowledges
  // it to nobody.
  explicit Message(T data) noexcept : data_(std::move(data)) {}
  // A message settled through `acknowledger` (null: none), which receives `ack_data` back with it
  // (Broadway's acknowledger data: a delivery tag, a row id).
  Message(T data, Acknowledger<T>* acknowledger, std::uint64_t ack_data = 0) noexcept
      : data_(std::move(data)), acknowledger_(acknowledger), ack_data_(ack_data) {}
  Message(Message&&) noexcept = default;
  Message& operator=(Message&&) noexcept = default;
  Message(const Message&) = delete;
  Message& operator=(const Message&) = delete;
  ~Message() = default;

  [[nodiscard]] T& data() noexcept { return data_; }
  [[nodiscard]] const T& data() const noexcept { return data_; }

  // Broadway's metadata: name-value pairs, in the order put (a name put twice keeps the last).
  void put_metadata(std::string name, std::string value) {
    for (auto& [n, v] : metadata_) {
      if (n == name) {
        v = std::move(value);
        return;
      }
    }
    metadata_.emplace_back(std::move(name), std::move(value));
  }
  [[nodiscard]] std::optional<std::string_view> metadata(std::string_view name) const noexcept {
    for (const auto& [n, v] : metadata_) {
      if (n == name) return std::string_view(v);
    }
    return std::nullopt;
  }
  [[nodiscard]] const Metadata& metadata() const noexcept { return metadata_; }

  // Broadway's put_batcher: after handle_message, the message goes to the batcher of that name
  // (empty: to none; it is acknowledged once handle_message returns).
  void put_batcher(std::string name) noexcept { batcher_ = std::move(name); }
  [[nodiscard]] const std::string& batcher() const noexcept { return batcher_; }
  // Broadway's put_batch_key: within its batcher, batches hold messages of one key (default "").
  void put_batch_key(std::string key) noexcept { batch_key_ = std::move(key); }
  [[nodiscard]] const std::string& batch_key() const noexcept { return batch_key_; }

  // Broadway's Message.failed: the message will not go to a batcher (if it has not yet) and is
  // acknowledged as failed. A message already failed keeps its first reason. May throw
  // std::bad_alloc.
  void fail(std::string reason) { fail_with({MessageFailure::Marked, std::move(reason), {}, 0}); }
  [[nodiscard]] bool ok() const noexcept { return error_ == nullptr; }
  [[nodiscard]] bool failed() const noexcept { return error_ != nullptr; }
  // Why it failed; null while ok.
  [[nodiscard]] const MessageError* error() const noexcept { return error_.get(); }

  [[nodiscard]] Acknowledger<T>* acknowledger() const noexcept { return acknowledger_; }
  [[nodiscard]] std::uint64_t ack_data() const noexcept { return ack_data_; }

 private:
  friend class Pipeline<T>;
  void fail_with(MessageError e) {
    if (error_ == nullptr) error_ = std::make_unique<MessageError>(std::move(e));
  }

  T data_;
  Metadata metadata_;
  std::string batcher_;
  std::string batch_key_;
  std::unique_ptr<MessageError> error_;  // null while ok: a message that succeeds allocates nothing
  Acknowledger<T>* acknowledger_ = nullptr;
  std::uint64_t ack_data_ = 0;
  // The pipeline's: the ledger epoch it entered (core/ledger.hpp); whether its handler returned (a
  // late return is not turned into a deadline failure); whether it left its slot (moved on to a
  // batcher, or acknowledged).
  std::uint64_t epoch_ = 0;
  bool returned_ = false;
  bool gone_ = false;
};

}  // namespace pushstage
