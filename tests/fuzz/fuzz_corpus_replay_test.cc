// Replays every checked-in fuzz input — the seed corpora (fuzz/corpus/<target>/) and the
// inputs that once crashed (fuzz/crashes/<target>/) — through the fuzz targets' entry points,
// so every build (gcc or clang, with or without sanitizers, no libFuzzer needed) checks the
// same invariants the fuzzers do and fails again if a fixed crash comes back. A broken
// invariant aborts the test binary, naming the invariant and (on stderr) the input.

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz/targets/fuzz_targets.h"
#include "gtest/gtest.h"

namespace tlsbroker::fuzz {
namespace {

using Entry = int (*)(const uint8_t*, size_t);

struct Target {
  const char* name;
  Entry entry;
};

constexpr Target kTargets[] = {
    {"config_loader", FuzzConfigLoader}, {"peer_name", FuzzPeerName},
    {"length_field", FuzzLengthField},   {"delimiter", FuzzDelimiter},
    {"lease_request", FuzzLeaseRequests}, {"backend_bytes", FuzzBackendBytes},
};

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Runs every file of fuzz/corpus/<target>/ and fuzz/crashes/<target>/ through the target;
// returns how many ran. Each file's name goes to stderr first, so that an abort names it.
int ReplayAll(const Target& target) {
  const std::filesystem::path root = TLSB_FUZZ_DIR;
  int replayed = 0;
  for (const char* kind : {"corpus", "crashes"}) {
    const std::filesystem::path dir = root / kind / target.name;
    if (!std::filesystem::is_directory(dir)) continue;
    std::vector<std::filesystem::path> files;
    for (const auto& file : std::filesystem::directory_iterator(dir)) {
      if (file.is_regular_file() && file.path().filename() != "README.md") {
        files.push_back(file.path());
      }
    }
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      std::fprintf(stderr, "replaying %s\n", file.c_str());
      const std::string bytes = ReadFile(file);
      EXPECT_EQ(bytes.size(), std::filesystem::file_size(file)) << file;
      EXPECT_EQ(target.entry(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), 0)
          << file;
      ++replayed;
    }
  }
  return replayed;
}

// Each seed and each former crash input of a target keeps every invariant (a break aborts).
TEST(FuzzInputReplay, ConfigLoaderKeepsInvariants) { EXPECT_GT(ReplayAll(kTargets[0]), 0); }
TEST(FuzzInputReplay, PeerNameKeepsInvariants) { EXPECT_GT(ReplayAll(kTargets[1]), 0); }
TEST(FuzzInputReplay, LengthFieldKeepsInvariants) { EXPECT_GT(ReplayAll(kTargets[2]), 0); }
TEST(FuzzInputReplay, DelimiterKeepsInvariants) { EXPECT_GT(ReplayAll(kTargets[3]), 0); }
TEST(FuzzInputReplay, LeaseRequestKeepsInvariants) { EXPECT_GT(ReplayAll(kTargets[4]), 0); }
TEST(FuzzInputReplay, BackendBytesKeepsInvariants) { EXPECT_GT(ReplayAll(kTargets[5]), 0); }

// Every target has a seed corpus, so a target cannot silently lose its replay.
TEST(FuzzCorpus, EveryTargetHasSeeds) {
  const std::filesystem::path root = TLSB_FUZZ_DIR;
  for (const Target& target : kTargets) {
    const std::filesystem::path dir = root / "corpus" / target.name;
    ASSERT_TRUE(std::filesystem::is_directory(dir)) << dir;
    EXPECT_FALSE(std::filesystem::is_empty(dir)) << dir;
  }
}

// The empty input, which libFuzzer always tries first, passes every target.
TEST(FuzzCorpus, EmptyInputPassesEveryTarget) {
  for (const Target& target : kTargets) {
    EXPECT_EQ(target.entry(nullptr, 0), 0) << target.name;
  }
}

}  // namespace
}  // namespace tlsbroker::fuzz
