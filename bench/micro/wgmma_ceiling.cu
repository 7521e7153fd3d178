// wgmma_ceiling: the raw throughput ceiling of Hopper's warpgroup MMA instructions, dense
// (`wgmma.mma_async`) against 2:4 sparse (`wgmma.mma_async.sp`), with every operand already resident
// in shared memory (or A in registers) and no global-memory traffic in the timed loop. Issue 6
// evidence: how close to 2x dense can the sparse instruction run at all, before any GEMM pipeline
// (TMA, barriers, epilogue) is added?
//
// Standalone, not part of the CMake build or CI: scripts/build_wgmma_ceiling.sh builds it for sm_90a.
//   wgmma_ceiling [--out FILE.json] [--target-ms 25] [--reps 7] [--only SUBSTRING] [--list]
// Exit codes: 0 ok, 2 bad arguments, 3 no sm_90 GPU, 4 CUDA error, 5 cannot write --out.
//
// What one kernel does: one CTA per SM (or two), WG consumer warpgroups (128 threads each). Shared
// memory holds S stages; a stage is WG A tiles (64 rows x 128 B, one per warpgroup) and one B tile
// (N rows x 128 B, shared by the warpgroups, as in a 128xN / 192xN GEMM tile), both K-major. Each
// warpgroup walks the stages round-robin; per stage it issues the instructions that cover the
// 128-byte K extent (4 dense or 2 sparse), commits them as one group and waits until at most one
// group is in flight, as a GEMM mainloop does. Logical (dense-equivalent) FLOPs per instruction:
// 2*64*N*K, K the logical (uncompressed) depth of the instruction.
//
// Operand layouts follow the PTX ISA's shared-memory matrix descriptor (wgmma "Matrix Descriptor
// Format"): bits 0-13 start address >> 4, 16-29 leading-dimension byte offset >> 4, 32-45 stride
// byte offset >> 4, 62-63 swizzle mode (0 none, 1 128B, 2 64B, 3 32B). With the 128B swizzle each
// 8-row group is a 1024-byte atom of 8 x 128 B (stride byte offset 1024, the leading offset unused
// for K-major) and the instruction's K slice is selected by advancing the start address inside the
// atom. Without swizzle ("interleave") a core matrix is 8 rows x 16 B stored as 128 contiguous
// bytes; the tile is laid out [row group][16-byte K column], so the leading offset (next K core
// matrix) is 128 B and the stride offset (next 8 rows) 1024 B.
//
// Sparse operand rules (PTX ISA, wgmma.mma_async.sp): A is the compressed sparse operand (64 x K/2),
// the metadata is one 32-bit register per thread holding 2-bit indices of the two kept elements of
// every group of four; the sparsity selector (an immediate) picks which threads of a quad supply the
// metadata. 0x44444444 encodes indices (0, 1) in every group: a valid 2:4 pattern for 8- and 16-bit
// types; selector 0.
#include <cuda_runtime.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

