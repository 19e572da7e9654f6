// nats_test_keys: the decentralized (JWT) credentials for the nats_secure fixture, made without
// the `nsc` tool: NKeys encoded as NATS writes them, JWTs signed with nats.c's own nats_Sign().
//   nats_test_keys DIR
// DIR/keys/NAME.hex holds "SEED_HEX PUBLIC_HEX", the raw 32-byte Ed25519 seed and public key of a
// key pair made by `openssl genpkey -algorithm ed25519` (nats_secure.sh), for NAME in operator,
// system, account, rogue_account, user, rogue_user, nkey_user. Writes:
//   DIR/jwt/operator.jwt          the operator, self-signed
//   DIR/jwt/system.pub|.jwt       the system account, signed by the operator
//   DIR/jwt/account.pub|.jwt      an account with JetStream, signed by the operator
//   DIR/creds/user.creds          a user of that account (JWT + seed): connects
//   DIR/creds/expired.creds       the same user with a JWT that expired an hour ago
//   DIR/creds/rogue.creds         a user signed by an account the server does not know
//   DIR/nkey/user.pub|.seed       an NKey user for a server configured with `nkey:` users
// Encoding (the NKeys and JWT formats, from their public descriptions):
//   public key  base32(prefix byte, key[32], crc16 little-endian), no padding
//   seed        base32(0x90 | prefix >> 5, (prefix & 31) << 3, seed[32], crc16), no padding
//   crc16       CRC-16/XMODEM (polynomial 0x1021, initial value 0)
//   JWT         base64url(header) "." base64url(claims) "." base64url(Ed25519 signature of the
//               first two parts by the issuer's seed), no padding
#include <nats/nats.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using Bytes = std::vector<unsigned char>;

constexpr unsigned char kOperator = 14 << 3;  // 'O'
constexpr unsigned char kAccount = 0;         // 'A'
constexpr unsigned char kUser = 20 << 3;      // 'U'
constexpr unsigned char kSeed = 18 << 3;      // 'S'

std::uint16_t crc16(const Bytes& data) {
  std::uint16_t crc = 0;
  for (const unsigned char b : data) {
    crc = static_cast<std::uint16_t>(crc ^ (b << 8));
    for (int i = 0; i < 8; ++i) {
      crc = (crc & 0x8000) != 0 ? static_cast<std::uint16_t>((crc << 1) ^ 0x1021)
                                : static_cast<std::uint16_t>(crc << 1);
    }
  }
  return crc;
}

