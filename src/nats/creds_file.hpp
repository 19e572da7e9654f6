// creds_file.hpp: the user JWT and NKey seed in the text of a .creds file or a seed file, as
// `nsc` and `nk` write them. The files come from outside the process (an operator's tooling), so
// they are parsed here, by pure functions that tests/fuzz/nats_parse_fuzz.cpp feeds arbitrary
// bytes; client.cpp reads them at each connection and signs the server's nonce itself.
//
// Format: blocks of one value between two marker lines, anything else ignored:
//   -----BEGIN NATS USER JWT-----        (a marker: three or more '-' at both ends)
//   eyJ0eXAiOiJKV1Qi...                   (the value: the next non-empty line, trimmed)
//   ------END NATS USER JWT------
// A seed file may also hold the bare seed ("SU...") on its first non-empty line.
#pragma once

#include <optional>
#include <string_view>

namespace pushstage::nats::detail {

// The value of the first block whose opening marker names `what` ("NATS USER JWT", "USER NKEY
// SEED"); nullopt when there is none, or its value is empty or itself a marker.
[[nodiscard]] std::optional<std::string_view> creds_block(std::string_view text,
                                                          std::string_view what) noexcept;

// The seed of a seed file or .creds file: its "USER NKEY SEED" block, else (no marker line at
// all) its first non-empty line, trimmed. nullopt when neither.
[[nodiscard]] std::optional<std::string_view> creds_seed(std::string_view text) noexcept;

}  // namespace pushstage::nats::detail
