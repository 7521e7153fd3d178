// Shared by the tier-1 tests of whole SlideLinear layers (gpu_slide_linear, gpu_ternary): one
// forward into a poisoned Y with a guard after it.
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "slidesparse/slide_linear.hpp"

namespace slidesparse::gputest {

constexpr uint8_t kLayerPoison = 0xFF;  // 0xFFFF: NaN in bf16, never a result
constexpr uint16_t kLayerPoison16 = 0xFFFF;
constexpr int64_t kLayerGuardElems = 2048;

struct LayerRun {
  std::vector<uint16_t> y;  // [m, n]
  bool guard_ok = true;     // the guard after Y[m, n] is still poison
};

// Poisons Y[m, n] and kLayerGuardElems after it, runs forward(m rows) on `path`, downloads Y.
inline ::testing::AssertionResult run_layer(SlideLinear& layer, const void* x_dev, int64_t m, void* y_dev,
                                            size_t y_cap_elems, LinearPath path, cudaStream_t stream, LayerRun& out) {
  const size_t y_elems = size_t(m * layer.n());
  if (y_elems + size_t(kLayerGuardElems) > y_cap_elems) return ::testing::AssertionFailure() << "Y buffer too small";
  if (cudaMemsetAsync(y_dev, kLayerPoison, (y_elems + size_t(kLayerGuardElems)) * 2, stream) != cudaSuccess)
    return ::testing::AssertionFailure() << "poison failed";
  layer.forward(x_dev, m, y_dev, stream, path);
  const cudaError_t e = cudaStreamSynchronize(stream);
  if (e != cudaSuccess) return ::testing::AssertionFailure() << "after forward: " << cudaGetErrorString(e);
  std::vector<uint16_t> all(y_elems + size_t(kLayerGuardElems));
  if (cudaMemcpy(all.data(), y_dev, all.size() * 2, cudaMemcpyDeviceToHost) != cudaSuccess)
    return ::testing::AssertionFailure() << "download failed";
  out.guard_ok =
      std::all_of(all.begin() + int64_t(y_elems), all.end(), [](uint16_t v) { return v == kLayerPoison16; });
  all.resize(y_elems);
  out.y = std::move(all);
  return ::testing::AssertionSuccess();
}

}  // namespace slidesparse::gputest
