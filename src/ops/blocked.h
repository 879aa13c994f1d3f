// Helpers of the operators on the channel-blocked layout (ops/blocked.cpp, ops/winograd.cpp):
// a tensor N, C, H, W stored as [N, C / 16, H * W, 16], sixteen channels contiguous per pixel.
#pragma once
#include "ops/nn_common.h"

namespace kiln::ops {

constexpr int64_t kChannelBlock = 16;
// Blocks holding `channels` channels (the last one padded when they do not fill it).
constexpr int64_t channel_blocks(int64_t channels) { return (channels + kChannelBlock - 1) / kChannelBlock; }

// Channels and spatial extents of a blocked input (attributes `channels` and `spatial`),
// checked against its shape.
struct Plane {
  int64_t channels, height, width;
};
Plane blocked_plane(const OpContext& ctx, const Tensor& x);

// Reader of (n, channel block, row, column, lane) of a blocked input in padded coordinates.
using BlockedRead = std::function<Expr(Expr n, Expr cb, Expr h, Expr w, Expr lane)>;
// The blocked input padded as the window needs: [N, C/16, Hp, Wp, 16] (`pad` in the padding,
// stored in `*keep`), or read in place through h * W + w when no window reaches outside it.
BlockedRead padded_blocked(const Tensor& x, const Plane& p, const Window& win, const Expr& pad,
                           const std::string& name, Tensor* keep);

// A plain N, C, H, W input as a padded blocked copy [N, ceil(C/16), Hp, Wp, 16] (0 in the
// padding and in the lanes past C, stored in `*keep`), read as padded_blocked's reader is.
BlockedRead padded_blocked_from_plain(const Tensor& x, const Plane& p, const Window& win, const std::string& name,
                                      Tensor* keep);

// Element (n, c, h, w) of a blocked tensor whose rows are `width` pixels wide.
Expr blocked_element(const Tensor& x, const Expr& n, const Expr& c, const Expr& h, const Expr& w, int64_t width);

// Input coordinate (padded) of output position o at tap k along axis d.
Expr tap(const Window& win, int d, const Expr& o, const Expr& k);

// kiln.ConvWinograd (ops/winograd.cpp): a blocked 3x3 convolution by Winograd's F(2x2, 3x3).
Tensor conv_winograd(OpContext& ctx);

}  // namespace kiln::ops
