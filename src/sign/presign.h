// Presignatures: ECDSA signing split into the part that needs no message, made ahead of time,
// and the part that does, made at the slot (ADR 0014).
//
// An ECDSA signature is (r, s) with r = (k·G).x and s = k⁻¹·(z + r·d) mod n, for a fresh secret
// nonce k, the digest z and the key d. k, R = k·G, r and k⁻¹ do not depend on the digest nor on
// the key: that is a presignature, and it costs what a signature costs (the k·G multiplication).
// With one ready, signing is the three scalar operations of s: well under a microsecond instead
// of ~21 µs. A value may not be observed before its slot, so without this every signature of a
// boundary is made after it (10,000 feeds: 105 ms of 2 cores).
//
// libsecp256k1 has no API for this split, so it is composed here from its public constant-time
// primitives: secp256k1_ec_pubkey_create for k·G, and the secret-key tweaks (multiply, add,
// negate) for the arithmetic modulo n. The one operation it does not offer, k⁻¹, is Crypto++'s
// Integer::InverseMod applied to a random blinding b times the nonces. That inverse is not
// constant-time, but it only ever sees the product of a batch of nonces times b, which says
// nothing about any one k; b is then multiplied back out with the tweaks.
//
// The nonce comes from the kernel's CSPRNG, not RFC 6979: signatures made this way are valid,
// low-s and recover the same address, but are not deterministic. A nonce used twice reveals the
// key, so a presignature is moved out of the pool exactly once, wiped there, never stored or
// logged, and wiped by the signer once used; every Presignature wipes itself when destroyed.
// A process restored twice from one memory image (a VM snapshot, CRIU) would hold the same
// presignatures twice: do not enable them where that can happen (ADR 0014).
#pragma once

#include <secp256k1.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "common/result.h"
#include "common/status.h"

namespace metronome {

// n / 2 for secp256k1, big-endian: the largest low s.
inline constexpr std::array<uint8_t, 32> kSecp256k1HalfOrder = {
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4, 0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0};

struct Presignature {
  Presignature() = default;
  Presignature(const Presignature&) = default;
  Presignature& operator=(const Presignature&) = default;
  ~Presignature();  // wipes: no copy of a nonce's inverse is left in freed memory

  std::array<uint8_t, 32> r{};          // (k·G).x, big-endian, 0 < r < n
  std::array<uint8_t, 32> k_inverse{};  // k⁻¹ mod n, big-endian
  int recovery_id = 0;                  // parity of (k·G).y (r < n always: bit 1 is 0)
};

// Overwrites `p` so that no copy of the nonce stays in memory.
void wipe(Presignature& p);

// The most nonces make_presignatures() takes at once (its scratch space is on the stack).
inline constexpr size_t kPresignBatch = 64;

// Makes one presignature per nonce (32 bytes from the CSPRNG each) and appends it to `out`,
// with `ctx` (a context the caller has randomized). The inverses share one modular inversion
// (Montgomery's trick: the product's inverse, then 3 multiplications per nonce), blinded by
// `blind` (32 bytes from the CSPRNG). A nonce that is not a valid scalar, or whose r would be
// ≥ n (probability ~2⁻¹²⁸ each), is dropped. Returns how many were appended, in the order of
// their nonces; 0 (and nothing appended) if `blind` is not a valid scalar. Wipes `nonces` and
// `blind`. Allocates only if `out` lacks the capacity.
// REQUIRES: nonces.size() <= kPresignBatch.
size_t make_presignatures(const secp256k1_context* ctx, std::span<std::array<uint8_t, 32>> nonces,
                          std::array<uint8_t, 32>& blind, std::vector<Presignature>& out);

// s = k⁻¹·(z + r·d), low-s, into `out` as r ‖ s ‖ 27 + recovery id: the signature
// secp256k1_ecdsa_sign_recoverable would give for the nonce k. False (nothing written) when
// z + r·d is 0 mod n (probability 2⁻²⁵⁶); the caller signs the usual way. Never allocates.
bool sign_with_presignature(const secp256k1_context* ctx, const Presignature& p,
                            const std::array<uint8_t, 32>& digest,
                            std::span<const uint8_t, 32> secret, std::array<uint8_t, 65>& out);

// Keeps up to `capacity` presignatures ready. A thread at the lowest priority (SCHED_IDLE: it
// runs only on a core that has nothing else to do) makes them in two halves: while the workers
// use one, it makes the next, and hands it over through one atomic pointer, so it never holds a
// lock that a worker waits for. take() is a short critical section under a mutex only the
// takers use. A used-up half's buffer goes back to the maker through a second atomic pointer,
// so a signer never frees one. (Crypto++'s inversion still allocates a few small blocks per
// batch of 64 on the maker's thread.)
//
// When the pool is empty (at start-up, or when the machine never idles) take() returns false and
// the signer signs the usual way (RFC 6979): slower, never wrong.
//
// Thread-safety: take() and the counters may be called from any thread.
class PresignPool {
 public:
  struct Options {
    size_t capacity = 0;     // > 0
    bool background = true;  // false: nothing is made until make_half() is called (tests)
  };