namespace {

constexpr int kExitBadArgs = 2;
constexpr int kExitNoGpu = 3;
constexpr int kExitCuda = 4;
constexpr int kExitWrite = 5;

#define WGC_CUDA_CHECK(expr)                                                                    \
  do {                                                                                          \
    cudaError_t err_ = (expr);                                                                  \
    if (err_ != cudaSuccess) {                                                                  \
      std::fprintf(stderr, "wgmma_ceiling: CUDA error %s (%s) at %s:%d: %s\n",                  \
                   cudaGetErrorName(err_), cudaGetErrorString(err_), __FILE__, __LINE__, #expr); \
      std::exit(kExitCuda);                                                                     \
    }                                                                                           \
  } while (0)

enum Prec : int { kE4M3 = 0, kBF16 = 1, kI8 = 2 };

constexpr int kRowBytes = 128;          // every tile row is one 128-byte K extent (= one 128B swizzle row)
constexpr int kATileBytes = 64 * kRowBytes;  // A tile of one warpgroup: 64 rows (the instruction's M)
constexpr int kSwz128 = 1;
constexpr int kSwzNone = 0;
constexpr uint32_t kMeta24 = 0x44444444u;  // indices (0,1) in every group of four: valid 2:4 metadata

// ---------------------------------------------------------------------------------------------
// PTX wrappers.

// Accumulator operand strings: "{%0, ..., %N-1}" (outputs are numbered first in inline asm).
#define ACC_STR_64 "{" \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63" \
  "}"
#define ACC_STR_128 "{" \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, " \
  "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, " \
  "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, " \
  "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, " \
  "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127" \
  "}"

// Accumulator operand lists: C is the constraint macro ("+f" or "+r").
#define ACC_L8(C, d, b) C(d[(b) + 0]), C(d[(b) + 1]), C(d[(b) + 2]), C(d[(b) + 3]), \
                        C(d[(b) + 4]), C(d[(b) + 5]), C(d[(b) + 6]), C(d[(b) + 7])
#define ACC_L64(C, d, b) ACC_L8(C, d, (b) + 0), ACC_L8(C, d, (b) + 8), ACC_L8(C, d, (b) + 16), \
                         ACC_L8(C, d, (b) + 24), ACC_L8(C, d, (b) + 32), ACC_L8(C, d, (b) + 40), \
                         ACC_L8(C, d, (b) + 48), ACC_L8(C, d, (b) + 56)
#define ACC_L128(C, d) ACC_L64(C, d, 0), ACC_L64(C, d, 64)
#define CF(x) "+f"(x)
#define CR(x) "+r"(x)

// The operands after the accumulators are always the same eight, so one asm body fits every
// variant: descA, descB, a0..a3 (A fragment for RS), metadata, scale-d. Unused ones are ignored.
// Their operand numbers depend on the accumulator count (64 or 128).
#define OPS_128 ("%128", "%129", "{%130, %131, %132, %133}", "%134", "%135")
#define OPS_64 ("%64", "%65", "{%66, %67, %68, %69}", "%70", "%71")
#define OP_DA(DA, DB, AR, E, SC) DA
#define OP_DB(DA, DB, AR, E, SC) DB
#define OP_AR(DA, DB, AR, E, SC) AR
#define OP_E(DA, DB, AR, E, SC) E
#define OP_SC(DA, DB, AR, E, SC) SC

// One wgmma: INSTR is the opcode with shape and types, A_ARG the A operand (descriptor or register
// fragment), TAIL what follows B (metadata/selector for .sp, then scale-d and the immediates).
// scale-d is a predicate: set from a register (1 = accumulate) as the PTX ISA requires.
#define WGMMA_ASM(OPS, ACCSTR, INSTR, A_ARG, SP_ARGS, IMM, ...)                              \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, " OP_SC OPS ", 0;\n" INSTR " " ACCSTR \
               ", " A_ARG ", " OP_DB OPS ", " SP_ARGS "p" IMM ";\n}\n"                  \
               : __VA_ARGS__                                                                   \
               : "l"(da), "l"(db), "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(meta), "r"(1))

// Shape strings.
#define SHAPE_STR(N, K) "m64n" #N "k" #K

template <int P, bool SP, bool RS, int N, class Acc>
__device__ __forceinline__ void wgmma(Acc* d, uint64_t da, uint64_t db, const uint32_t (&a)[4],
                                      uint32_t meta) {
  // The immediates: scale-a = scale-b = 1 (no negation); bf16 adds the transpose flags (0 = K-major,
  // the only layout e4m3/i8 have); RS drops trans-a. i8 has no immediates at all.
#define SP_SEL(OPS) OP_E OPS ", 0, "
#define BODY(OPS, ACCSTR, NN, ...)                                                             \
  if constexpr (P == kE4M3 && !SP && !RS) {                                                        \
    WGMMA_ASM(OPS, ACCSTR, "wgmma.mma_async.sync.aligned." SHAPE_STR(NN, 32) ".f32.e4m3.e4m3", \
              OP_DA OPS, "", ", 1, 1", __VA_ARGS__);                                                     \
  } else if constexpr (P == kE4M3 && !SP && RS) {                                                  \
    WGMMA_ASM(OPS, ACCSTR, "wgmma.mma_async.sync.aligned." SHAPE_STR(NN, 32) ".f32.e4m3.e4m3", \
              OP_AR OPS, "", ", 1, 1", __VA_ARGS__);                                                     \
  } else if constexpr (P == kE4M3 && SP && !RS) {                                                  \
    WGMMA_ASM(OPS, ACCSTR, "wgmma.mma_async.sp.sync.aligned." SHAPE_STR(NN, 64) ".f32.e4m3.e4m3", \
              OP_DA OPS, SP_SEL(OPS), ", 1, 1", __VA_ARGS__);                                            \
  } else if constexpr (P == kE4M3 && SP && RS) {                                                   \
    WGMMA_ASM(OPS, ACCSTR, "wgmma.mma_async.sp.sync.aligned." SHAPE_STR(NN, 64) ".f32.e4m3.e4m3", \
              OP_AR OPS, SP_SEL(OPS), ", 1, 1", __VA_ARGS__);                                            \
  } else if constexpr (P == kBF16 && !SP && !RS) {                                                 \
    WGMMA_ASM(OPS, ACCSTR, "wgmma.mma_async.sync.aligned." SHAPE_STR(NN, 16) ".f32.bf16.bf16", \
              OP_DA OPS, "", ", 1, 1, 0, 0", __VA_ARGS__);                                               \
  } else if constexpr (P == kBF16 && !SP && RS) {                                                  \
    WGMMA_ASM(OPS, ACCSTR, "wgmma.mma_async.sync.aligned." SHAPE_STR(NN, 16) ".f32.bf16.bf16", \
              OP_AR OPS, "", ", 1, 1, 0", __VA_ARGS__);                                                  \
  } else if constexpr (P == kBF16 && SP && !RS) {                                                  \
    WGMMA_ASM(OPS, ACCSTR, "wgmma.mma_async.sp.sync.aligned." SHAPE_STR(NN, 32) ".f32.bf16.bf16", \
              OP_DA OPS, SP_SEL(OPS), ", 1, 1, 0, 0", __VA_ARGS__);                                      \
  } else if constexpr (P == kBF16 && SP && RS) {                                                   \
    WGMMA_ASM(OPS, ACCSTR, "wgmma.mma_async.sp.sync.aligned." SHAPE_STR(NN, 32) ".f32.bf16.bf16", \
              OP_AR OPS, SP_SEL(OPS), ", 1, 1, 0", __VA_ARGS__);                                         \
  } else if constexpr (P == kI8 && !SP && !RS) {                                                   \
    WGMMA_ASM(OPS, ACCSTR, "wgmma.mma_async.sync.aligned." SHAPE_STR(NN, 32) ".s32.s8.s8", \
              OP_DA OPS, "", "", __VA_ARGS__);                                                           \
  } else if constexpr (P == kI8 && !SP && RS) {                                                    \
    WGMMA_ASM(OPS, ACCSTR, "wgmma.mma_async.sync.aligned." SHAPE_STR(NN, 32) ".s32.s8.s8", \
              OP_AR OPS, "", "", __VA_ARGS__);                                                           \
  } else if constexpr (P == kI8 && SP && !RS) {                                                    \
    WGMMA_ASM(OPS, ACCSTR, "wgmma.mma_async.sp.sync.aligned." SHAPE_STR(NN, 64) ".s32.s8.s8", \
              OP_DA OPS, SP_SEL(OPS), "", __VA_ARGS__);                                                  \
  } else {                                                                                         \
    WGMMA_ASM(OPS, ACCSTR, "wgmma.mma_async.sp.sync.aligned." SHAPE_STR(NN, 64) ".s32.s8.s8", \
              OP_AR OPS, SP_SEL(OPS), "", __VA_ARGS__);                                                  \
  }
  constexpr bool kInt = (P == kI8);
  if constexpr (N == 256 && !kInt) {
    BODY(OPS_128, ACC_STR_128, 256, ACC_L128(CF, d))
  } else if constexpr (N == 256 && kInt) {
    BODY(OPS_128, ACC_STR_128, 256, ACC_L128(CR, d))
  } else if constexpr (N == 128 && !kInt) {
    BODY(OPS_64, ACC_STR_64, 128, ACC_L64(CF, d, 0))
  } else {
    static_assert(N == 128, "only n = 128 and n = 256 are instantiated");
    BODY(OPS_64, ACC_STR_64, 128, ACC_L64(CR, d, 0))
  }
#undef BODY
#undef SP_SEL
}

// Orders the warpgroup's register accesses before the next wgmma (required before the first one
// and whenever accumulator or A-fragment registers were touched by other instructions).
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
// Closes the instructions issued since the last commit into one group.
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
// Waits until at most Pending groups are in flight.
template <int Pending>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(Pending) : "memory");
}
// Makes generic-proxy writes to shared memory (the fill) visible to the async proxy (wgmma reads).
__device__ __forceinline__ void fence_proxy_async_smem() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
__device__ __forceinline__ uint64_t global_timer_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// Shared-memory matrix descriptor (PTX ISA, "Matrix Descriptor Format"); byte quantities >> 4.
__device__ __forceinline__ uint64_t make_desc(uint32_t smem_addr, uint32_t lbo_bytes, uint32_t sbo_bytes,
                                              int swizzle) {
  uint64_t d = 0;
  d |= uint64_t((smem_addr >> 4) & 0x3FFFu);
  d |= uint64_t((lbo_bytes >> 4) & 0x3FFFu) << 16;
  d |= uint64_t((sbo_bytes >> 4) & 0x3FFFu) << 32;
  d |= uint64_t(swizzle & 0x3) << 62;
  return d;
}

