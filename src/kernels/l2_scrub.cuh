// slidesparse kernels: a read-only L2 scrub for timing (host launcher).
//
// l2_scrub reads `bytes` of `buf` (16-byte loads, grid-stride) and writes nothing unless the xor of
// everything it read equals `never` (pick a value the buffer cannot produce: a zero-filled buffer
// xors to 0), so the loads cannot be optimized away and the L2 is left holding clean lines of
// `buf` only. Compared with flushing by a memset (which leaves the L2 full of dirty lines that are
// written back to DRAM while the next, timed kernel reads its operands) the timed work that follows
// starts on an L2 with nothing to write back. Size `bytes` at >= 2x the L2 (cudaDevAttrL2CacheSize).
//
// `sink` receives one word when the impossible happens; it must point to device memory. `buf` must
// be 16-byte aligned; a tail of bytes % 16 is not read. Allocates nothing, never synchronizes.
//
// This header is plain C++ (no device code): include it from .cpp.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace slidesparse {

cudaError_t l2_scrub(const void* buf, size_t bytes, uint32_t never, uint32_t* sink, cudaStream_t stream);

// Bytes of L2 on the current device (0 if the query fails).
size_t l2_cache_bytes();

}  // namespace slidesparse
