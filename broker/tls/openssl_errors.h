#ifndef BROKER_TLS_OPENSSL_ERRORS_H_
#define BROKER_TLS_OPENSSL_ERRORS_H_

#include <string>

namespace tlsbroker {

// Empties this thread's OpenSSL error queue into one human-readable string ("" when empty).
// Call it on every failure path so a stale error never leaks into the next operation.
std::string DrainOpenSslErrors();

}  // namespace tlsbroker

#endif  // BROKER_TLS_OPENSSL_ERRORS_H_