// ---------------------------------------------------------------------------------------------
// The kernel.

struct Params {
  int iters;               // passes over all stages
  int stages;              // S
  int write;               // 0 at run time: the accumulators are stored only if set (keeps the work live)
  int random_data;         // 1: a non-zero valid pattern in shared memory, 0: zeros
  void* out;               // WG*128*N/2 words per CTA, written only if `write`
  unsigned long long* clk; // per CTA: clock64 delta, globaltimer delta (ns)
};

template <int P, bool SP, bool RS, int N, int WG>
struct Geometry {
  static constexpr int kInstK = SP ? 64 : 32;          // bytes of B's K slice per instruction
  static constexpr int kBSliceBytes = kInstK;         // 8-bit: 32/64 elements; bf16: 16/32 elements
  static constexpr int kPerStage = kRowBytes / kBSliceBytes;           // instructions per 128-byte K extent
  static constexpr int kASliceBytes = 32;             // dense: K bytes; sparse: compressed K/2 bytes
  static constexpr int kBTileBytes = N * kRowBytes;
  static constexpr int kStageBytes = WG * kATileBytes + kBTileBytes;
  // Logical (dense-equivalent) K of one instruction, in elements.
  static constexpr int kLogicalK = (P == kBF16) ? (SP ? 32 : 16) : (SP ? 64 : 32);
  static constexpr int kAccWords = N / 2;             // per thread: 64*N / 128
};