std::string base32(const Bytes& data) {
  static const char* const kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string out;
  unsigned buffer = 0;
  int bits = 0;
  for (const unsigned char b : data) {
    buffer = (buffer << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += kAlphabet[(buffer >> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += kAlphabet[(buffer << (5 - bits)) & 31];
  return out;
}

std::string base64url(const unsigned char* data, std::size_t n) {
  static const char* const kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  unsigned buffer = 0;
  int bits = 0;
  for (std::size_t i = 0; i < n; ++i) {
    buffer = (buffer << 8) | data[i];
    bits += 8;
    while (bits >= 6) {
      out += kAlphabet[(buffer >> (bits - 6)) & 63];
      bits -= 6;
    }
  }
  if (bits > 0) out += kAlphabet[(buffer << (6 - bits)) & 63];
  return out;
}

std::string base64url(const std::string& s) {
  return base64url(reinterpret_cast<const unsigned char*>(s.data()), s.size());
}

Bytes from_hex(const std::string& hex) {
  if (hex.size() != 64) throw std::runtime_error("expected 32 bytes of hex, got '" + hex + "'");
  Bytes out;
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    out.push_back(static_cast<unsigned char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

std::string with_crc(Bytes raw) {
  const std::uint16_t crc = crc16(raw);
  raw.push_back(static_cast<unsigned char>(crc & 0xff));
  raw.push_back(static_cast<unsigned char>(crc >> 8));
  return base32(raw);
}

struct Key {
  std::string seed;     // "S?..." 58 characters
  std::string public_;  // "O/A/U..." 56 characters
  // The same raw seed under a prefix that nats_Sign() accepts: it refuses operator seeds, and
  // an Ed25519 signature depends on the raw seed only.
  std::string signing_seed;
};

std::string encode_seed(unsigned char prefix, const Bytes& raw_seed) {
  Bytes seed = {static_cast<unsigned char>(kSeed | (prefix >> 5)),
                static_cast<unsigned char>((prefix & 31) << 3)};
  seed.insert(seed.end(), raw_seed.begin(), raw_seed.end());
  return with_crc(seed);
}

Key load(const std::filesystem::path& dir, const std::string& name, unsigned char prefix) {
  std::ifstream in(dir / "keys" / (name + ".hex"));
  std::string seed_hex;
  std::string public_hex;
  if (!(in >> seed_hex >> public_hex))
    throw std::runtime_error("cannot read keys/" + name + ".hex");
  const Bytes raw_seed = from_hex(seed_hex);
  Bytes pub = {prefix};
  const Bytes raw_pub = from_hex(public_hex);
  pub.insert(pub.end(), raw_pub.begin(), raw_pub.end());
  return Key{encode_seed(prefix, raw_seed), with_crc(pub),
             encode_seed(prefix == kOperator ? kAccount : prefix, raw_seed)};
}

// A JWT of `type` about `subject`, issued (and signed) by `issuer`; `nats` is the body of the
// claims' "nats" object without its type and version.
std::string jwt(const Key& issuer, const std::string& subject, const std::string& name,
                const std::string& type, const std::string& nats, std::int64_t expires = 0) {
  static int serial = 0;
  const std::int64_t now = std::time(nullptr);
  std::ostringstream claims;
  claims << R"({"jti":"PUSHSTAGETEST)" << ++serial << R"(","iat":)" << now;
  if (expires != 0) claims << R"(,"exp":)" << expires;
  claims << R"(,"iss":")" << issuer.public_ << R"(","name":")" << name << R"(","sub":")" << subject
         << R"(","nats":{)" << nats << (nats.empty() ? "" : ",") << R"("type":")" << type
         << R"(","version":2}})";
  const std::string signed_part =
      base64url(R"({"typ":"JWT","alg":"ed25519-nkey"})") + "." + base64url(claims.str());
  unsigned char* sig = nullptr;
  int sig_len = 0;
  if (nats_Sign(issuer.signing_seed.c_str(), signed_part.c_str(), &sig, &sig_len) != NATS_OK) {
    throw std::runtime_error(std::string("nats_Sign failed: ") + nats_GetLastError(nullptr));
  }
  std::string out = signed_part + "." + base64url(sig, static_cast<std::size_t>(sig_len));
  std::free(sig);
  return out;
}

void write(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path.string());
  std::filesystem::permissions(
      path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
}

std::string creds(const std::string& user_jwt, const Key& user) {
  return "-----BEGIN NATS USER JWT-----\n" + user_jwt +
         "\n------END NATS USER JWT------\n\n"
         "************************* IMPORTANT *************************\n"
         "NKEY Seed printed below can be used to sign and prove identity.\n"
         "NKEYs are sensitive and should be treated as secrets.\n\n"
         "-----BEGIN USER NKEY SEED-----\n" +
         user.seed + "\n------END USER NKEY SEED------\n";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: nats_test_keys DIR (see the file's header)\n");
    return 2;
  }
  // nats_Sign() decodes seeds with tables that the library's initialisation fills.
  if (nats_Open(-1) != NATS_OK) {
    std::fprintf(stderr, "nats_test_keys: nats_Open failed\n");
    return 1;
  }
  try {
    const std::filesystem::path dir = argv[1];
    const Key op = load(dir, "operator", kOperator);
    const Key sys = load(dir, "system", kAccount);
    const Key account = load(dir, "account", kAccount);
    const Key rogue_account = load(dir, "rogue_account", kAccount);
    const Key user = load(dir, "user", kUser);
    const Key rogue_user = load(dir, "rogue_user", kUser);
    const Key nkey_user = load(dir, "nkey_user", kUser);

    const std::string unlimited =
        R"("limits":{"subs":-1,"data":-1,"payload":-1,"imports":-1,"exports":-1,)"
        R"("wildcards":true,"conn":-1,"leaf":-1)";
    write(dir / "jwt/operator.jwt", jwt(op, op.public_, "pushstage-test", "operator", ""));
    write(dir / "jwt/system.pub", sys.public_);
    write(dir / "jwt/system.jwt", jwt(op, sys.public_, "SYS", "account", unlimited + "}"));
    write(dir / "jwt/account.pub", account.public_);
    // JetStream: unlimited memory and file storage, streams and consumers.
    write(dir / "jwt/account.jwt",
          jwt(op, account.public_, "APP", "account",
              unlimited + R"(,"mem_storage":-1,"disk_storage":-1,"streams":-1,"consumer":-1})"));
    const std::string user_limits = R"("pub":{},"sub":{},"subs":-1,"data":-1,"payload":-1)";
    write(dir / "creds/user.creds",
          creds(jwt(account, user.public_, "app-user", "user", user_limits), user));
    const std::int64_t an_hour_ago = std::time(nullptr) - 3600;
    write(dir / "creds/expired.creds",
          creds(jwt(account, user.public_, "app-user", "user", user_limits, an_hour_ago), user));
    write(dir / "creds/rogue.creds",
          creds(jwt(rogue_account, rogue_user.public_, "rogue", "user", user_limits), rogue_user));
    write(dir / "nkey/user.pub", nkey_user.public_);
    write(dir / "nkey/user.seed", nkey_user.seed + "\n");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nats_test_keys: %s\n", e.what());
    return 1;
  }
}
