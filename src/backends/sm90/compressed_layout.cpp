// slidesparse sm90 backend: the CPU model of the compressed sparse operand (sm90_kernels.hpp),
// written from CUTLASS's Sm90GemmSparseConfig (sm90_sparse_config.inl) and the sm90 compressor's
// rules, independently of their code. tests/gpu/gpu_sm90.cpp checks the GPU compressor against it
// byte for byte.
//
// Values: row r holds k/2 elements; group g (elements 4g..4g+3 of the row) contributes two, at
// 2g and 2g+1:
//   two nonzeros at i0 < i1    -> (w[i0], w[i1]),  indices (i0, i1)
//   one nonzero at i < 3       -> (w[i], 0),       indices (i, 3)
//   one nonzero at i = 3       -> (0, w[3]),       indices (0, 3)
//   none                       -> (0, 0),          indices (0, 0)
// A zero is an element whose bits other than the sign are zero (-0.0 is zero and is never stored:
// its slot holds +0). Metadata nibble of the group = i0 | i1 << 2.
//
// Metadata (one byte holds two groups: the even group in the low nibble): the logical (row,
// element) plane is cut into atoms of 64 rows x AK elements (AK = 128 for 8-bit inputs, 64 for
// 16-bit), atoms stacked first along rows (stride 64*AK elements) then along k (stride
// n64*AK, n64 = n rounded up to 64); an element's "logical offset" o inside an atom is
//   8-bit:   o = (r % 64) * 128 + (k % 128)
//   16-bit:  with r = r0 + 8 r1 + 16 r2 (r0 < 8, r1 < 2, r2 < 4) and k = k0 + 16 k1 + 32 k2
//            (k0 < 16, k1 < 2, k2 < 2):  o = k0 + 16 r1 + 32 k2 + 64 r0 + 512 k1 + 1024 r2
// and the group starting at element k sits in byte o/8 (high nibble when o % 8 = 4). Rows past n
// and k past the last group up to the atom boundary are zero bytes.
#include "backends/sm90/sm90_kernels.hpp"

#include <cstring>

#include "slidesparse/types.hpp"

namespace slidesparse::sm90 {
namespace {

bool eight_bit(GemmPrecision p) { return p == GemmPrecision::kI8 || p == GemmPrecision::kE4M3; }
int64_t round_up(int64_t v, int64_t a) { return (v + a - 1) / a * a; }

}  // namespace

CompressedLayout compressed_layout(GemmPrecision p, int64_t n, int64_t k) {
  CompressedLayout l;
  const int64_t atom_k = eight_bit(p) ? 128 : 64;
  l.meta_rows = round_up(n, 64);
  l.meta_k = round_up(k, atom_k);
  l.value_bytes = size_t(n) * size_t(k / 2) * (eight_bit(p) ? 1 : 2);
  l.meta_bytes = size_t(l.meta_rows) * size_t(l.meta_k) / 8;
  return l;
}

MetaPos meta_position(GemmPrecision p, int64_t n, int64_t /*k*/, int64_t r, int64_t g) {
  const int64_t kk = 4 * g;
  const int64_t n64 = round_up(n, 64);
  int64_t atom_k = 0, o = 0;
  if (eight_bit(p)) {
    atom_k = 128;
    o = (r % 64) * 128 + (kk % 128);
  } else {
    atom_k = 64;
    const int64_t rr = r % 64, kr = kk % 64;
    const int64_t r0 = rr % 8, r1 = (rr / 8) % 2, r2 = rr / 16;
    const int64_t k0 = kr % 16, k1 = (kr / 16) % 2, k2 = kr / 32;
    o = k0 + 16 * r1 + 32 * k2 + 64 * r0 + 512 * k1 + 1024 * r2;
  }
  const int64_t atom = (r / 64) * (64 * atom_k) + (kk / atom_k) * (n64 * atom_k);
  MetaPos pos;
  pos.byte = size_t((atom + o) / 8);
  pos.high = (o % 8) == 4;
  return pos;
}

void compress_cpu(GemmPrecision p, const void* w, int64_t n, int64_t k, void* values, void* meta) {
  const CompressedLayout l = compressed_layout(p, n, k);
  const size_t es = eight_bit(p) ? 1 : 2;
  const uint32_t magnitude = p == GemmPrecision::kI8 ? 0xFFu : (es == 1 ? 0x7Fu : 0x7FFFu);
  const auto* src = static_cast<const uint8_t*>(w);
  auto* val = static_cast<uint8_t*>(values);
  auto* md = static_cast<uint8_t*>(meta);
  std::memset(val, 0, l.value_bytes);
  std::memset(md, 0, l.meta_bytes);
  auto bits = [&](int64_t r, int64_t c) -> uint32_t {
    uint32_t b = 0;
    std::memcpy(&b, &src[size_t(r * k + c) * es], es);
    return b;
  };
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t g = 0; g < k / 4; ++g) {
      int idx[4], cnt = 0;
      for (int i = 0; i < 4; ++i)
        if ((bits(r, 4 * g + i) & magnitude) != 0) idx[cnt++] = i;
      int i0 = 0, i1 = 0;   // indices of the two stored slots
      int s0 = -1, s1 = -1;  // source element of each slot, -1: zero
      if (cnt >= 2) {
        i0 = idx[0]; i1 = idx[1]; s0 = idx[0]; s1 = idx[1];
      } else if (cnt == 1 && idx[0] == 3) {
        i0 = 0; i1 = 3; s1 = 3;
      } else if (cnt == 1) {
        i0 = idx[0]; i1 = 3; s0 = idx[0];
      }
      uint8_t* dst = &val[size_t(r * (k / 2) + 2 * g) * es];
      if (s0 >= 0) std::memcpy(dst, &src[size_t(r * k + 4 * g + s0) * es], es);
      if (s1 >= 0) std::memcpy(dst + es, &src[size_t(r * k + 4 * g + s1) * es], es);
      const uint8_t nib = uint8_t(i0 | (i1 << 2));
      const MetaPos pos = meta_position(p, n, k, r, g);
      md[pos.byte] |= pos.high ? uint8_t(nib << 4) : nib;
    }
  }
}

}  // namespace slidesparse::sm90
