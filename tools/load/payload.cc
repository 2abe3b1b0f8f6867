#include "tools/load/payload.h"

#include <algorithm>
#include <cstring>
#include <random>

#include "absl/strings/str_format.h"

namespace tlsbroker::load {
namespace {

constexpr int64_t kBulkPeriod = 65521;  // prime: never aligned with 64 KiB messages

std::string FrameHeader(uint32_t length) {
  std::string header(4, '\0');
  header[0] = static_cast<char>((length >> 24) & 0xff);
  header[1] = static_cast<char>((length >> 16) & 0xff);
  header[2] = static_cast<char>((length >> 8) & 0xff);
  header[3] = static_cast<char>(length & 0xff);
  return header;
}

}  // namespace

uint32_t Fnv1a32(absl::string_view bytes) {
  uint32_t h = 2166136261u;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 16777619u;
  }
  return h;
}

PayloadFactory::PayloadFactory(std::string response_prefix, int64_t max_size, uint64_t seed)
    : response_prefix_(std::move(response_prefix)) {
  std::mt19937_64 rng(seed);
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  filler_.resize(static_cast<size_t>(std::max<int64_t>(max_size, 0)) + 64);
  for (char& c : filler_) c = kAlphabet[rng() % (sizeof(kAlphabet) - 1)];
}

std::string PayloadFactory::FramedRequest(int caller, int64_t seq, int64_t payload_size) const {
  // The filler starts at a position that depends on the sequence number, so consecutive
  // requests differ beyond their header.
  const size_t start = static_cast<size_t>(seq % 61);
  std::string header_probe = absl::StrFormat("T%d:%d:%08x:", caller, seq, 0u);
  const size_t filler_len =
      payload_size > static_cast<int64_t>(header_probe.size())
          ? std::min(static_cast<size_t>(payload_size) - header_probe.size(),
                     filler_.size() - start)
          : 0;
  absl::string_view filler(filler_.data() + start, filler_len);
  std::string payload = absl::StrFormat("T%d:%d:%08x:", caller, seq, Fnv1a32(filler));
  payload.append(filler.data(), filler.size());
  return FrameHeader(static_cast<uint32_t>(payload.size() + 4)) + payload;
}

bool PayloadFactory::IsExpectedResponse(absl::string_view request,
                                        absl::string_view response) const {
  if (request.size() < 4) return false;
  const absl::string_view payload = request.substr(4);
  const size_t body = response_prefix_.size() + payload.size();
  if (response.size() != 4 + body) return false;
  if (response.substr(0, 4) != FrameHeader(static_cast<uint32_t>(body + 4))) return false;
  if (response.substr(4, response_prefix_.size()) != response_prefix_) return false;
  return response.substr(4 + response_prefix_.size()) == payload;
}

size_t PayloadFactory::CompleteFrameLength(absl::string_view bytes) {
  if (bytes.size() < 4) return 0;
  const uint32_t length = (static_cast<uint32_t>(static_cast<uint8_t>(bytes[0])) << 24) |
                          (static_cast<uint32_t>(static_cast<uint8_t>(bytes[1])) << 16) |
                          (static_cast<uint32_t>(static_cast<uint8_t>(bytes[2])) << 8) |
                          static_cast<uint32_t>(static_cast<uint8_t>(bytes[3]));
  // A length shorter than its own header can never complete: report it as a 4-byte frame so
  // the caller compares it and counts it as corrupt.
  if (length < 4) return 4;
  return bytes.size() >= length ? length : 0;
}

BulkPattern::BulkPattern() : period_(static_cast<size_t>(kBulkPeriod), '\0') {
  for (int64_t i = 0; i < kBulkPeriod; ++i) {
    period_[static_cast<size_t>(i)] = static_cast<char>((i * 131 + (i >> 8)) & 0xff);
  }
}

std::string BulkPattern::Bytes(int64_t offset, size_t length) const {
  std::string out;
  out.reserve(length);
  while (out.size() < length) {
    const size_t at = static_cast<size_t>(offset % kBulkPeriod);
    const size_t n = std::min(length - out.size(), period_.size() - at);
    out.append(period_.data() + at, n);
    offset += static_cast<int64_t>(n);
  }
  return out;
}

bool BulkPattern::Matches(int64_t offset, absl::string_view bytes) const {
  while (!bytes.empty()) {
    const size_t at = static_cast<size_t>(offset % kBulkPeriod);
    const size_t n = std::min(bytes.size(), period_.size() - at);
    if (std::memcmp(bytes.data(), period_.data() + at, n) != 0) return false;
    bytes.remove_prefix(n);
    offset += static_cast<int64_t>(n);
  }
  return true;
}

}  // namespace tlsbroker::load