template <int P, bool SP, bool RS, int N, int WG, int CPS, int SWZ>
__global__ void __launch_bounds__(WG * 128, CPS) ceiling_kernel(Params p) {
  using G = Geometry<P, SP, RS, N, WG>;
  using Acc = typename std::conditional<P == kI8, int32_t, float>::type;
  extern __shared__ __align__(1024) uint8_t smem_raw[];
  // 128B swizzle atoms must start on 1024-byte boundaries.
  const uint32_t raw_addr = static_cast<uint32_t>(__cvta_generic_to_shared(smem_raw));
  const uint32_t base = (raw_addr + 1023u) & ~1023u;
  uint8_t* smem = smem_raw + (base - raw_addr);

  // Fill every stage: zeros, or a valid non-zero pattern (no NaN/Inf: e4m3 exponents 0..7, bf16
  // magnitudes in [1, 2)), so the tensor cores switch like they do on real data.
  const int total_words = p.stages * G::kStageBytes / 4;
  for (int i = threadIdx.x; i < total_words; i += blockDim.x) {
    uint32_t h = (uint32_t(i) * 2654435761u) ^ (uint32_t(blockIdx.x) * 40503u);
    h ^= h >> 13;
    h *= 0x5bd1e995u;
    h ^= h >> 15;
    uint32_t w = 0;
    if (p.random_data) {
      if (P == kE4M3) w = h & 0xBFBFBFBFu;        // sign, exponent <= 7, any mantissa: never NaN
      else if (P == kBF16) w = 0x3F803F80u | (h & 0x807F807Fu);  // +-[1, 2)
      else w = h;                                 // any int8
    }
    reinterpret_cast<uint32_t*>(smem)[i] = w;
  }
  fence_proxy_async_smem();
  __syncthreads();

  const int wg = threadIdx.x / 128;
  uint32_t lbo = 16, sbo = 1024;  // 128B swizzle: lbo unused (encoded 1), 8 rows x 128 B per atom
  if (SWZ == kSwzNone) lbo = 128;  // next 16-byte K column of core matrices; sbo: next 8 rows
  const uint64_t desc_a0 = make_desc(base + wg * kATileBytes, lbo, sbo, SWZ);
  const uint64_t desc_b0 = make_desc(base + WG * kATileBytes, lbo, sbo, SWZ);
  // Per-instruction start-address steps (in 16-byte units) inside the 128-byte K extent.
  constexpr uint32_t kStepA = (SWZ == kSwz128) ? G::kASliceBytes / 16 : (G::kASliceBytes / 16) * 8;
  constexpr uint32_t kStepB = (SWZ == kSwz128) ? G::kBSliceBytes / 16 : (G::kBSliceBytes / 16) * 8;
  constexpr uint32_t kStageStep = G::kStageBytes / 16;

  // RS: the A fragment lives in registers for the whole loop (the best case for the RS path:
  // no shared-memory reads for A at all).
  uint32_t a[4];
  {
    const uint32_t* src = reinterpret_cast<const uint32_t*>(smem + wg * kATileBytes) + (threadIdx.x % 128) * 4;
    a[0] = src[0]; a[1] = src[1]; a[2] = src[2]; a[3] = src[3];
  }
  const uint32_t meta = kMeta24;
  Acc d[G::kAccWords];
#pragma unroll
  for (int i = 0; i < G::kAccWords; ++i) d[i] = Acc(0);

  __syncthreads();
  unsigned long long c0 = 0, t0 = 0;
  if (threadIdx.x == 0) {
    t0 = global_timer_ns();
    c0 = clock64();
  }
  wgmma_fence();
  for (int it = 0; it < p.iters; ++it) {
    for (int s = 0; s < p.stages; ++s) {
      const uint64_t da = desc_a0 + uint64_t(s) * kStageStep;
      const uint64_t db = desc_b0 + uint64_t(s) * kStageStep;
      wgmma_fence();
#pragma unroll
      for (int k = 0; k < G::kPerStage; ++k) {
        wgmma<P, SP, RS, N>(d, da + k * kStepA, db + k * kStepB, a, meta);
      }
      wgmma_commit();
      wgmma_wait<1>();
    }
  }
  wgmma_wait<0>();
  __syncthreads();
  if (threadIdx.x == 0) {
    const unsigned long long c1 = clock64();
    const unsigned long long t1 = global_timer_ns();
    p.clk[2 * blockIdx.x] = c1 - c0;
    p.clk[2 * blockIdx.x + 1] = t1 - t0;
  }
  if (p.write) {
    Acc* out = reinterpret_cast<Acc*>(p.out) + (size_t(blockIdx.x) * blockDim.x + threadIdx.x) * G::kAccWords;
#pragma unroll
    for (int i = 0; i < G::kAccWords; ++i) out[i] = d[i];
  }
}

// ---------------------------------------------------------------------------------------------
// Host side.

const char* prec_name(int p) { return p == kE4M3 ? "e4m3" : p == kBF16 ? "bf16" : "i8"; }
// Dense MACs per clock per SM (tensor cores of the four sub-partitions together).
int dense_macs_per_clk(int p) { return p == kBF16 ? 2048 : 4096; }

struct Variant {
  int prec;
  bool sparse;
  bool rs;
  int n;
  int wg;
  int cps;  // CTAs per SM
  int swz;
  bool random_data;
  const void* func;
  int stage_bytes;
  int logical_k;
  int per_stage;
  std::string name;
};

struct Result {
  Variant v;
  bool ran = false;
  std::string skip_reason;
  int stages = 0;
  int iters = 0;
  int grid = 0;
  int occupancy = 0;
  int regs = 0;
  int spill_bytes = 0;
  double ms_median = 0, ms_min = 0, ms_max = 0;
  double tflops_median = 0, tflops_best = 0;
  double clock_mhz = 0;         // clock64 / globaltimer, mean over CTAs, of the median run
  double clock_mhz_min = 0, clock_mhz_max = 0;
  double peak_tflops_at_clock = 0;
  double pct_of_peak = 0;
  std::vector<double> ms_all;
};

