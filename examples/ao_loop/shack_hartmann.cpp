// SPDX-License-Identifier: MIT
/// @file shack_hartmann.cpp
/// @brief The synthetic Shack-Hartmann sensor: spot motion, frame rendering and centroiding.
///
/// Nothing here knows about processes or transports; the camera renders with it, the
/// controller centroids with it and the recorder checks the controller's slopes with it.
#include "ao_loop.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

namespace ao_loop {
namespace {

constexpr double kCentre = (kSubapPixels - 1) / 2.0;  // 7.5: between the two middle pixels
constexpr double kAmplitudePx = 2.5;                  // spot excursion from the centre
constexpr std::uint64_t kPeriodXFrames = 23;          // fast: frame n-1 and n differ by up to 0.68 px
constexpr std::uint64_t kPeriodYFrames = 37;
constexpr double kSpotSigmaPx = 1.5;
constexpr double kSpotPeak = 1000;    // counts
constexpr int kBackground = 100;      // counts
constexpr int kThreshold = 30;        // counts above background, ~6x the read noise

/// Extra noise samples beyond one frame: each frame reads the pool at its own offset.
constexpr std::size_t kNoiseShift = 4099;

/// A pool of read-noise samples (~4.6 counts rms), drawn once: rendering a frame then costs a
/// table look-up per pixel instead of a random draw.
const std::vector<std::int8_t>& noise_pool() {
  static const std::vector<std::int8_t> pool = [] {
    std::vector<std::int8_t> samples(std::size_t{kFrameSide} * kFrameSide + kNoiseShift);
    std::uint64_t state = 0x9E3779B97F4A7C15ULL;
    for (std::int8_t& sample : samples) {
      // xorshift64*, then the sum of four uniform bytes: close enough to Gaussian.
      state ^= state >> 12;
      state ^= state << 25;
      state ^= state >> 27;
      const std::uint64_t r = state * 0x2545F4914F6CDD1DULL;
      const auto sum = static_cast<int>((r & 0xFF) + ((r >> 8) & 0xFF) + ((r >> 16) & 0xFF) + ((r >> 24) & 0xFF));
      sample = static_cast<std::int8_t>((sum - 510) / 32);
    }
    return samples;
  }();
  return pool;
}

}  // namespace

shmlink::StreamSpec camera_spec() {
  shmlink::StreamSpec spec;
  spec.shape = {kFrameSide, kFrameSide};
  spec.dtype = shmlink::Dtype::u16;
  return spec;
}

shmlink::StreamSpec slopes_spec() {
  shmlink::StreamSpec spec;
  spec.shape = {kSlopes};
  spec.dtype = shmlink::Dtype::f32;
  return spec;
}

Offset spot_offset(std::uint64_t frame_id, int subap) noexcept {
  constexpr double kTwoPi = 2 * std::numbers::pi;
  const int col = subap % kSubapsPerSide;
  const int row = subap / kSubapsPerSide;
  // Reduce the frame id modulo each period first so that large ids keep full precision.
  const double tx = static_cast<double>(frame_id % kPeriodXFrames) / kPeriodXFrames;
  const double ty = static_cast<double>(frame_id % kPeriodYFrames) / kPeriodYFrames;
  const double phase_x = 0.137 * col + 0.291 * row;
  const double phase_y = 0.213 * col + 0.071 * row;
  return {kAmplitudePx * std::sin(kTwoPi * (tx + phase_x)),
          kAmplitudePx * std::cos(kTwoPi * (ty + phase_y))};
}

void render_frame(std::uint64_t frame_id, std::span<std::uint16_t> pixels) noexcept {
  const std::int8_t* noise = noise_pool().data() + (frame_id * 2654435761ULL) % kNoiseShift;
  for (int subap = 0; subap < kSubaps; ++subap) {
    // A Gaussian is separable: 2 x 16 exponentials per subaperture instead of 256.
    const Offset offset = spot_offset(frame_id, subap);
    float gx[kSubapPixels];
    float gy[kSubapPixels];
    for (int k = 0; k < kSubapPixels; ++k) {
      const double ux = (k - kCentre - offset.x) / kSpotSigmaPx;
      const double uy = (k - kCentre - offset.y) / kSpotSigmaPx;
      gx[k] = static_cast<float>(std::exp(-0.5 * ux * ux));
      gy[k] = static_cast<float>(kSpotPeak * std::exp(-0.5 * uy * uy));
    }
    const int x0 = (subap % kSubapsPerSide) * kSubapPixels;
    const int y0 = (subap / kSubapsPerSide) * kSubapPixels;
    for (int y = 0; y < kSubapPixels; ++y) {
      const auto first = static_cast<std::size_t>((y0 + y) * kFrameSide + x0);
      for (int x = 0; x < kSubapPixels; ++x) {
        // Always >= 100 - 16 and <= 1100 + 16 counts: rounding by + 0.5 is exact, no clamping.
        const float value = static_cast<float>(kBackground + noise[first + static_cast<std::size_t>(x)]) + gy[y] * gx[x];
        pixels[first + static_cast<std::size_t>(x)] = static_cast<std::uint16_t>(value + 0.5f);
      }
    }
  }
}

void compute_slopes(std::span<const std::uint16_t> pixels, std::span<float> slopes) noexcept {
  for (int subap = 0; subap < kSubaps; ++subap) {
    const int x0 = (subap % kSubapsPerSide) * kSubapPixels;
    const int y0 = (subap / kSubapsPerSide) * kSubapPixels;
    // The centre of gravity from the marginal sums: per-column sums give x, per-row sums y.
    // (Summing weight * x per pixel instead is up to 10x slower: g++ -O3 vectorises it badly.)
    int columns[kSubapPixels] = {};
    int sum = 0;    // at most 256 pixels x 65535 counts x 15: fits in an int
    int sum_y = 0;
    for (int y = 0; y < kSubapPixels; ++y) {
      const std::uint16_t* line = &pixels[static_cast<std::size_t>((y0 + y) * kFrameSide + x0)];
      int row = 0;
      for (int x = 0; x < kSubapPixels; ++x) {
        // Pixels at or below background + threshold weigh nothing: noise does not bias the spot.
        const int weight = std::max(0, line[x] - (kBackground + kThreshold));
        columns[x] += weight;
        row += weight;
      }
      sum += row;
      sum_y += row * y;
    }
    int sum_x = 0;
    for (int x = 0; x < kSubapPixels; ++x) sum_x += columns[x] * x;
    // An empty subaperture (no pixel above threshold) reads as a zero slope.
    const bool lit = sum > 0;
    const double total = sum;
    slopes[static_cast<std::size_t>(subap)] = lit ? static_cast<float>(sum_x / total - kCentre) : 0.0f;
    slopes[static_cast<std::size_t>(kSubaps + subap)] = lit ? static_cast<float>(sum_y / total - kCentre) : 0.0f;
  }
}

double slope_error(std::uint64_t frame_id, std::span<const float> slopes) noexcept {
  // A NaN slope (a garbage frame) counts as an infinite error.
  const auto worse = [](double worst, double error) { return std::isnan(error) ? HUGE_VAL : std::max(worst, error); };
  double worst = 0;
  for (int subap = 0; subap < kSubaps; ++subap) {
    const Offset expected = spot_offset(frame_id, subap);
    worst = worse(worst, std::abs(slopes[static_cast<std::size_t>(subap)] - expected.x));
    worst = worse(worst, std::abs(slopes[static_cast<std::size_t>(kSubaps + subap)] - expected.y));
  }
  return worst;
}

}  // namespace ao_loop
