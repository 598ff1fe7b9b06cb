#include "sign/presign.h"

#include <cryptopp/integer.h>
#include <cryptopp/misc.h>
#include <pthread.h>
#include <sched.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "sign/os_random.h"

namespace metronome {
namespace {

// The order n of secp256k1's group, big-endian.
constexpr std::array<uint8_t, 32> kOrder = {
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41};

template <size_t N>
void wipe_bytes(std::array<uint8_t, N>& a) {
  CryptoPP::SecureWipeArray(a.data(), a.size());
}

// The digest as a scalar, as libsecp256k1 reads a message (secp256k1_scalar_set_b32 reduces it
// modulo n). z < 2^256 < 2n, so one subtraction is enough. The tweak functions refuse a tweak
// ≥ n, and the library has no public reduction: hence these lines.
std::array<uint8_t, 32> reduce_mod_order(const std::array<uint8_t, 32>& z) {
  if (z < kOrder) return z;
  std::array<uint8_t, 32> out{};
  int borrow = 0;
  for (int i = 31; i >= 0; --i) {
    int d = int{z[i]} - int{kOrder[i]} - borrow;
    borrow = d < 0 ? 1 : 0;
    out[i] = static_cast<uint8_t>(d + (borrow << 8));
  }
  return out;
}

bool is_zero(const std::array<uint8_t, 32>& a) {
  return std::all_of(a.begin(), a.end(), [](uint8_t b) { return b == 0; });
}

}  // namespace

Presignature::~Presignature() {
  wipe(*this);
}

void wipe(Presignature& p) {
  wipe_bytes(p.r);
  wipe_bytes(p.k_inverse);
  p.recovery_id = 0;
}

size_t make_presignatures(const secp256k1_context* ctx, std::span<std::array<uint8_t, 32>> nonces,
                          std::array<uint8_t, 32>& blind, std::vector<Presignature>& out) {
  using Scalar = std::array<uint8_t, 32>;
  if (nonces.size() > kPresignBatch) {
    std::fprintf(stderr, "make_presignatures: %zu nonces, at most %zu\n", nonces.size(),
                 kPresignBatch);
    std::abort();
  }
  const size_t first = out.size();
  if (secp256k1_ec_seckey_verify(ctx, blind.data()) != 1) {
    for (Scalar& k : nonces) wipe_bytes(k);
    wipe_bytes(blind);
    return 0;
  }
  // R = k·G; r = R.x, which must be below n (else r would be R.x − n and the recovery id 2 or
  // 3: probability 2⁻¹²⁸, dropped instead). The kept nonces move to the front of `nonces`.
  size_t kept = 0;
  for (Scalar& k : nonces) {
    secp256k1_pubkey point;
    if (secp256k1_ec_seckey_verify(ctx, k.data()) != 1 ||
        secp256k1_ec_pubkey_create(ctx, &point, k.data()) != 1) {
      continue;
    }
    std::array<uint8_t, 65> uncompressed{};
    size_t len = uncompressed.size();
    secp256k1_ec_pubkey_serialize(ctx, uncompressed.data(), &len, &point,
                                  SECP256K1_EC_UNCOMPRESSED);
    Presignature p;
    std::copy_n(uncompressed.begin() + 1, 32, p.r.begin());
    p.recovery_id = uncompressed[64] & 1;
    if (secp256k1_ec_seckey_verify(ctx, p.r.data()) != 1) continue;  // 0 < r < n
    out.push_back(p);
    if (&nonces[kept] != &k) nonces[kept] = k;
    ++kept;
  }

  // Montgomery's trick: prefix[i] = k₀·…·kᵢ; one inverse of b·prefix[last]; then walking back,
  // kᵢ⁻¹ = (k₀·…·kᵢ)⁻¹ · prefix[i−1] and (k₀·…·kᵢ₋₁)⁻¹ = (k₀·…·kᵢ)⁻¹ · kᵢ.
  // A product of valid scalars modulo the prime n is never 0, so no tweak below can fail.
  bool ok = true;
  std::array<Scalar, kPresignBatch> prefix{};
  Scalar inverse{};
  for (size_t i = 0; ok && i < kept; ++i) {
    prefix[i] = nonces[i];
    if (i > 0) {
      ok = secp256k1_ec_seckey_tweak_mul(ctx, prefix[i].data(), prefix[i - 1].data()) == 1;
    }
  }
  if (ok && kept > 0) {
    Scalar blinded = prefix[kept - 1];
    ok = secp256k1_ec_seckey_tweak_mul(ctx, blinded.data(), blind.data()) == 1;
    static const CryptoPP::Integer order(kOrder.data(), kOrder.size());
    // SecBlock storage: wiped when freed.
    CryptoPP::Integer(blinded.data(), blinded.size())
        .InverseMod(order)
        .Encode(inverse.data(), inverse.size());
    wipe_bytes(blinded);
    ok = ok && secp256k1_ec_seckey_tweak_mul(ctx, inverse.data(), blind.data()) == 1;
  }
  for (size_t i = kept; ok && i-- > 0;) {
    Scalar& k_inverse = out[first + i].k_inverse;
    k_inverse = inverse;
    if (i > 0) {
      ok = secp256k1_ec_seckey_tweak_mul(ctx, k_inverse.data(), prefix[i - 1].data()) == 1 &&
           secp256k1_ec_seckey_tweak_mul(ctx, inverse.data(), nonces[i].data()) == 1;
    }
  }
  for (Scalar& k : nonces) wipe_bytes(k);
  for (Scalar& p : prefix) wipe_bytes(p);
  wipe_bytes(inverse);
  wipe_bytes(blind);
  if (!ok) {
    // Only a broken invariant gets here; nothing half-made is kept (each wipes itself).
    out.resize(first);
    return 0;
  }
  return kept;
}

bool sign_with_presignature(const secp256k1_context* ctx, const Presignature& p,
                            const std::array<uint8_t, 32>& digest,
                            std::span<const uint8_t, 32> secret, std::array<uint8_t, 65>& out) {
  const std::array<uint8_t, 32> z = reduce_mod_order(digest);
  if (is_zero(z)) return false;  // the tweak-add refuses a zero tweak
  std::array<uint8_t, 32> s{};
  std::copy(secret.begin(), secret.end(), s.begin());
  bool ok = secp256k1_ec_seckey_tweak_mul(ctx, s.data(), p.r.data()) == 1 &&  // r·d
            secp256k1_ec_seckey_tweak_add(ctx, s.data(), z.data()) == 1 &&    // z + r·d ≠ 0
            secp256k1_ec_seckey_tweak_mul(ctx, s.data(), p.k_inverse.data()) == 1;
  int recovery_id = p.recovery_id;
  if (ok && s > kSecp256k1HalfOrder) {
    // s and n − s both verify; Ethereum accepts only the low one, made with −k, whose point
    // has the other y parity.
    ok = secp256k1_ec_seckey_negate(ctx, s.data()) == 1;
    recovery_id ^= 1;
  }
  if (ok) {
    std::copy(p.r.begin(), p.r.end(), out.begin());
    std::copy(s.begin(), s.end(), out.begin() + 32);
    out[64] = static_cast<uint8_t>(27 + recovery_id);
  }
  wipe_bytes(s);
  return ok;
}

Result<std::unique_ptr<PresignPool>> PresignPool::Create(Options options) {
  if (options.capacity == 0) {
    return Status::InvalidArgument("presignature pool capacity must be at least 1");
  }
  secp256k1_context* ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
  std::array<uint8_t, 32> seed{};
  Status st = fill_os_random(seed);
  if (st.ok() && !secp256k1_context_randomize(ctx, seed.data())) {
    st = Status::Internal("secp256k1_context_randomize failed");
  }
  wipe_bytes(seed);
  if (!st.ok()) {
    secp256k1_context_destroy(ctx);
    return st.With("presignature pool");
  }
  std::unique_ptr<PresignPool> pool(new PresignPool(options, ctx));
  if (options.background) {
    pool->thread_ = std::thread([p = pool.get()] { p->run(); });
  }
  return pool;
}

PresignPool::PresignPool(Options options, secp256k1_context* ctx) : options_(options), ctx_(ctx) {}

PresignPool::~PresignPool() {
  stopping_.store(true);
  {
    std::lock_guard lock(hold_mu_);  // a maker held (hold()) sees stopping_ once it waits again
  }
  hold_cv_.notify_all();
  // A maker waiting for the slot to empty wakes on any change of next_.
  wipe_and_delete(next_.exchange(nullptr));
  next_.notify_all();
  if (thread_.joinable()) thread_.join();
  wipe_and_delete(next_.exchange(nullptr));
  wipe_and_delete(spare_.exchange(nullptr));
  std::lock_guard lock(mu_);
  for (auto& p : current_) wipe(p);
  secp256k1_context_destroy(ctx_);
}

void PresignPool::wipe_and_delete(Half* half) {
  if (half == nullptr) return;
  for (auto& p : *half) wipe(p);
  delete half;
}

bool PresignPool::take(Presignature& out) {
  Half* retired = nullptr;
  {
    std::lock_guard lock(mu_);
    if (current_.empty()) {
      Half* next = next_.exchange(nullptr, std::memory_order_acq_rel);
      if (next == nullptr) {
        missed_.fetch_add(1, std::memory_order_relaxed);
        return false;
      }
      current_.swap(*next);  // next now holds the empty, used-up vector
      retired = next;
    }
    out = current_.back();
    wipe(current_.back());
    current_.pop_back();
  }
  if (retired != nullptr) {
    next_.notify_one();  // the maker may hand over the next half
    // Its buffer goes back to the maker (freeing ~1 MB here would cost a munmap at the slot).
    // The maker takes the spare before each half, so it is almost always free.
    wipe_and_delete(spare_.exchange(retired, std::memory_order_acq_rel));
  }
  taken_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

Status PresignPool::make_half() {
  const size_t want = std::max<size_t>(1, (options_.capacity + 1) / 2);
  std::unique_ptr<Half> half(spare_.exchange(nullptr, std::memory_order_acq_rel));
  if (!half) half = std::make_unique<Half>();
  half->clear();
  half->reserve(want);
  // One getrandom(2) and one modular inversion per batch of up to kPresignBatch.
  std::array<uint8_t, 32 * (kPresignBatch + 1)> random{};
  std::array<std::array<uint8_t, 32>, kPresignBatch> nonces{};
  std::array<uint8_t, 32> blind{};
  struct WipeOnExit {
    std::span<uint8_t> bytes;
    ~WipeOnExit() { CryptoPP::SecureWipeArray(bytes.data(), bytes.size()); }
  } wipe_random{random};
  int empty_batches = 0;
  while (half->size() < want) {
    {
      std::unique_lock lock(hold_mu_);
      hold_cv_.wait(lock, [&] { return holds_ == 0 || stopping_.load(); });
    }
    if (stopping_.load(std::memory_order_relaxed)) return Status::Cancelled("pool stopping");
    const size_t n = std::min(kPresignBatch, want - half->size());
    METRONOME_RETURN_IF_ERROR(fill_os_random(std::span<uint8_t>(random.data(), 32 * (n + 1))));
    for (size_t i = 0; i < n; ++i) std::copy_n(random.begin() + 32 * i, 32, nonces[i].begin());
    std::copy_n(random.begin() + 32 * n, 32, blind.begin());
    wipe_bytes(random);
    const size_t made = make_presignatures(
        ctx_, std::span<std::array<uint8_t, 32>>(nonces.data(), n), blind, *half);
    // A whole batch dropped: an invalid blinding (probability 2⁻¹²⁸), once; twice in a row,
    // libsecp256k1 refuses valid scalars.
    empty_batches = made == 0 ? empty_batches + 1 : 0;
    if (empty_batches >= 2) {
      return Status::Internal("libsecp256k1 refused every nonce of two batches");
    }
  }
  Half* expected = nullptr;
  Half* raw = half.release();
  while (!next_.compare_exchange_weak(expected, raw, std::memory_order_acq_rel)) {
    if (expected != nullptr) next_.wait(expected, std::memory_order_acquire);
    if (stopping_.load()) {
      wipe_and_delete(raw);
      return Status::Cancelled("pool stopping");
    }
    expected = nullptr;
  }
  return Status::Ok();
}

void PresignPool::run() {
  // SCHED_IDLE: the slots' own work always comes first. Allowed to any user.
  sched_param param{};
  param.sched_priority = 0;
  if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &param) != 0) {
    spdlog::warn("presignature pool: SCHED_IDLE refused; the maker runs at normal priority");
  }
  pthread_setname_np(pthread_self(), "metronome-nonce");
  while (!stopping_.load()) {
    Status st = make_half();
    if (!st.ok() && st.code() != Status::Code::kCancelled) {
      // getrandom(2) failed, or libsecp256k1 broke an invariant: the signers sign the usual
      // way (RFC 6979) from now on.
      spdlog::error("presignature pool stopped: {}; signing without presignatures", st.ToString());
      return;
    }
  }
}

void PresignPool::hold() {
  std::lock_guard lock(hold_mu_);
  ++holds_;
}

void PresignPool::release() {
  {
    std::lock_guard lock(hold_mu_);
    if (--holds_ > 0) return;
  }
  hold_cv_.notify_all();
}

int PresignPool::holds() const {
  std::lock_guard lock(hold_mu_);
  return holds_;
}

size_t PresignPool::ready() const {
  std::lock_guard lock(mu_);
  Half* next = next_.load(std::memory_order_acquire);
  // A handed-over half is unlinked from next_ only by a taker, under mu_: safe to read here.
  return current_.size() + (next != nullptr ? next->size() : 0);
}

}  // namespace metronome