template <int P, bool SP, bool RS, int N, int WG, int CPS, int SWZ>
Variant make_variant(bool random_data = true) {
  using G = Geometry<P, SP, RS, N, WG>;
  Variant v;
  v.prec = P;
  v.sparse = SP;
  v.rs = RS;
  v.n = N;
  v.wg = WG;
  v.cps = CPS;
  v.swz = SWZ;
  v.random_data = random_data;
  v.func = reinterpret_cast<const void*>(&ceiling_kernel<P, SP, RS, N, WG, CPS, SWZ>);
  v.stage_bytes = G::kStageBytes;
  v.logical_k = G::kLogicalK;
  v.per_stage = G::kPerStage;
  char buf[128];
  std::snprintf(buf, sizeof buf, "%s_%s_m64n%dk%d_%s_%dcta_%dwg%s%s", prec_name(P), SP ? "sparse" : "dense", N,
                G::kLogicalK, RS ? "RS" : "SS", CPS, WG, SWZ == kSwzNone ? "_noswz" : "",
                random_data ? "" : "_zeros");
  v.name = buf;
  return v;
}

// The instantiated set. e4m3 first (the priority), then bf16 and i8.
template <int P>
void add_precision(std::vector<Variant>& vs) {
  // n = 256: 1 CTA x 2 WG (the GEMM's 128x256 tile), 1 CTA x 3 WG (192x256), 2 CTAs x 1 WG. No RS
  // with 3 WG: at 168 registers per thread ptxas serializes the sparse RS wgmma (C7512).
  vs.push_back(make_variant<P, false, false, 256, 2, 1, kSwz128>());
  vs.push_back(make_variant<P, true, false, 256, 2, 1, kSwz128>());
  vs.push_back(make_variant<P, false, true, 256, 2, 1, kSwz128>());
  vs.push_back(make_variant<P, true, true, 256, 2, 1, kSwz128>());
  vs.push_back(make_variant<P, false, false, 256, 3, 1, kSwz128>());
  vs.push_back(make_variant<P, true, false, 256, 3, 1, kSwz128>());
  vs.push_back(make_variant<P, false, false, 256, 1, 2, kSwz128>());
  vs.push_back(make_variant<P, true, false, 256, 1, 2, kSwz128>());
  // n = 128: 1 CTA x 2 WG, 1 CTA x 3 WG, 2 CTAs x 2 WG.
  vs.push_back(make_variant<P, false, false, 128, 2, 1, kSwz128>());
  vs.push_back(make_variant<P, true, false, 128, 2, 1, kSwz128>());
  vs.push_back(make_variant<P, false, false, 128, 3, 1, kSwz128>());
  vs.push_back(make_variant<P, true, false, 128, 3, 1, kSwz128>());
  vs.push_back(make_variant<P, false, false, 128, 2, 2, kSwz128>());
  vs.push_back(make_variant<P, true, false, 128, 2, 2, kSwz128>());
}

std::vector<Variant> all_variants() {
  std::vector<Variant> vs;
  add_precision<kE4M3>(vs);
  // e4m3 controls: no swizzle (interleaved core matrices) and all-zero operands (less switching power).
  vs.push_back(make_variant<kE4M3, false, false, 256, 2, 1, kSwzNone>());
  vs.push_back(make_variant<kE4M3, true, false, 256, 2, 1, kSwzNone>());
  vs.push_back(make_variant<kE4M3, false, false, 256, 2, 1, kSwz128>(false));
  vs.push_back(make_variant<kE4M3, true, false, 256, 2, 1, kSwz128>(false));
  add_precision<kBF16>(vs);
  add_precision<kI8>(vs);
  return vs;
}

struct Options {
  std::string out;
  double target_ms = 25.0;
  int reps = 7;
  std::vector<std::string> only;
  bool list = false;
};

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr,
               "wgmma_ceiling: %s\nusage: wgmma_ceiling [--out FILE.json] [--target-ms MS (5..1000)] "
               "[--reps R (5..101)] [--only SUBSTRING]... [--list]\n",
               msg.c_str());
  std::exit(kExitBadArgs);
}

double parse_double(const char* s, const char* what) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(s, &end);
  if (errno != 0 || end == s || *end != '\0') usage_error(std::string("bad number for ") + what + ": '" + s + "'");
  return v;
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&](const char* what) -> const char* {
      if (i + 1 >= argc) usage_error(std::string(what) + " needs a value");
      return argv[++i];
    };
    if (a == "--out") {
      o.out = next("--out");
    } else if (a == "--target-ms") {
      o.target_ms = parse_double(next("--target-ms"), "--target-ms");
      if (!(o.target_ms >= 5 && o.target_ms <= 1000)) usage_error("--target-ms must be in 5..1000");
    } else if (a == "--reps") {
      const double r = parse_double(next("--reps"), "--reps");
      if (r != static_cast<int>(r) || r < 5 || r > 101) usage_error("--reps must be an integer in 5..101");
      o.reps = static_cast<int>(r);
    } else if (a == "--only") {
      o.only.push_back(next("--only"));
    } else if (a == "--list") {
      o.list = true;
    } else {
      usage_error("unknown argument '" + a + "'");
    }
  }
  return o;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct Device {
  int id = 0;
  cudaDeviceProp prop{};
  int sms = 0;
  int clock_khz_attr = 0;
  int driver = 0, runtime = 0;
};

