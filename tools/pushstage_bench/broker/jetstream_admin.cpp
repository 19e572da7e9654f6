// jetstream_admin.cpp: see jetstream_admin.hpp.
#include "broker/jetstream_admin.hpp"

#include <stdexcept>

#include "command_line.hpp"

namespace pushstage::bench {

JetStreamAdmin::JetStreamAdmin(const std::string& url) {
  natsOptions* o = nullptr;
  natsOptions_Create(&o);
  natsOptions_SetURL(o, url.c_str());
  natsOptions_SetTimeout(o, 5000);
  natsConnection* nc = nullptr;
  const natsStatus s = natsConnection_Connect(&nc, o);
  nc_.reset(nc);
  natsOptions_Destroy(o);
  if (s != NATS_OK) {
    throw std::runtime_error("--broker: cannot connect to " + redacted_argument(url) + ": " +
                             natsStatus_GetText(s));
  }
  jsCtx* js = nullptr;
  natsConnection_JetStream(&js, nc_.get(), nullptr);
  js_.reset(js);
}

void JetStreamAdmin::create(const std::string& stream, const std::string& consumer,
                            std::size_t ack_pending) {
  jsStreamConfig sc;
  jsStreamConfig_Init(&sc);
  sc.Name = stream.c_str();
  const std::string subjects = stream + ".>";
  const char* subj[] = {subjects.c_str()};
  sc.Subjects = subj;
  sc.SubjectsLen = 1;
  sc.Storage = js_MemoryStorage;
  jsStreamInfo* si = nullptr;
  natsStatus s = js_AddStream(&si, js_.get(), &sc, nullptr, nullptr);
  jsStreamInfo_Destroy(si);
  if (s != NATS_OK) {
    throw std::runtime_error("--broker: cannot create stream " + stream + " (is JetStream " +
                             "enabled on the server?): " + natsStatus_GetText(s));
  }
  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.Durable = consumer.c_str();
  cc.AckPolicy = js_AckExplicit;
  cc.AckWait = 30'000'000'000;
  cc.MaxDeliver = 5;
  cc.MaxAckPending = static_cast<std::int64_t>(ack_pending);
  jsConsumerInfo* ci = nullptr;
  s = js_AddConsumer(&ci, js_.get(), stream.c_str(), &cc, nullptr, nullptr);
  jsConsumerInfo_Destroy(ci);
  if (s != NATS_OK) {
    throw std::runtime_error("--broker: cannot create consumer: " +
                             std::string(natsStatus_GetText(s)));
  }
}

void JetStreamAdmin::remove(const std::string& stream) {
  (void)js_DeleteStream(js_.get(), stream.c_str(), nullptr, nullptr);
}

bool JetStreamAdmin::done(const std::string& stream, const std::string& consumer,
                          std::uint64_t& ack_floor) {
  jsConsumerInfo* ci = nullptr;
  if (js_GetConsumerInfo(&ci, js_.get(), stream.c_str(), consumer.c_str(), nullptr, nullptr) !=
      NATS_OK) {
    return false;
  }
  ack_floor = ci->AckFloor.Stream;
  const bool all = ci->NumPending == 0 && ci->NumAckPending == 0;
  jsConsumerInfo_Destroy(ci);
  return all;
}

}  // namespace pushstage::bench