  // kInvalidArgument for capacity 0; kIOError if the CSPRNG fails for the context's blinding.
  static Result<std::unique_ptr<PresignPool>> Create(Options options);
  ~PresignPool();  // stops the thread and wipes every presignature left

  PresignPool(const PresignPool&) = delete;
  PresignPool& operator=(const PresignPool&) = delete;

  // Moves one presignature into `out` and wipes the pool's copy; false when none is ready.
  bool take(Presignature& out);

  // Makes half the capacity and hands it over (blocking until the previous half is taken up).
  // What the background thread does in a loop; tests without one call it themselves.
  // kCancelled when the pool is being destroyed; kIOError if getrandom fails; kInternal if
  // libsecp256k1 refuses valid scalars (a broken invariant).
  Status make_half();

  // While at least one hold() is not yet released, the maker waits before its next batch (of
  // kPresignBatch). The scheduler holds it through a boundary that the pool has enough for:
  // even at idle priority the maker took the cores' caches, and a core whenever a worker or the
  // commit thread blocked for a moment, and each of them had to preempt it again (at 10,000
  // feeds the boundary's publish p99 was ~10 ms later with the maker running through it).
  // Every hold() needs its release(); the destructor does not wait for them.
  void hold();
  void release();
  int holds() const;  // not yet released

  // Ready in the half being used plus the half handed over.
  size_t ready() const;
  size_t capacity() const { return options_.capacity; }
  uint64_t taken() const { return taken_.load(std::memory_order_relaxed); }
  uint64_t missed() const { return missed_.load(std::memory_order_relaxed); }  // found empty

 private:
  using Half = std::vector<Presignature>;
  explicit PresignPool(Options options, secp256k1_context* ctx);
  void run();
  static void wipe_and_delete(Half* half);

  const Options options_;
  secp256k1_context* const ctx_;  // the maker's own, randomized; used only by make_half()

  mutable std::mutex mu_;              // the takers'; the maker never takes it
  Half current_;                       // guarded by mu_; taken from the back
  std::atomic<Half*> next_{nullptr};   // a full half, handed over by the maker
  std::atomic<Half*> spare_{nullptr};  // a used-up half's buffer, handed back to the maker
  std::atomic<bool> stopping_{false};
  mutable std::mutex hold_mu_;
  std::condition_variable hold_cv_;  // the maker waits on it while holds_ > 0
  int holds_ = 0;                    // guarded by hold_mu_
  std::atomic<uint64_t> taken_{0};
  std::atomic<uint64_t> missed_{0};
  std::thread thread_;  // last: started after, and joined before, the members it uses
};

}  // namespace metronome
