// Decoding throughput of the frame decoders, next to memcpy/memchr over the same bytes in the
// same chunks so that results are read as ratios (the machine is shared and noisy).
//
// Arguments: /frame_size/chunking, chunking 0 = the whole stream in one piece, 1 = one byte
// per call, 2 = random chunks of 1..1500 bytes (TCP-segment-like; fixed seed).

#include <algorithm>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "benchmark/benchmark.h"
#include "broker/config/options.h"
#include "broker/framing/frame_decoder.h"
#include "broker/framing/frame_encoder.h"

namespace tlsbroker {
namespace {

constexpr size_t kStreamBytes = 1 << 20;  // Frames are generated until the stream has ~1 MiB.

enum Chunking { kWhole = 0, kOneByte = 1, kRandom = 2 };

FramingOptions LengthFieldOptions() {
  FramingOptions options;
  options.kind = FramingOptions::Kind::kLengthField;
  options.length_field = {.offset = 0, .size = 4, .big_endian = true, .adjustment = -4};
  return options;
}

FramingOptions DelimiterOptions(std::string delimiter) {
  FramingOptions options;
  options.kind = FramingOptions::Kind::kDelimiter;
  options.delimiter = std::move(delimiter);
  return options;
}

// A stream of frames of `frame_size` bytes each (payload plus framing).
std::string MakeStream(const FramingOptions& options, size_t frame_size) {
  const size_t overhead = options.kind == FramingOptions::Kind::kDelimiter
                              ? options.delimiter.size()
                              : static_cast<size_t>(options.length_field.size);
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> letter('a', 'z');
  std::string payload(frame_size - overhead, '\0');
  for (char& c : payload) c = static_cast<char>(letter(rng));
  FrameEncoder encoder = FrameEncoder::Create(options).value();
  const std::string frame = encoder.Encode(payload).value();
  std::string stream;
  while (stream.size() < kStreamBytes) stream += frame;
  return stream;
}

// Chunk boundaries for `stream`.
std::vector<absl::string_view> Split(absl::string_view stream, Chunking chunking) {
  std::vector<absl::string_view> chunks;
  if (chunking == kWhole) {
    chunks.push_back(stream);
    return chunks;
  }
  std::mt19937 rng(7);
  std::uniform_int_distribution<size_t> size(1, 1500);
  for (size_t pos = 0; pos < stream.size();) {
    const size_t n = std::min(chunking == kOneByte ? 1 : size(rng), stream.size() - pos);
    chunks.push_back(stream.substr(pos, n));
    pos += n;
  }
  return chunks;
}

struct Input {
  std::string stream;
  std::vector<absl::string_view> chunks;
};

Input MakeInput(const FramingOptions& options, const benchmark::State& state) {
  Input input;
  input.stream = MakeStream(options, static_cast<size_t>(state.range(0)));
  input.chunks = Split(input.stream, static_cast<Chunking>(state.range(1)));
  return input;
}

void Finish(benchmark::State& state, const Input& input, uint64_t frames_per_pass) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * input.stream.size()));
  state.counters["frames"] = static_cast<double>(frames_per_pass);
}

// Baseline: copy the bytes, chunk by chunk (what any buffering reader pays).
void BM_BaselineMemcpy(benchmark::State& state) {
  const Input input = MakeInput(LengthFieldOptions(), state);
  std::string sink(input.stream.size(), '\0');
  for (auto _ : state) {
    char* out = sink.data();
    for (absl::string_view chunk : input.chunks) {
      std::memcpy(out, chunk.data(), chunk.size());
      out += chunk.size();
    }
    benchmark::DoNotOptimize(sink.data());
    benchmark::ClobberMemory();
  }
  Finish(state, input, 0);
}

// Baseline: find every '\n', chunk by chunk (the least a delimiter decoder must do).
void BM_BaselineMemchr(benchmark::State& state) {
  const Input input = MakeInput(DelimiterOptions("\n"), state);
  uint64_t found = 0;
  for (auto _ : state) {
    found = 0;
    for (absl::string_view chunk : input.chunks) {
      const char* p = chunk.data();
      const char* const end = p + chunk.size();
      while (p < end) {
        const void* hit = std::memchr(p, '\n', static_cast<size_t>(end - p));
        if (hit == nullptr) break;
        ++found;
        p = static_cast<const char*>(hit) + 1;
      }
    }
    benchmark::DoNotOptimize(found);
  }
  Finish(state, input, found);
}

// Boundary tracking only (the pool's hot path): ConsumeAll over each chunk.
void ConsumeAllBenchmark(benchmark::State& state, const FramingOptions& options) {
  const Input input = MakeInput(options, state);
  std::unique_ptr<FrameDecoder> decoder = FrameDecoder::Create(options).value();
  uint64_t frames = 0;
  for (auto _ : state) {
    decoder->Reset();
    for (absl::string_view chunk : input.chunks) {
      if (!decoder->ConsumeAll(chunk).ok()) state.SkipWithError("decode failed");
    }
    frames = decoder->frames_completed();
    benchmark::DoNotOptimize(frames);
  }
  Finish(state, input, frames);
}

// Frame extraction: Feed() copies every frame into a std::string.
void FeedBenchmark(benchmark::State& state, const FramingOptions& options) {
  const Input input = MakeInput(options, state);
  std::unique_ptr<FrameDecoder> decoder = FrameDecoder::Create(options).value();
  std::vector<std::string> frames;
  uint64_t count = 0;
  for (auto _ : state) {
    decoder->Reset();
    frames.clear();
    for (absl::string_view chunk : input.chunks) {
      if (!decoder->Feed(chunk, &frames).ok()) state.SkipWithError("decode failed");
    }
    count = frames.size();
    benchmark::DoNotOptimize(frames.data());
  }
  Finish(state, input, count);
}

void BM_LengthFieldConsume(benchmark::State& state) {
  ConsumeAllBenchmark(state, LengthFieldOptions());
}
void BM_LengthFieldFeed(benchmark::State& state) { FeedBenchmark(state, LengthFieldOptions()); }
void BM_DelimiterConsume(benchmark::State& state) {
  ConsumeAllBenchmark(state, DelimiterOptions("\n"));
}
void BM_Delimiter2Consume(benchmark::State& state) {
  ConsumeAllBenchmark(state, DelimiterOptions("\r\n"));
}
void BM_DelimiterFeed(benchmark::State& state) { FeedBenchmark(state, DelimiterOptions("\n")); }

void Args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"frame", "chunking"});
  for (int64_t frame : {64, 1024, 64 * 1024}) {
    for (int64_t chunking : {kWhole, kOneByte, kRandom}) b->Args({frame, chunking});
  }
  b->Unit(benchmark::kMicrosecond);
}

BENCHMARK(BM_BaselineMemcpy)->Apply(Args);
BENCHMARK(BM_BaselineMemchr)->Apply(Args);
BENCHMARK(BM_LengthFieldConsume)->Apply(Args);
BENCHMARK(BM_LengthFieldFeed)->Apply(Args);
BENCHMARK(BM_DelimiterConsume)->Apply(Args);
BENCHMARK(BM_Delimiter2Consume)->Apply(Args);
BENCHMARK(BM_DelimiterFeed)->Apply(Args);

}  // namespace
}  // namespace tlsbroker
