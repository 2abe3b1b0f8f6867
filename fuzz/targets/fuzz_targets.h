#ifndef FUZZ_TARGETS_FUZZ_TARGETS_H_
#define FUZZ_TARGETS_FUZZ_TARGETS_H_

// The fuzz targets' entry points, one per target, as plain functions so that two drivers can
// run them: libFuzzer (fuzz/fuzzer_entry.cc, one executable per target, clang only) and the
// regression tests (tests/fuzz/, every build), which replay every checked-in corpus file and
// crash input through exactly the same code.
//
// A target returns 0 for every input. A broken invariant calls FuzzFail(), which prints what
// broke and aborts, so libFuzzer records the input as a crash and a replay test fails.
//
// Thread model: each call is independent; the config target keeps one temporary directory
// for the whole process (created on first use), and the backend_bytes target one TLS server
// thread, one I/O loop and one socket pool (created on first use, running until exit).

#include <cstddef>
#include <cstdint>

namespace tlsbroker::fuzz {

// LoadConfig on arbitrary YAML, with base_dir an empty temporary directory.
int FuzzConfigLoader(const uint8_t* data, size_t size);
// PeerNameFilter::Parse on the first line, Matches against a DN decoded from the rest.
int FuzzPeerName(const uint8_t* data, size_t size);
// Length-field decoder: options from the first bytes, the stream split at fuzzer-chosen points;
// Feed, Consume and ConsumeAll must agree with each other and with a reference decoder.
int FuzzLengthField(const uint8_t* data, size_t size);
// Delimiter decoder: same differential check, reference = naive search for the delimiter.
int FuzzDelimiter(const uint8_t* data, size_t size);
// A sequence of length-prefixed tlsbroker.v1.LeaseRequest / CallRequest messages: parsing,
// the Lease stream's phase rules, and the Call path's one-frame request check.
int FuzzLeaseRequests(const uint8_t* data, size_t size);
// Backend bytes (scripted: TLS record and TCP write sizes, KeyUpdate, connection end) from a
// real TLS server on loopback, read by a lease of a real SocketPool with ReadFrame or Read; the
// result must match a reference decoder, and only a clean socket may serve the next lease.
int FuzzBackendBytes(const uint8_t* data, size_t size);

// Prints `what` and aborts.
[[noreturn]] void FuzzFail(const char* file, int line, const char* what);

}  // namespace tlsbroker::fuzz

#define TLSB_FUZZ_CHECK(cond)                                                   \
  do {                                                                          \
    if (!(cond)) ::tlsbroker::fuzz::FuzzFail(__FILE__, __LINE__, #cond);        \
  } while (false)

#endif  // FUZZ_TARGETS_FUZZ_TARGETS_H_