// Runs one launch; returns ms and fills the per-CTA clock estimates (MHz).
double launch_once(const Variant& v, const Params& p, int grid, size_t smem, cudaEvent_t e0, cudaEvent_t e1,
                   std::vector<unsigned long long>& clk_host, std::vector<double>* mhz) {
  void* args[] = {const_cast<Params*>(&p)};
  WGC_CUDA_CHECK(cudaEventRecord(e0));
  WGC_CUDA_CHECK(cudaLaunchKernel(v.func, dim3(grid), dim3(v.wg * 128), args, smem, nullptr));
  WGC_CUDA_CHECK(cudaGetLastError());
  WGC_CUDA_CHECK(cudaEventRecord(e1));
  WGC_CUDA_CHECK(cudaEventSynchronize(e1));
  float ms = 0;
  WGC_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
  if (mhz) {
    WGC_CUDA_CHECK(cudaMemcpy(clk_host.data(), p.clk, clk_host.size() * sizeof(unsigned long long),
                              cudaMemcpyDeviceToHost));
    mhz->clear();
    for (int b = 0; b < grid; ++b) {
      const double c = double(clk_host[2 * b]), t = double(clk_host[2 * b + 1]);
      if (t > 0) mhz->push_back(c / t * 1e3);
    }
  }
  return ms;
}

Result run_variant(const Device& dev, const Variant& v, const Options& o, void* out_buf,
                   unsigned long long* clk_buf) {
  Result r;
  r.v = v;
  const size_t optin = dev.prop.sharedMemPerBlockOptin;
  const size_t per_sm = dev.prop.sharedMemPerMultiprocessor;
  const size_t reserved = dev.prop.reservedSharedMemPerBlock;
  // Shared memory one CTA may take so that `cps` CTAs fit on an SM (1 KB of it is alignment slack).
  const size_t budget = std::min(optin, per_sm / v.cps - reserved);
  const int stages = static_cast<int>(std::min<size_t>(4, (budget - 1024) / v.stage_bytes));
  if (stages < 1) {
    r.skip_reason = "one stage does not fit in shared memory";
    return r;
  }
  const size_t smem = size_t(stages) * v.stage_bytes + 1024;
  WGC_CUDA_CHECK(cudaFuncSetAttribute(v.func, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  cudaFuncAttributes fa{};
  WGC_CUDA_CHECK(cudaFuncGetAttributes(&fa, v.func));
  r.regs = fa.numRegs;
  r.spill_bytes = int(fa.localSizeBytes);
  int occ = 0;
  WGC_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, v.func, v.wg * 128, smem));
  r.occupancy = occ;
  r.stages = stages;
  if (occ < v.cps) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "only %d CTA(s) per SM fit (%d registers, %zu B shared memory)", occ, fa.numRegs,
                  smem);
    r.skip_reason = buf;
    return r;
  }
  const int grid = dev.sms * v.cps;
  r.grid = grid;
  Params p{};
  p.stages = stages;
  p.write = 0;
  p.random_data = v.random_data ? 1 : 0;
  p.out = out_buf;
  p.clk = clk_buf;
  cudaEvent_t e0, e1;
  WGC_CUDA_CHECK(cudaEventCreate(&e0));
  WGC_CUDA_CHECK(cudaEventCreate(&e1));
  std::vector<unsigned long long> clk_host(2 * size_t(grid));

  // Calibrate: a short run, then scale the pass count to the target time.
  p.iters = 64;
  launch_once(v, p, grid, smem, e0, e1, clk_host, nullptr);  // warm-up (module load, clocks)
  double ms = launch_once(v, p, grid, smem, e0, e1, clk_host, nullptr);
  p.iters = std::max(64, static_cast<int>(p.iters * o.target_ms / std::max(ms, 1e-3)));
  ms = launch_once(v, p, grid, smem, e0, e1, clk_host, nullptr);  // warm-up at full length
  p.iters = std::max(64, static_cast<int>(p.iters * o.target_ms / std::max(ms, 1e-3)));
  r.iters = p.iters;

  std::vector<double> mhz_runs;
  std::vector<double> mhz;
  for (int rep = 0; rep < o.reps; ++rep) {
    const double t = launch_once(v, p, grid, smem, e0, e1, clk_host, &mhz);
    r.ms_all.push_back(t);
    double s = 0;
    for (double m : mhz) s += m;
    mhz_runs.push_back(mhz.empty() ? 0.0 : s / mhz.size());
  }
  WGC_CUDA_CHECK(cudaEventDestroy(e0));
  WGC_CUDA_CHECK(cudaEventDestroy(e1));

  const double insts = double(grid) * v.wg * double(p.iters) * stages * v.per_stage;
  const double flop_per_inst = 2.0 * 64 * v.n * v.logical_k;
  r.ms_median = median(r.ms_all);
  r.ms_min = *std::min_element(r.ms_all.begin(), r.ms_all.end());
  r.ms_max = *std::max_element(r.ms_all.begin(), r.ms_all.end());
  r.tflops_median = insts * flop_per_inst / (r.ms_median * 1e-3) / 1e12;
  r.tflops_best = insts * flop_per_inst / (r.ms_min * 1e-3) / 1e12;
  r.clock_mhz = median(mhz_runs);
  r.clock_mhz_min = *std::min_element(mhz_runs.begin(), mhz_runs.end());
  r.clock_mhz_max = *std::max_element(mhz_runs.begin(), mhz_runs.end());
  const double per_sm_flop_per_clk = 2.0 * dense_macs_per_clk(v.prec) * (v.sparse ? 2 : 1);
  r.peak_tflops_at_clock = dev.sms * r.clock_mhz * 1e6 * per_sm_flop_per_clk / 1e12;
  r.pct_of_peak = r.peak_tflops_at_clock > 0 ? 100.0 * r.tflops_median / r.peak_tflops_at_clock : 0;
  r.ran = true;
  return r;
}

