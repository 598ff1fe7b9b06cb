// Signing throughput on one core: EIP-712 digest + secp256k1 signature per record, the work a
// worker does for every slot of a signed feed (issue 3 targets >= 20,000 signatures/s on one core).
// Prints JSON (Google Benchmark's format) unless --benchmark_format says otherwise. Not a test:
// nothing here asserts a time.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "sign/eip712.h"
#include "sign/keccak.h"
#include "sign/os_random.h"
#include "sign/presign.h"
#include "sign/signer.h"

namespace metronome {
namespace {

Signer BenchSigner(std::shared_ptr<PresignPool> pool = nullptr) {
  Result<SigningKey> key = SigningKey::FromHex(
      SecretName("bench_key"), "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318");
  if (!key) {
    std::fprintf(stderr, "%s\n", key.status().ToString().c_str());
    std::abort();
  }
  Result<Signer> signer = Signer::Create(std::move(*key), std::move(pool));
  if (!signer) {
    std::fprintf(stderr, "%s\n", signer.status().ToString().c_str());
    std::abort();
  }
  return std::move(*signer);
}

ValueRecord BenchRecord() {
  ValueRecord r;
  r.feed = FeedId("random_int");
  r.round = 897906500;
  r.slot = slot_from_unix_ms(1795813000000);
  r.value = "537.25";
  r.decimals = 2;
  return r;
}

// The hot path: digest + signature into fixed buffers (no allocation). One round per iteration,
// so every signature is over a new digest.
void BM_SignObservation(benchmark::State& state) {
  Signer signer = BenchSigner();
  ObservationDomain domain(1);
  ValueRecord r = BenchRecord();
  SignedObservation out;
  for (auto _ : state) {
    ++r.round;
    Status st = signer.sign_observation(r, domain, out);
    benchmark::DoNotOptimize(st);
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SignObservation);

// As the publisher uses it: also fills the record's signer, signature and digest strings.
void BM_SignRecord(benchmark::State& state) {
  Signer signer = BenchSigner();
  ObservationDomain domain(1);
  ValueRecord r = BenchRecord();
  for (auto _ : state) {
    ++r.round;
    Status st = signer.sign_record(r, domain);
    benchmark::DoNotOptimize(st);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SignRecord);

void BM_DigestOnly(benchmark::State& state) {
  ObservationDomain domain(1);
  ValueRecord r = BenchRecord();
  for (auto _ : state) {
    ++r.round;
    Result<Hash32> d = record_digest(domain, r);
    benchmark::DoNotOptimize(d);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DigestOnly);

// The signature alone, RFC 6979: what a slot pays without presignatures.
void BM_SignDigest(benchmark::State& state) {
  Signer signer = BenchSigner();
  Hash32 digest = keccak256("bench");
  for (auto _ : state) {
    ++digest[0];
    Signature sig = signer.sign_digest(digest);
    benchmark::DoNotOptimize(sig);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SignDigest);

// The signature with a presignature ready ([service] presign): what a slot pays with them.
// Refilling the pool is paused out of the timing (it is BM_MakePresignatures).
void BM_SignDigestPresigned(benchmark::State& state) {
  auto created = PresignPool::Create(PresignPool::Options{.capacity = 8192, .background = false});
  if (!created) std::abort();
  std::shared_ptr<PresignPool> pool(std::move(*created));
  Signer signer = BenchSigner(pool);
  Hash32 digest = keccak256("bench");
  if (!pool->make_half().ok()) std::abort();
  for (auto _ : state) {
    if (pool->ready() == 0) {
      state.PauseTiming();
      if (!pool->make_half().ok()) std::abort();
      state.ResumeTiming();
    }
    ++digest[0];
    Signature sig = signer.sign_digest(digest);
    benchmark::DoNotOptimize(sig);
  }
  if (pool->missed() != 0) state.SkipWithError("the pool ran dry");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SignDigestPresigned);

// Making presignatures as the pool's thread does, 64 per batch (per item: one k·G, and a 64th
// of one modular inversion). Per signature: BM_SignDigestPresigned + this.
void BM_MakePresignatures(benchmark::State& state) {
  secp256k1_context* ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
  std::vector<std::array<uint8_t, 32>> nonces(64);
  std::array<uint8_t, 32> blind{};
  std::vector<Presignature> out;
  out.reserve(64);
  for (auto _ : state) {
    state.PauseTiming();
    for (auto& k : nonces) {
      if (!fill_os_random(k).ok()) std::abort();
    }
    if (!fill_os_random(blind).ok()) std::abort();
    out.clear();
    state.ResumeTiming();
    size_t made = make_presignatures(ctx, nonces, blind, out);
    benchmark::DoNotOptimize(made);
  }
  state.SetItemsProcessed(state.iterations() * 64);
  secp256k1_context_destroy(ctx);
}
BENCHMARK(BM_MakePresignatures);

// What `metronome verify` does per record: digest, signature parse, recovery, comparison.
void BM_VerifyRecord(benchmark::State& state) {
  Signer signer = BenchSigner();
  ObservationDomain domain(1);
  std::vector<ValueRecord> records(256, BenchRecord());
  for (size_t i = 0; i < records.size(); ++i) {
    records[i].round += static_cast<int64_t>(i);
    if (!signer.sign_record(records[i], domain).ok()) std::abort();
  }
  size_t i = 0;
  for (auto _ : state) {
    Status st = verify_record(records[i++ % records.size()], domain);
    benchmark::DoNotOptimize(st);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_VerifyRecord);

}  // namespace
}  // namespace metronome

int main(int argc, char** argv) {
  std::vector<char*> args(argv, argv + argc);
  bool has_format = false;
  for (int i = 1; i < argc; ++i) {
    has_format = has_format || std::string_view(argv[i]).starts_with("--benchmark_format");
  }
  static char json_format[] = "--benchmark_format=json";
  if (!has_format) args.push_back(json_format);
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