std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      o += buf;
    } else {
      o += c;
    }
  }
  return o;
}

bool write_json(const std::string& path, const Device& dev, const std::string& command, const Options& o,
                const std::vector<Result>& rs) {
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (!f) return false;
  std::fprintf(f, "{\n  \"bench\": \"wgmma_ceiling\",\n  \"command\": \"%s\",\n", json_escape(command).c_str());
  std::fprintf(f, "  \"gpu\": \"%s\",\n  \"sm_count\": %d,\n  \"cc\": \"%d.%d\",\n", json_escape(dev.prop.name).c_str(),
               dev.sms, dev.prop.major, dev.prop.minor);
  std::fprintf(f, "  \"clock_rate_attr_mhz\": %.1f,\n  \"driver_version\": %d,\n  \"runtime_version\": %d,\n",
               dev.clock_khz_attr / 1e3, dev.driver, dev.runtime);
  std::fprintf(f, "  \"target_ms\": %.1f,\n  \"reps\": %d,\n", o.target_ms, o.reps);
  std::fprintf(f,
               "  \"peak_model\": \"per-SM dense MAC/clk: e4m3 4096, i8 4096, bf16 2048; sparse = 2x logically; "
               "peak = SMs * measured clock * per-SM FLOP/clk\",\n");
  std::fprintf(f, "  \"variants\": [\n");
  for (size_t i = 0; i < rs.size(); ++i) {
    const Result& r = rs[i];
    const Variant& v = r.v;
    std::fprintf(f, "    {\"name\": \"%s\", \"prec\": \"%s\", \"sparse\": %s, \"instruction\": \"%s m64n%dk%d\", ",
                 v.name.c_str(), prec_name(v.prec), v.sparse ? "true" : "false",
                 v.sparse ? "wgmma.mma_async.sp" : "wgmma.mma_async", v.n, v.logical_k);
    std::fprintf(f, "\"operands\": \"%s\", \"a_source\": \"%s\", \"b_source\": \"smem\", \"swizzle\": \"%s\", ",
                 v.rs ? "RS" : "SS", v.rs ? "registers" : "smem", v.swz == kSwz128 ? "128B" : "none");
    std::fprintf(f, "\"data\": \"%s\", \"ctas_per_sm\": %d, \"warpgroups_per_cta\": %d, ",
                 v.random_data ? "random" : "zeros", v.cps, v.wg);
    if (!r.ran) {
      std::fprintf(f, "\"ran\": false, \"skip_reason\": \"%s\"}%s\n", json_escape(r.skip_reason).c_str(),
                   i + 1 < rs.size() ? "," : "");
      continue;
    }
    std::fprintf(f, "\"ran\": true, \"stages\": %d, \"grid\": %d, \"occupancy_ctas_per_sm\": %d, ", r.stages, r.grid,
                 r.occupancy);
    std::fprintf(f, "\"registers\": %d, \"spill_bytes\": %d, \"iters\": %d, \"instructions_per_stage\": %d, ", r.regs,
                 r.spill_bytes, r.iters, v.per_stage);
    std::fprintf(f, "\"ms_median\": %.4f, \"ms_min\": %.4f, \"ms_max\": %.4f, \"ms_all\": [", r.ms_median, r.ms_min,
                 r.ms_max);
    for (size_t j = 0; j < r.ms_all.size(); ++j) std::fprintf(f, "%s%.4f", j ? ", " : "", r.ms_all[j]);
    std::fprintf(f, "], \"tflops_median\": %.1f, \"tflops_best\": %.1f, ", r.tflops_median, r.tflops_best);
    std::fprintf(f, "\"clock_mhz\": %.1f, \"clock_mhz_min\": %.1f, \"clock_mhz_max\": %.1f, ", r.clock_mhz,
                 r.clock_mhz_min, r.clock_mhz_max);
    std::fprintf(f, "\"peak_tflops_at_clock\": %.1f, \"pct_of_peak\": %.2f}%s\n", r.peak_tflops_at_clock,
                 r.pct_of_peak, i + 1 < rs.size() ? "," : "");
  }
  std::fprintf(f, "  ]\n}\n");
  const bool ok = std::fflush(f) == 0 && !std::ferror(f);
  if (std::fclose(f) != 0 || !ok) {
    std::remove(tmp.c_str());
    return false;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse_args(argc, argv);
  std::string command;
  for (int i = 0; i < argc; ++i) command += (i ? " " : "") + std::string(argv[i]);

  std::vector<Variant> vs = all_variants();
  if (!o.only.empty()) {
    std::vector<Variant> keep;
    for (const Variant& v : vs)
      for (const std::string& s : o.only)
        if (v.name.find(s) != std::string::npos) {
          keep.push_back(v);
          break;
        }
    if (keep.empty()) usage_error("--only matched no variant (see --list)");
    vs = keep;
  }
  if (o.list) {
    for (const Variant& v : vs) std::printf("%s\n", v.name.c_str());
    return 0;
  }
  // Fail on an unwritable --out before spending GPU time.
  if (!o.out.empty()) {
    const std::string probe = o.out + ".tmp";
    FILE* f = std::fopen(probe.c_str(), "w");
    if (!f) {
      std::fprintf(stderr, "wgmma_ceiling: cannot write '%s': %s\n", probe.c_str(), std::strerror(errno));
      return kExitWrite;
    }
    std::fclose(f);
    std::remove(probe.c_str());
  }

  Device dev;
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::fprintf(stderr, "wgmma_ceiling: no CUDA device\n");
    return kExitNoGpu;
  }
  WGC_CUDA_CHECK(cudaGetDeviceProperties(&dev.prop, dev.id));
  if (dev.prop.major != 9 || dev.prop.minor != 0) {
    std::fprintf(stderr, "wgmma_ceiling: needs an sm_90 GPU (H100/H200), found %s (sm_%d%d)\n", dev.prop.name,
                 dev.prop.major, dev.prop.minor);
    return kExitNoGpu;
  }
  dev.sms = dev.prop.multiProcessorCount;
  WGC_CUDA_CHECK(cudaDeviceGetAttribute(&dev.clock_khz_attr, cudaDevAttrClockRate, dev.id));
  WGC_CUDA_CHECK(cudaDriverGetVersion(&dev.driver));
  WGC_CUDA_CHECK(cudaRuntimeGetVersion(&dev.runtime));
  std::printf("wgmma_ceiling: %s, %d SMs, max clock %.0f MHz (attribute), driver %d, runtime %d\n", dev.prop.name,
              dev.sms, dev.clock_khz_attr / 1e3, dev.driver, dev.runtime);
  std::printf("command: %s\n", command.c_str());

  // Output buffer for the (never taken) accumulator store: the largest grid x threads x words.
  const size_t out_bytes = size_t(dev.sms) * 2 * 384 * 128 * 4;
  void* out_buf = nullptr;
  unsigned long long* clk_buf = nullptr;
  WGC_CUDA_CHECK(cudaMalloc(&out_buf, out_bytes));
  WGC_CUDA_CHECK(cudaMalloc(&clk_buf, size_t(dev.sms) * 2 * 2 * sizeof(unsigned long long)));

  std::printf("%-40s %5s %3s %6s %9s %9s %7s %7s %5s\n", "variant", "stage", "reg", "ms", "TFLOP/s", "peak@clk", "%peak",
              "MHz", "spill");
  std::vector<Result> rs;
  for (const Variant& v : vs) {
    Result r = run_variant(dev, v, o, out_buf, clk_buf);
    if (r.ran) {
      std::printf("%-40s %5d %3d %6.2f %9.1f %9.1f %6.1f%% %7.0f %5d\n", v.name.c_str(), r.stages, r.regs, r.ms_median,
                  r.tflops_median, r.peak_tflops_at_clock, r.pct_of_peak, r.clock_mhz, r.spill_bytes);
    } else {
      std::printf("%-40s skipped: %s\n", v.name.c_str(), r.skip_reason.c_str());
    }
    std::fflush(stdout);
    rs.push_back(r);
  }

  // Summary: best dense vs best sparse ceiling per precision (random data, any configuration).
  std::printf("\nbest ceilings (random data; logical TFLOP/s, median of %d):\n", o.reps);
  for (int p : {kE4M3, kBF16, kI8}) {
    const Result* best[2][2] = {{nullptr, nullptr}, {nullptr, nullptr}};  // [sparse][rs]
    for (const Result& r : rs) {
      if (!r.ran || r.v.prec != p || !r.v.random_data) continue;
      const Result*& b = best[r.v.sparse][r.v.rs];
      if (!b || r.tflops_median > b->tflops_median) b = &r;
    }
    for (int sp = 0; sp < 2; ++sp)
      for (int rsrc = 0; rsrc < 2; ++rsrc)
        if (best[sp][rsrc])
          std::printf("  %-5s %-6s %s: %8.1f TFLOP/s (%5.1f%% of peak) %s\n", prec_name(p), sp ? "sparse" : "dense",
                      rsrc ? "RS" : "SS", best[sp][rsrc]->tflops_median, best[sp][rsrc]->pct_of_peak,
                      best[sp][rsrc]->v.name.c_str());
    const Result* bd = nullptr;
    const Result* bs = nullptr;
    for (int rsrc = 0; rsrc < 2; ++rsrc) {
      if (best[0][rsrc] && (!bd || best[0][rsrc]->tflops_median > bd->tflops_median)) bd = best[0][rsrc];
      if (best[1][rsrc] && (!bs || best[1][rsrc]->tflops_median > bs->tflops_median)) bs = best[1][rsrc];
    }
    if (bd && bs)
      std::printf("  %-5s best sparse / best dense = %.3f\n", prec_name(p), bs->tflops_median / bd->tflops_median);
  }

  WGC_CUDA_CHECK(cudaFree(out_buf));
  WGC_CUDA_CHECK(cudaFree(clk_buf));
  if (!o.out.empty()) {
    if (!write_json(o.out, dev, command, o, rs)) {
      std::fprintf(stderr, "wgmma_ceiling: cannot write '%s'\n", o.out.c_str());
      return kExitWrite;
    }
    std::printf("wrote %s\n", o.out.c_str());
  }
  return 0;
}
