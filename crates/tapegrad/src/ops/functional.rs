//! More neural-network functions (PyTorch's `torch.nn.functional`): `conv1d`,
//! `conv_transpose2d`, `im2col` / `col2im` (`F.unfold` / `F.fold`), `max_pool1d`,
//! `avg_pool1d`, `group_norm`, `normalize`, `cosine_similarity` and `interpolate`.
//!
//! The convolution family reuses the recorded ops of `conv2d` (`ops/nn.rs`): a
//! transposed convolution *is* the input gradient of a convolution, and im2col is a
//! grouped convolution with one-hot filters (col2im its transpose), so every one of them
//! differentiates to any order through those rules. The 1-D ops run their 2-D
//! counterparts on `[N, C, 1, L]`. `interpolate` resamples one axis at a time with a
//! recorded linear map (each output reads one or two input positions with fixed weights)
//! whose rule is its transpose, and the transpose's rule the map again.

use std::sync::Arc;

use rand::Rng;

use super::check_same_dtype;
use super::table::{distinct_tensor, random_tensor, Domain, Inputs, OpSpec};
use crate::autograd::node::Op;
use crate::dtype::DType;
use crate::kernels::conv::{out_size, ConvGeom};
use crate::kernels::layout::{resample, resample_transpose, Taps};
use crate::storage::{dispatch, Data};
use crate::tensor::Tensor;

/// How [`Tensor::interpolate`] computes an output position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterpolateMode {
    /// The nearest input position at or before the output's (PyTorch's `"nearest"`),
    /// for `[N, C, L]`, `[N, C, H, W]` and `[N, C, D, H, W]` inputs.
    Nearest,
    /// Linear interpolation along `L` of an `[N, C, L]` input (`"linear"`).
    Linear,
    /// Bilinear interpolation over `H, W` of an `[N, C, H, W]` input (`"bilinear"`).
    Bilinear,
}

/// The output size of a resizing ([`Tensor::interpolate`], `tapegrad_nn::Upsample`).
#[derive(Clone, Debug, PartialEq)]
pub enum ResizeTarget {
    /// The output's spatial sizes (one per spatial axis, or one for all).
    Size(Vec<usize>),
    /// Factors of the input's spatial sizes (one per spatial axis, or one for all); the
    /// output size is `floor(input * factor)`.
    ScaleFactor(Vec<f64>),
}

/// A linear resampling of one axis: output position `j` is `sum w * x[i]` over `taps[j]`.
struct Resampling {
    axis: usize,
    taps: Vec<Taps>,
    input: usize,
}

/// The source of output position `dst` in nearest mode, as PyTorch's `nearest_idx`
/// (its scale is computed in `f32`).
fn nearest_source(dst: usize, input: usize, output: usize, scale_factor: Option<f64>) -> usize {
    if output == input {
        dst
    } else if output == 2 * input {
        dst / 2
    } else {
        let scale = match scale_factor {
            Some(f) if f > 0.0 => (1.0 / f) as f32,
            _ => input as f32 / output as f32,
        };
        ((dst as f32 * scale).floor() as usize).min(input - 1)
    }
}

/// The two taps of output position `dst` in linear mode, as PyTorch's
/// `area_pixel_compute_source_index` and `compute_indices_weights_linear`.
fn linear_taps(
    dst: usize,
    input: usize,
    output: usize,
    scale_factor: Option<f64>,
    align_corners: bool,
) -> Taps {
    let src = if align_corners {
        if output > 1 {
            dst as f64 * (input as f64 - 1.0) / (output as f64 - 1.0)
        } else {
            0.0
        }
    } else {
        let scale = match scale_factor {
            Some(f) if f > 0.0 => 1.0 / f,
            _ => input as f64 / output as f64,
        };
        (scale * (dst as f64 + 0.5) - 0.5).max(0.0)
    };
    let i0 = (src.floor() as usize).min(input - 1);
    let next = if i0 < input - 1 { 1 } else { 0 };
    let lambda = (src - i0 as f64).clamp(0.0, 1.0);
    vec![(i0, 1.0 - lambda), (i0 + next, lambda)]
}

impl Tensor {
    /// 1-D convolution (cross-correlation) of `[N, C, L]` (or unbatched `[C, L]`) with a
    /// `[O, C / groups, K]` weight and an optional `[O]` bias:
    ///
    /// `y[n, o, i] = b[o] + sum_{c, k} w[o, c, k] * x[n, g(o) + c, i * stride + k * dilation - padding]`
    ///
    /// with zero padding and `g(o)` the first input channel of `o`'s group; the output is
    /// `[N, O, Lo]` with `Lo = floor((L + 2 padding - dilation (K - 1) - 1) / stride) + 1`.
    /// Runs [`conv2d`](Self::conv2d) on `[N, C, 1, L]`, so it has its gradients (to any
    /// order). PyTorch: `F.conv1d(x, w, b, stride, padding, dilation, groups)`.
    ///
    /// # Panics
    /// If the input is not rank 2 or 3, the weight not rank 3, or as `conv2d`.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f64, 4.0, 9.0, 16.0], &[1, 1, 4]);
    /// let w = Tensor::from_vec(vec![-1.0f64, 1.0], &[1, 1, 2]);
    /// assert_eq!(x.conv1d(&w, None, 1, 0, 1, 1).to_vec::<f64>(), vec![3.0, 5.0, 7.0]);
    /// ```
    #[track_caller]
    pub fn conv1d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        stride: usize,
        padding: usize,
        dilation: usize,
        groups: usize,
    ) -> Tensor {
        if !(self.rank() == 2 || self.rank() == 3) || weight.rank() != 3 {
            panic!(
                "conv1d: the input must be [N, C, L] or [C, L] and the weight [O, C / groups, K], got {:?} and {:?}",
                self.shape(),
                weight.shape()
            );
        }
        let unbatched = self.rank() == 2;
        let x = if unbatched {
            self.unsqueeze(0)
        } else {
            self.clone()
        };
        let y = x
            .unsqueeze(2)
            .conv2d(
                &weight.unsqueeze(2),
                bias,
                [1, stride],
                [0, padding],
                [1, dilation],
                groups,
            )
            .squeeze(2);
        if unbatched {
            y.squeeze(0)
        } else {
            y
        }
    }

    /// 2-D transposed convolution ("deconvolution") of `x: [N, C_in, H, W]` with a weight
    /// `[C_in, C_out / groups, kH, kW]` and an optional `[C_out]` bias: the adjoint of
    /// [`conv2d`](Self::conv2d) with the same weight, stride, padding, dilation and groups,
    /// so each input pixel adds `x[n, c, i, j] * w[c, o, p, q]` at output position
    /// `(i sH + p dH - padH, j sW + q dW - padW)`. The output is `[N, C_out, Ho, Wo]` with
    /// `Ho = (H - 1) sH - 2 padH + dH (kH - 1) + output_padding_H + 1`. Computed as the
    /// input gradient of `conv2d` (col2im), whose rules make every order differentiable.
    /// Gradient: `x` gets `conv2d(g, w)`, `w` the correlation of `g` with `x`, the bias `g`
    /// summed over `N, H, W`. PyTorch: `F.conv_transpose2d(x, w, b, stride, padding,
    /// output_padding, groups, dilation)` (the same argument order).
    ///
    /// # Panics
    /// If the input or weight is not rank 4, dtypes differ, `groups` is 0 or does not
    /// divide `C_in`, the weight's first axis is not `C_in`, the bias is not `[C_out]`, a
    /// stride, dilation or kernel size is 0, an output padding is not smaller than its
    /// stride or its dilation (PyTorch's rule), or the output would be empty.
    ///
    /// ```
    /// use tapegrad::{DType, Tensor};
    /// // Stride 2 with a 2x2 kernel of ones copies each pixel into a 2x2 block.
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[1, 1, 2, 2]);
    /// let w = Tensor::ones(&[1, 1, 2, 2], DType::F32);
    /// let y = x.conv_transpose2d(&w, None, [2, 2], [0, 0], [0, 0], 1, [1, 1]);
    /// assert_eq!(y.shape(), &[1, 1, 4, 4]);
    /// assert_eq!(y.to_vec::<f32>()[..4], [1.0, 1.0, 2.0, 2.0]);
    /// ```
    #[allow(clippy::too_many_arguments)]
    #[track_caller]
    pub fn conv_transpose2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        stride: [usize; 2],
        padding: [usize; 2],
        output_padding: [usize; 2],
        groups: usize,
        dilation: [usize; 2],
    ) -> Tensor {
        check_same_dtype("conv_transpose2d", self, weight);
        let (&[n, c_in, h, w], &[wc, og, kh, kw]) = (self.shape(), weight.shape()) else {
            panic!(
                "conv_transpose2d: expects an input [N, C_in, H, W] and a weight [C_in, C_out / groups, kH, kW] (both rank 4), got {:?} and {:?}",
                self.shape(),
                weight.shape()
            )
        };
        if groups == 0 || !c_in.is_multiple_of(groups) {
            panic!("conv_transpose2d: groups = {groups} must be positive and divide the input channels ({c_in})");
        }
        if wc != c_in {
            panic!(
                "conv_transpose2d: the weight {:?} must have the input's {c_in} channels on its first axis (input {:?})",
                weight.shape(),
                self.shape()
            );
        }
        if kh == 0 || kw == 0 || stride.contains(&0) || dilation.contains(&0) {
            panic!("conv_transpose2d: kernel {kh}x{kw}, stride {stride:?} and dilation {dilation:?} must all be positive");
        }
        for a in 0..2 {
            if output_padding[a] >= stride[a].max(dilation[a]) {
                panic!(
                    "conv_transpose2d: output_padding {output_padding:?} must be smaller than either the stride {stride:?} or the dilation {dilation:?}"
                );
            }
        }
        let c_out = og * groups;
        let size = |i: usize, a: usize, k: usize| {
            ((i as isize - 1) * stride[a] as isize - 2 * padding[a] as isize
                + (dilation[a] * (k - 1)) as isize
                + output_padding[a] as isize
                + 1)
            .max(0) as usize
        };
        let (ho, wo) = (size(h, 0, kh), size(w, 1, kw));
        if h == 0 || w == 0 || ho == 0 || wo == 0 {
            panic!(
                "conv_transpose2d: the output of input {:?} with kernel {kh}x{kw}, stride {stride:?}, padding {padding:?}, dilation {dilation:?} and output_padding {output_padding:?} would be {ho}x{wo}",
                self.shape()
            );
        }
        if let Some(b) = bias {
            check_same_dtype("conv_transpose2d", self, b);
            if b.shape() != [c_out] {
                panic!(
                    "conv_transpose2d: the bias must have shape [{c_out}] (one per output channel), got {:?}",
                    b.shape()
                );
            }
        }
        // The convolution from the output back to the input, whose input gradient this is.
        let (Some(ch), Some(cw)) = (
            out_size(ho, kh, stride[0], padding[0], dilation[0]),
            out_size(wo, kw, stride[1], padding[1], dilation[1]),
        ) else {
            unreachable!("the output size makes the kernel fit")
        };
        let geom = ConvGeom {
            n,
            c: c_out,
            h: ho,
            w: wo,
            o: c_in,
            kh,
            kw,
            stride,
            padding,
            dilation,
            groups,
            ho: ch,
            wo: cw,
        };
        // An output padding of a stride or more (allowed when the dilation is larger)
        // adds rows that no input pixel reaches: feed zeros there.
        let x = self.pad(&[(0, cw - w), (0, ch - h)], 0.0);
        let y = x.conv2d_input_grad(weight, geom);
        match bias {
            Some(b) => y.add(&b.reshape_to(&[1, c_out, 1, 1])),
            None => y,
        }
    }

    /// The one-hot filters `[C * kH * kW, 1, kH, kW]` of im2col: output channel
    /// `c * kH * kW + p * kW + q` picks tap `(p, q)` of input channel `c`.
    fn im2col_filters(&self, c: usize, kernel: [usize; 2]) -> Tensor {
        let taps = kernel[0] * kernel[1];
        let mut v = vec![0.0f64; c * taps * taps];
        for o in 0..c * taps {
            v[o * taps + o % taps] = 1.0;
        }
        Tensor::from_vec(v, &[c * taps, 1, kernel[0], kernel[1]]).to_dtype(self.dtype())
    }

    /// Extracts sliding blocks (im2col), PyTorch's `F.unfold(x, kernel_size, dilation,
    /// padding, stride)` (this name, because `Tensor.unfold` is another op in PyTorch):
    /// `[N, C, H, W]` becomes `[N, C * kH * kW, L]`, where column `l` (output pixel `l` of
    /// a convolution with this geometry, row-major) holds each channel's window, channel
    /// major then `kH`, `kW`, zero padded. An unbatched `[C, H, W]` gives `[C * kH * kW,
    /// L]`. Gradient: [`col2im`](Self::col2im) of `g` (the windows added back). Computed
    /// as a grouped convolution with one-hot filters.
    ///
    /// # Panics
    /// If the input is not rank 3 or 4, a kernel size, stride or dilation is 0, or the
    /// window does not fit in the padded input.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::arange(0.0, 6.0, 1.0, tapegrad::DType::F32).reshape(&[1, 1, 2, 3]);
    /// let cols = x.im2col([2, 2], [1, 1], [0, 0], [1, 1]);
    /// assert_eq!(cols.shape(), &[1, 4, 2]);
    /// // Column 0 is the window at (0, 0): x[0, 0], x[0, 1], x[1, 0], x[1, 1].
    /// assert_eq!(cols.to_vec::<f32>(), vec![0.0, 1.0, 1.0, 2.0, 3.0, 4.0, 4.0, 5.0]);
    /// ```
    #[track_caller]
    pub fn im2col(
        &self,
        kernel: [usize; 2],
        dilation: [usize; 2],
        padding: [usize; 2],
        stride: [usize; 2],
    ) -> Tensor {
        if !(self.rank() == 3 || self.rank() == 4) {
            panic!(
                "im2col: the input must be [N, C, H, W] or [C, H, W], got {:?}",
                self.shape()
            );
        }
        if self.rank() == 3 {
            return self
                .unsqueeze(0)
                .im2col(kernel, dilation, padding, stride)
                .squeeze(0);
        }
        let [n, c, h, w] = [
            self.shape()[0],
            self.shape()[1],
            self.shape()[2],
            self.shape()[3],
        ];
        let geom = fold_geom("im2col", [n, c, h, w], kernel, dilation, padding, stride);
        let filters = self.im2col_filters(c, kernel);
        self.conv2d_raw(&filters, None, geom).reshape_to(&[
            n,
            c * kernel[0] * kernel[1],
            geom.ho * geom.wo,
        ])
    }

    /// Adds sliding blocks back into an image (col2im), PyTorch's `F.fold(x,
    /// output_size, kernel_size, dilation, padding, stride)`: the transpose of
    /// [`im2col`](Self::im2col). `[N, C * kH * kW, L]` becomes `[N, C, H, W]` with
    /// `output_size = [H, W]`, overlapping values summed; `L` must be the number of
    /// windows of that geometry. An unbatched `[C * kH * kW, L]` gives `[C, H, W]`.
    /// Gradient: `im2col` of `g`.
    ///
    /// # Panics
    /// If the input is not rank 2 or 3, its channels are not a multiple of `kH * kW`,
    /// `L` is not the number of windows, or the geometry is invalid as for `im2col`.
    ///
    /// ```
    /// use tapegrad::{DType, Tensor};
    /// // Folding ones counts how many windows cover each pixel.
    /// let cols = Tensor::ones(&[1, 4, 2], DType::F32);
    /// let y = cols.col2im([2, 3], [2, 2], [1, 1], [0, 0], [1, 1]);
    /// assert_eq!(y.to_vec::<f32>(), vec![1.0, 2.0, 1.0, 1.0, 2.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn col2im(
        &self,
        output_size: [usize; 2],
        kernel: [usize; 2],
        dilation: [usize; 2],
        padding: [usize; 2],
        stride: [usize; 2],
    ) -> Tensor {
        if !(self.rank() == 2 || self.rank() == 3) {
            panic!(
                "col2im: the input must be [N, C * kH * kW, L] or [C * kH * kW, L], got {:?}",
                self.shape()
            );
        }
        if self.rank() == 2 {
            return self
                .unsqueeze(0)
                .col2im(output_size, kernel, dilation, padding, stride)
                .squeeze(0);
        }
        let (n, ck, l) = (self.shape()[0], self.shape()[1], self.shape()[2]);
        let taps = kernel[0] * kernel[1];
        if taps == 0 || !ck.is_multiple_of(taps) {
            panic!(
                "col2im: the input's {ck} channels must be a multiple of the kernel's {kernel:?} {taps} positions (shape {:?})",
                self.shape()
            );
        }
        let c = ck / taps;
        let geom = fold_geom(
            "col2im",
            [n, c, output_size[0], output_size[1]],
            kernel,
            dilation,
            padding,
            stride,
        );
        if l != geom.ho * geom.wo {
            panic!(
                "col2im: the input has {l} blocks, but output size {output_size:?} with kernel {kernel:?}, dilation {dilation:?}, padding {padding:?} and stride {stride:?} has {} ({}x{})",
                geom.ho * geom.wo,
                geom.ho,
                geom.wo
            );
        }
        let filters = self.im2col_filters(c, kernel);
        self.reshape_to(&[n, ck, geom.ho, geom.wo])
            .conv2d_input_grad(&filters, geom)
    }

    /// Max pooling over windows of `kernel` along the last axis of `[N, C, L]` (or
    /// `[C, L]`), moved by `stride`, with implicit `-inf` padding and dilation. Gradient:
    /// `g` to each window's first maximal position. PyTorch: `F.max_pool1d(x, kernel,
    /// stride, padding, dilation)` (`ceil_mode=False`; PyTorch's default stride is the
    /// kernel size).
    ///
    /// # Panics
    /// If the input is not rank 2 or 3, or as [`max_pool2d`](Self::max_pool2d).
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 5.0, 2.0, 0.0, 3.0], &[1, 1, 5]);
    /// assert_eq!(x.max_pool1d(2, 2, 0, 1).to_vec::<f32>(), vec![5.0, 2.0]);
    /// ```
    #[track_caller]
    pub fn max_pool1d(
        &self,
        kernel: usize,
        stride: usize,
        padding: usize,
        dilation: usize,
    ) -> Tensor {
        let x = planes_1d("max_pool1d", self);
        let y = x
            .max_pool2d([1, kernel], [1, stride], [0, padding], [1, dilation])
            .squeeze(2);
        if self.rank() == 2 {
            y.squeeze(0)
        } else {
            y
        }
    }

    /// Average pooling over windows of `kernel` along the last axis of `[N, C, L]` (or
    /// `[C, L]`), moved by `stride`, with zero padding, divided by `kernel` with
    /// `count_include_pad` (PyTorch's default) or by the in-bounds count without.
    /// Gradient: each `g` spread evenly over its window. PyTorch: `F.avg_pool1d(x, kernel,
    /// stride, padding, ceil_mode=False, count_include_pad)`.
    ///
    /// # Panics
    /// If the input is not rank 2 or 3, or as [`avg_pool2d`](Self::avg_pool2d).
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[1, 1, 4]);
    /// assert_eq!(x.avg_pool1d(2, 2, 0, true).to_vec::<f32>(), vec![1.5, 3.5]);
    /// assert_eq!(x.avg_pool1d(2, 2, 1, false).to_vec::<f32>(), vec![1.0, 2.5, 4.0]);
    /// ```
    #[track_caller]
    pub fn avg_pool1d(
        &self,
        kernel: usize,
        stride: usize,
        padding: usize,
        count_include_pad: bool,
    ) -> Tensor {
        let x = planes_1d("avg_pool1d", self);
        let y = x
            .avg_pool2d([1, kernel], [1, stride], [0, padding], count_include_pad)
            .squeeze(2);
        if self.rank() == 2 {
            y.squeeze(0)
        } else {
            y
        }
    }

    /// Group normalisation: the channels of `x: [N, C, *]` are split into `num_groups`
    /// groups; each sample's group is normalised by its own (biased) mean and variance
    /// over the group's channels and all spatial positions, then channel `c` is scaled by
    /// `weight[c]` and shifted by `bias[c]` (if given):
    /// `y = (x - mean) / sqrt(var + eps) * weight + bias`. Composed of reductions and
    /// arithmetic, so every order differentiates. PyTorch: `F.group_norm(x, num_groups,
    /// weight, bias, eps)`.
    ///
    /// # Panics
    /// If the input has rank below 2, `num_groups` is 0 or does not divide `C`, or
    /// `weight` / `bias` are not `[C]` of the input's dtype.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// // One sample, 4 channels in 2 groups: each group of two is normalised on its own.
    /// let x = Tensor::from_vec(vec![1.0f64, 3.0, 10.0, 20.0], &[1, 4]);
    /// assert_eq!(x.group_norm(2, None, None, 0.0).to_vec::<f64>(), vec![-1.0, 1.0, -1.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn group_norm(
        &self,
        num_groups: usize,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Tensor {
        let shape = self.shape();
        if shape.len() < 2 || num_groups == 0 || !shape[1].is_multiple_of(num_groups) {
            panic!(
                "group_norm: the input must be [N, C, *] with C divisible by num_groups = {num_groups}, got {shape:?}"
            );
        }
        let channels = shape[1];
        for (name, t) in [("weight", weight), ("bias", bias)] {
            if let Some(t) = t {
                if t.shape() != [channels] || t.dtype() != self.dtype() {
                    panic!(
                        "group_norm: {name} must be [{channels}] {}, got {:?} {}",
                        self.dtype(),
                        t.shape(),
                        t.dtype()
                    );
                }
            }
        }
        let grouped = self.reshape(&[shape[0] as isize, num_groups as isize, -1]);
        let mean = grouped.mean_dim(&[-1], true);
        let centred = grouped.sub(&mean);
        let var = centred.square().mean_dim(&[-1], true);
        let mut y = centred.mul(&var.add_scalar(eps).rsqrt()).reshape_to(shape);
        // [C] -> [C, 1, ..., 1] so it broadcasts over the spatial axes.
        let per_channel = |t: &Tensor| {
            let mut s = vec![channels];
            s.resize(shape.len() - 1, 1);
            t.reshape_to(&s)
        };
        if let Some(w) = weight {
            y = y.mul(&per_channel(w));
        }
        if let Some(b) = bias {
            y = y.add(&per_channel(b));
        }
        y
    }

    /// `max(||x||_p, eps)` along `dim`, kept as a size-1 axis. The clamp is applied to
    /// `sum |x|^p` (at `eps^p`), which gives the same value and keeps the root's
    /// derivative away from zero, so a zero vector has a zero (not NaN) gradient.
    #[track_caller]
    fn clamped_norm(&self, op: &str, p: f64, dim: isize, eps: f64) -> Tensor {
        crate::shape::norm_axis(op, dim, self.rank());
        if p == f64::INFINITY {
            return self.abs().max_dim(dim, true).0.clamp_min(eps);
        }
        if !(p > 0.0 && p.is_finite()) {
            panic!("{op}: the norm's order p = {p} must be positive (or +inf)");
        }
        if p == 2.0 {
            return self
                .square()
                .sum_dim(&[dim], true)
                .clamp_min(eps * eps)
                .sqrt();
        }
        let s = if p == 1.0 {
            self.abs()
        } else {
            self.abs().powf(p)
        };
        let s = s.sum_dim(&[dim], true).clamp_min(eps.powf(p));
        if p == 1.0 {
            s
        } else {
            s.powf(1.0 / p)
        }
    }

    /// `x / max(||x||_p, eps)` along `dim`: each slice scaled to unit `p`-norm (`p > 0`
    /// or `f64::INFINITY`). Slices with a norm below `eps` are divided by `eps`, and the
    /// norm then passes no gradient (a zero slice has gradient `g / eps`, not NaN).
    /// PyTorch: `F.normalize(x, p, dim, eps)` (defaults `p = 2`, `dim = 1`, `eps = 1e-12`).
    ///
    /// # Panics
    /// If `dim` is out of range or `p` is not positive.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::from_vec(vec![3.0f64, 4.0, 0.0, 0.0], &[2, 2]);
    /// assert_eq!(x.normalize(2.0, 1, 1e-12).to_vec::<f64>(), vec![0.6, 0.8, 0.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn normalize(&self, p: f64, dim: isize, eps: f64) -> Tensor {
        self.div(&self.clamped_norm("normalize", p, dim, eps))
    }

    /// The cosine of the angle between `self` and `other` along `dim` (both broadcast to
    /// a common shape first): `sum(x1 / max(||x1||, eps) * x2 / max(||x2||, eps))`, the
    /// axis `dim` removed. PyTorch: `F.cosine_similarity(x1, x2, dim, eps)` (defaults
    /// `dim = 1`, `eps = 1e-8`); below `eps` PyTorch lets the norm's gradient through as if
    /// unclamped, tapegrad passes none (see `docs/pytorch.md`).
    ///
    /// # Panics
    /// If dtypes differ, the shapes do not broadcast, or `dim` is out of range.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let a = Tensor::from_vec(vec![1.0f64, 0.0, 1.0, 1.0], &[2, 2]);
    /// let b = Tensor::from_vec(vec![0.0f64, 2.0], &[1, 2]);
    /// let c = a.cosine_similarity(&b, 1, 1e-8).to_vec::<f64>();
    /// assert!(c[0].abs() < 1e-15 && (c[1] - 0.5f64.sqrt()).abs() < 1e-15);
    /// ```
    #[track_caller]
    pub fn cosine_similarity(&self, other: &Tensor, dim: isize, eps: f64) -> Tensor {
        let shape = super::check_binary("cosine_similarity", self, other);
        let (a, b) = (self.broadcast_to(&shape), other.broadcast_to(&shape));
        let an = a.div(&a.clamped_norm("cosine_similarity", 2.0, dim, eps));
        let bn = b.div(&b.clamped_norm("cosine_similarity", 2.0, dim, eps));
        an.mul(&bn).sum_dim(&[dim], false)
    }

    /// Resizes the spatial axes of `[N, C, *]`, PyTorch's `F.interpolate(x, size |
    /// scale_factor, mode, align_corners)`. `Nearest` reads input position
    /// `min(floor(i * scale), in - 1)` (`scale = 1 / factor`, or `in / out` for a fixed
    /// size, in `f32` as PyTorch); `Linear` (`[N, C, L]`) and `Bilinear` (`[N, C, H, W]`)
    /// interpolate between the two nearest positions, placing output `i` at input
    /// coordinate `i (in - 1) / (out - 1)` with `align_corners`, otherwise at
    /// `max((i + 0.5) scale - 0.5, 0)`. Gradient: each output gradient sent back to the
    /// positions it read, with the same weights (the linear map's transpose).
    ///
    /// # Panics
    /// If the rank does not suit the mode (3 to 5 for `Nearest`, 3 for `Linear`, 4 for
    /// `Bilinear`), an axis is empty, the target gives neither one value nor one per
    /// spatial axis, a factor is not positive and finite, an output size would be 0, or
    /// `align_corners` is set in `Nearest` mode.
    ///
    /// ```
    /// use tapegrad::{InterpolateMode, ResizeTarget, Tensor};
    /// let x = Tensor::from_vec(vec![0.0f64, 1.0], &[1, 1, 2]);
    /// let up = |mode, align| x.interpolate(&ResizeTarget::Size(vec![4]), mode, align).to_vec::<f64>();
    /// assert_eq!(up(InterpolateMode::Nearest, false), vec![0.0, 0.0, 1.0, 1.0]);
    /// assert_eq!(up(InterpolateMode::Linear, false), vec![0.0, 0.25, 0.75, 1.0]);
    /// let third = 1.0 / 3.0;
    /// let y = up(InterpolateMode::Linear, true);
    /// assert!((y[1] - third).abs() < 1e-15 && (y[2] - 2.0 * third).abs() < 1e-15);
    /// ```
    #[track_caller]
    pub fn interpolate(
        &self,
        target: &ResizeTarget,
        mode: InterpolateMode,
        align_corners: bool,
    ) -> Tensor {
        let rank = self.rank();
        let ranks_ok = match mode {
            InterpolateMode::Nearest => (3..=5).contains(&rank),
            InterpolateMode::Linear => rank == 3,
            InterpolateMode::Bilinear => rank == 4,
        };
        if !ranks_ok || self.shape().contains(&0) {
            panic!(
                "interpolate: {mode:?} mode needs a non-empty input of rank {}, got {:?}",
                match mode {
                    InterpolateMode::Nearest =>
                        "3 to 5 ([N, C, L], [N, C, H, W] or [N, C, D, H, W])",
                    InterpolateMode::Linear => "3 ([N, C, L])",
                    InterpolateMode::Bilinear => "4 ([N, C, H, W])",
                },
                self.shape()
            );
        }
        if align_corners && mode == InterpolateMode::Nearest {
            panic!("interpolate: align_corners can only be set with the Linear and Bilinear modes");
        }
        let spatial = rank - 2;
        let count = match target {
            ResizeTarget::Size(s) => s.len(),
            ResizeTarget::ScaleFactor(f) => f.len(),
        };
        if count != 1 && count != spatial {
            panic!(
                "interpolate: {target:?} must give one value or one per spatial axis ({spatial} for input {:?})",
                self.shape()
            );
        }
        let pick = |i: usize| if count == 1 { 0 } else { i };
        let mut y = self.clone();
        for axis in 0..spatial {
            let input = self.shape()[axis + 2];
            let (output, factor) = match target {
                ResizeTarget::Size(s) => (s[pick(axis)], None),
                ResizeTarget::ScaleFactor(f) => {
                    let f = f[pick(axis)];
                    if !(f > 0.0 && f.is_finite()) {
                        panic!(
                            "interpolate: the scale factor must be positive and finite, got {f}"
                        );
                    }
                    ((input as f64 * f).floor() as usize, Some(f))
                }
            };
            if output == 0 {
                panic!(
                    "interpolate: {target:?} gives an empty axis {} for input {:?}",
                    axis + 2,
                    self.shape()
                );
            }
            let taps: Vec<Taps> = (0..output)
                .map(|j| match mode {
                    InterpolateMode::Nearest => {
                        vec![(nearest_source(j, input, output, factor), 1.0)]
                    }
                    _ => linear_taps(j, input, output, factor, align_corners),
                })
                .collect();
            let identity = output == input
                && taps
                    .iter()
                    .enumerate()
                    .all(|(j, t)| t.iter().all(|&(i, w)| (i == j && w == 1.0) || w == 0.0));
            if identity {
                continue;
            }
            y = y.resample(Arc::new(Resampling {
                axis: axis + 2,
                taps,
                input,
            }));
        }
        y
    }

    /// The linear map `r` along its axis; its gradient is the transpose.
    #[track_caller]
    fn resample(&self, r: Arc<Resampling>) -> Tensor {
        let value = dispatch!(self.data(), |a| {
            Data::from(resample(&a.force().view(), r.axis, &r.taps))
        });
        Op::new("interpolate", &[self], value).rule(move |_, g| g.resample_transpose(r.clone()))
    }

    /// The transpose of `resample`: each output gradient added back to the positions
    /// its output read. Its gradient is the resampling again.
    #[track_caller]
    fn resample_transpose(&self, r: Arc<Resampling>) -> Tensor {
        let value = dispatch!(self.data(), |a| {
            Data::from(resample_transpose(
                &a.force().view(),
                r.axis,
                &r.taps,
                r.input,
            ))
        });
        Op::new("interpolate_backward", &[self], value).rule(move |_, g| g.resample(r.clone()))
    }
}

/// `[N, C, L]` or `[C, L]` as `[N, C, 1, L]` planes for the 2-D pools.
#[track_caller]
fn planes_1d(op: &str, x: &Tensor) -> Tensor {
    match x.rank() {
        2 => x.unsqueeze(0).unsqueeze(2),
        3 => x.unsqueeze(2),
        _ => panic!(
            "{op}: the input must be [N, C, L] or [C, L], got {:?}",
            x.shape()
        ),
    }
}

/// The geometry of im2col / col2im on an `[n, c, h, w]` image: a convolution with
/// groups `c` and `kH * kW` one-hot filters per group.
#[track_caller]
fn fold_geom(
    op: &str,
    [n, c, h, w]: [usize; 4],
    kernel: [usize; 2],
    dilation: [usize; 2],
    padding: [usize; 2],
    stride: [usize; 2],
) -> ConvGeom {
    if kernel.contains(&0) || stride.contains(&0) || dilation.contains(&0) || c == 0 {
        panic!("{op}: kernel {kernel:?}, stride {stride:?}, dilation {dilation:?} and the channel count {c} must all be positive");
    }
    let (Some(ho), Some(wo)) = (
        out_size(h, kernel[0], stride[0], padding[0], dilation[0]),
        out_size(w, kernel[1], stride[1], padding[1], dilation[1]),
    ) else {
        panic!("{op}: the window {kernel:?} (dilation {dilation:?}) does not fit in the image {h}x{w} with padding {padding:?}")
    };
    ConvGeom {
        n,
        c,
        h,
        w,
        o: c * kernel[0] * kernel[1],
        kh: kernel[0],
        kw: kernel[1],
        stride,
        padding,
        dilation,
        groups: c,
        ho,
        wo,
    }
}

// ---------------------------------------------------------------- op table rows

fn conv1d_inputs(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let groups = rng.gen_range(1..=2);
    let (cg, og, k) = (
        rng.gen_range(1..=2),
        rng.gen_range(1..=2),
        rng.gen_range(1..=3),
    );
    let (n, l) = (rng.gen_range(1..=2), rng.gen_range(k..=k + 4));
    vec![
        random_tensor(rng, &[n, cg * groups, l], Domain::Real, dtype),
        random_tensor(rng, &[og * groups, cg, k], Domain::Real, dtype),
        random_tensor(rng, &[og * groups], Domain::Real, dtype),
    ]
}

fn apply_conv1d(x: &[Tensor]) -> Tensor {
    let groups = x[0].shape()[1] / x[1].shape()[1];
    let l = x[0].shape()[2];
    x[0].conv1d(
        &x[1],
        Some(&x[2]),
        1 + l % 2,
        x[1].shape()[2] / 2,
        1,
        groups,
    )
}

fn conv_transpose_inputs(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let groups = rng.gen_range(1..=2);
    let (cg, og) = (rng.gen_range(1..=2), rng.gen_range(1..=2));
    let (kh, kw) = (rng.gen_range(1..=3), rng.gen_range(1..=3));
    let x = [
        rng.gen_range(1..=2),
        cg * groups,
        rng.gen_range(1..=3),
        rng.gen_range(1..=3),
    ];
    vec![
        random_tensor(rng, &x, Domain::Real, dtype),
        random_tensor(rng, &[cg * groups, og, kh, kw], Domain::Real, dtype),
        random_tensor(rng, &[og * groups], Domain::Real, dtype),
    ]
}

/// Stride, padding, output padding and dilation derived from the shapes, so random
/// shapes give varied configurations (padding at most what keeps the output non-empty).
fn apply_conv_transpose(x: &[Tensor]) -> Tensor {
    let (xs, ws) = (x[0].shape(), x[1].shape());
    let groups = x[2].shape()[0] / ws[1];
    let stride = [1 + xs[2] % 2, 1 + xs[3] % 2];
    let dilation = [1 + usize::from(ws[2] == 2), 1];
    let padding = [usize::from(ws[2] == 3), usize::from(ws[3] == 3)];
    let output_padding = [usize::from(stride[0] == 2), 0];
    x[0].conv_transpose2d(
        &x[1],
        Some(&x[2]),
        stride,
        padding,
        output_padding,
        groups,
        dilation,
    )
}

fn image(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let s = [
        rng.gen_range(1..=2),
        rng.gen_range(1..=2),
        rng.gen_range(2..=4),
        rng.gen_range(2..=4),
    ];
    vec![random_tensor(rng, &s, Domain::Real, dtype)]
}

fn columns(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let (n, c) = (rng.gen_range(1..=2), rng.gen_range(1..=2));
    // Output 3x4, kernel 2x2, stride 1, no padding: 2x3 = 6 blocks.
    vec![random_tensor(rng, &[n, c * 4, 6], Domain::Real, dtype)]
}

fn signal(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let s = [
        rng.gen_range(1..=2),
        rng.gen_range(1..=2),
        rng.gen_range(3..=6),
    ];
    vec![random_tensor(rng, &s, Domain::Real, dtype)]
}

/// A signal of distinct values at least 0.1 apart, so a max never ties or flips under a
/// finite-difference step.
fn signal_distinct(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let s = [
        rng.gen_range(1..=2),
        rng.gen_range(1..=2),
        rng.gen_range(3..=6),
    ];
    vec![distinct_tensor(rng, &s, dtype)]
}

fn group_norm_inputs(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let groups = rng.gen_range(1..=2);
    let c = groups * rng.gen_range(1..=2);
    // At least four values per group, so its variance is rarely near 0 (where f32 and
    // f64 part ways).
    let x = [rng.gen_range(1..=2), c, rng.gen_range(4..=6)];
    vec![
        random_tensor(rng, &x, Domain::Real, dtype),
        random_tensor(rng, &[c], Domain::Real, dtype),
        random_tensor(rng, &[c], Domain::Real, dtype),
    ]
}

fn normalize_input(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let s = [rng.gen_range(1..=3), rng.gen_range(2..=4)];
    vec![random_tensor(rng, &s, Domain::AwayFromZero, dtype)]
}

fn cosine_inputs(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let (n, d) = (rng.gen_range(1..=3), rng.gen_range(2..=4));
    let other = if rng.gen_bool(0.5) { [1, d] } else { [n, d] };
    vec![
        random_tensor(rng, &[n, d], Domain::AwayFromZero, dtype),
        random_tensor(rng, &other, Domain::AwayFromZero, dtype),
    ]
}

/// The rows of the op table for this family.
pub(crate) const ROWS: &[OpSpec] = &[
    OpSpec::new(
        "conv1d",
        Inputs::Custom(conv1d_inputs),
        apply_conv1d,
        "conv2d's gradients on [N, C, 1, L]",
    )
    .note("stride and padding vary with the generated shapes"),
    OpSpec::new(
        "conv_transpose2d",
        Inputs::Custom(conv_transpose_inputs),
        apply_conv_transpose,
        "x: conv2d(g, w); w: correlation of g with x; b: g summed over N, H, W",
    )
    .note("stride, padding, output_padding, dilation and groups vary with the generated shapes"),
    OpSpec::new(
        "im2col",
        Inputs::Custom(image),
        |x| x[0].im2col([2, 2], [1, 2], [1, 1], [2, 1]),
        "col2im(g)",
    ),
    OpSpec::new(
        "col2im",
        Inputs::Custom(columns),
        |x| x[0].col2im([3, 4], [2, 2], [1, 1], [0, 0], [1, 1]),
        "im2col(g)",
    ),
    OpSpec::new(
        "max_pool1d",
        Inputs::Custom(signal_distinct),
        |x| x[0].max_pool1d(3, 2, 1, 1),
        "g scattered to each window's arg-max",
    )
    .note("ties: the first maximal position in the window gets g"),
    OpSpec::new(
        "avg_pool1d",
        Inputs::Custom(signal),
        |x| x[0].avg_pool1d(3, 2, 1, false),
        "g/count spread over each window",
    ),
    OpSpec::new(
        "group_norm",
        Inputs::Custom(group_norm_inputs),
        |x| {
            let groups = if x[1].shape()[0] % 2 == 0 { 2 } else { 1 };
            x[0].group_norm(groups, Some(&x[1]), Some(&x[2]), 1e-3)
        },
        "through the group mean and variance",
    ),
    OpSpec::new(
        "normalize",
        Inputs::Custom(normalize_input),
        |x| x[0].normalize(2.0, 1, 1e-12),
        "(g - y * sum(g y)) / ||x||",
    )
    .note("below eps the norm is clamped and passes no gradient"),
    OpSpec::new(
        "normalize(p=3)",
        Inputs::Custom(normalize_input),
        |x| x[0].normalize(3.0, -1, 1e-12),
        "through sum(|x|^p)^(1/p)",
    ),
    OpSpec::new(
        "cosine_similarity",
        Inputs::Custom(cosine_inputs),
        |x| x[0].cosine_similarity(&x[1], 1, 1e-8),
        "x1: (x2n - cos * x1n) / ||x1||, and symmetrically",
    ),
    OpSpec::new(
        "interpolate",
        Inputs::Custom(image),
        |x| {
            x[0].interpolate(
                &ResizeTarget::Size(vec![5, 3]),
                InterpolateMode::Bilinear,
                false,
            )
        },
        "g sent back to the two (four) positions each output read, with the same weights",
    ),
    OpSpec::new(
        "interpolate(bilinear, align_corners)",
        Inputs::Custom(image),
        |x| {
            x[0].interpolate(
                &ResizeTarget::ScaleFactor(vec![1.5, 0.75]),
                InterpolateMode::Bilinear,
                true,
            )
        },
        "g sent back with the interpolation weights",
    ),
    OpSpec::new(
        "interpolate(linear)",
        Inputs::Custom(signal),
        |x| {
            x[0].interpolate(
                &ResizeTarget::ScaleFactor(vec![1.7]),
                InterpolateMode::Linear,
                false,
            )
        },
        "g sent back with the interpolation weights",
    ),
    OpSpec::new(
        "interpolate(nearest)",
        Inputs::Custom(image),
        |x| {
            x[0].interpolate(
                &ResizeTarget::Size(vec![3, 7]),
                InterpolateMode::Nearest,
                false,
            )
        },
        "g summed over the outputs that read each position",
    ),
];

#[cfg(test)]
mod tests {
    use super::{InterpolateMode, ResizeTarget};
    use crate::{DType, Tensor};

    /// Direct loops over the definition of a transposed convolution.
    #[allow(clippy::too_many_arguments)]
    fn conv_transpose_naive(
        x: &Tensor,
        w: &Tensor,
        s: [usize; 2],
        p: [usize; 2],
        op: [usize; 2],
        groups: usize,
        d: [usize; 2],
    ) -> (Vec<usize>, Vec<f64>) {
        let (xs, ws) = (x.shape().to_vec(), w.shape().to_vec());
        let (xv, wv) = (x.to_vec::<f64>(), w.to_vec::<f64>());
        let (n, c, h, wd, og, kh, kw) = (xs[0], xs[1], xs[2], xs[3], ws[1], ws[2], ws[3]);
        let ho = (h - 1) * s[0] + d[0] * (kh - 1) + op[0] + 1 - 2 * p[0];
        let wo = (wd - 1) * s[1] + d[1] * (kw - 1) + op[1] + 1 - 2 * p[1];
        let (cg, o) = (c / groups, og * groups);
        let mut out = vec![0.0; n * o * ho * wo];
        for b in 0..n {
            for ci in 0..c {
                let grp = ci / cg;
                for oc in 0..og {
                    for i in 0..h {
                        for j in 0..wd {
                            for pi in 0..kh {
                                for qj in 0..kw {
                                    let y = (i * s[0] + pi * d[0]) as isize - p[0] as isize;
                                    let xq = (j * s[1] + qj * d[1]) as isize - p[1] as isize;
                                    if y < 0 || xq < 0 || y >= ho as isize || xq >= wo as isize {
                                        continue;
                                    }
                                    let oo = grp * og + oc;
                                    out[((b * o + oo) * ho + y as usize) * wo + xq as usize] += xv
                                        [((b * c + ci) * h + i) * wd + j]
                                        * wv[((ci * og + oc) * kh + pi) * kw + qj];
                                }
                            }
                        }
                    }
                }
            }
        }
        (vec![n, o, ho, wo], out)
    }

    #[test]
    fn conv_transpose2d_matches_the_definition() {
        type Config = (
            [usize; 4],
            [usize; 4],
            [usize; 2],
            [usize; 2],
            [usize; 2],
            usize,
            [usize; 2],
        );
        let configs: [Config; 5] = [
            (
                [2, 3, 3, 4],
                [3, 2, 3, 3],
                [1, 1],
                [0, 0],
                [0, 0],
                1,
                [1, 1],
            ),
            (
                [1, 4, 3, 3],
                [4, 3, 3, 2],
                [2, 3],
                [1, 0],
                [1, 2],
                2,
                [1, 1],
            ),
            (
                [2, 2, 4, 3],
                [2, 1, 2, 3],
                [2, 1],
                [1, 1],
                [0, 0],
                2,
                [2, 1],
            ),
            // An output padding of the stride or more, allowed by a larger dilation.
            (
                [1, 1, 3, 3],
                [1, 2, 2, 2],
                [1, 1],
                [0, 0],
                [1, 2],
                1,
                [2, 3],
            ),
            (
                [1, 2, 1, 1],
                [2, 1, 3, 3],
                [1, 1],
                [1, 1],
                [0, 0],
                1,
                [1, 1],
            ),
        ];
        for (k, (xs, wsh, s, p, op, g, d)) in configs.into_iter().enumerate() {
            let x = Tensor::randn(&xs, DType::F64, k as u64);
            let w = Tensor::randn(&wsh, DType::F64, 50 + k as u64);
            let y = x.conv_transpose2d(&w, None, s, p, op, g, d);
            let (shape, want) = conv_transpose_naive(&x, &w, s, p, op, g, d);
            assert_eq!(y.shape(), &shape[..], "config {k}");
            for (a, b) in y.to_vec::<f64>().iter().zip(&want) {
                assert!((a - b).abs() < 1e-12, "config {k}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn conv_transpose2d_is_the_adjoint_of_conv2d() {
        // <conv2d(x, w), y> = <x, conv_transpose2d(y, w)> for the same geometry.
        let x = Tensor::randn(&[2, 4, 7, 6], DType::F64, 1);
        let w = Tensor::randn(&[6, 2, 3, 2], DType::F64, 2);
        let conv = x.conv2d(&w, None, [2, 1], [1, 1], [1, 2], 2);
        let y = Tensor::randn(conv.shape(), DType::F64, 3);
        let back = y.conv_transpose2d(&w, None, [2, 1], [1, 1], [0, 0], 2, [1, 2]);
        assert_eq!(back.shape(), x.shape());
        let (l, r) = (conv.mul(&y).sum().item(), x.mul(&back).sum().item());
        assert!((l - r).abs() < 1e-10, "{l} vs {r}");
    }

    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        let x = Tensor::randn(&[2, 3, 5, 4], DType::F64, 4);
        let cols = x.im2col([2, 3], [2, 1], [1, 1], [1, 2]);
        assert_eq!(cols.shape()[1], 3 * 6);
        let y = Tensor::randn(cols.shape(), DType::F64, 5);
        let back = y.col2im([5, 4], [2, 3], [2, 1], [1, 1], [1, 2]);
        let (l, r) = (cols.mul(&y).sum().item(), x.mul(&back).sum().item());
        assert!((l - r).abs() < 1e-10, "{l} vs {r}");
        // im2col then a matmul is conv2d.
        let w = Tensor::randn(&[5, 3, 2, 3], DType::F64, 6);
        let via_cols = w.reshape(&[5, -1]).matmul(&cols);
        let conv = x.conv2d(&w, None, [1, 2], [1, 1], [2, 1], 1);
        let diff = via_cols
            .reshape_to(conv.shape())
            .sub(&conv)
            .abs()
            .sum()
            .item();
        assert!(diff < 1e-10, "{diff}");
    }

    #[test]
    fn bilinear_known_values() {
        let x = Tensor::from_vec(vec![0.0f64, 1.0, 2.0, 3.0], &[1, 1, 2, 2]);
        let y = x.interpolate(
            &ResizeTarget::Size(vec![3, 3]),
            InterpolateMode::Bilinear,
            true,
        );
        assert_eq!(
            y.to_vec::<f64>(),
            vec![0.0, 0.5, 1.0, 1.0, 1.5, 2.0, 2.0, 2.5, 3.0]
        );
        // Without align_corners, 2 -> 4 samples at -0.25 (clamped to 0), 0.25, 0.75, 1.25.
        let y = x.interpolate(
            &ResizeTarget::ScaleFactor(vec![2.0]),
            InterpolateMode::Bilinear,
            false,
        );
        assert_eq!(y.to_vec::<f64>()[..4], [0.0, 0.25, 0.75, 1.0]);
        let xr = x.clone().requires_grad();
        let g = xr
            .interpolate(
                &ResizeTarget::ScaleFactor(vec![2.0]),
                InterpolateMode::Bilinear,
                false,
            )
            .sum()
            .backward();
        // Each input pixel's weights over the 16 outputs sum to 4.
        assert_eq!(g[&xr].to_vec::<f64>(), vec![4.0; 4]);
    }

    #[test]
    fn normalize_a_zero_vector_has_a_finite_gradient() {
        let x = Tensor::zeros(&[2, 3], DType::F64).requires_grad();
        let g = x.normalize(2.0, 1, 0.5).sum().backward();
        assert_eq!(g[&x].to_vec::<f64>(), vec![2.0; 6]);
        let y = Tensor::from_vec(vec![1.0f64, -2.0, 2.0], &[3]);
        assert_eq!(
            y.normalize(1.0, 0, 1e-12).to_vec::<f64>(),
            vec![0.2, -0.4, 0.4]
        );
        assert_eq!(
            y.normalize(f64::INFINITY, 0, 1e-12).to_vec::<f64>(),
            vec![0.5, -1.0, 1.0]
        );
    }

    #[test]
    fn conv1d_and_group_norm_known_values() {
        let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], &[1, 3]);
        let w = Tensor::from_vec(vec![1.0f64, 1.0], &[1, 1, 2]);
        // Unbatched, padding 1: [0+1, 1+2, 2+3, 3+0].
        assert_eq!(
            x.conv1d(&w, None, 1, 1, 1, 1).to_vec::<f64>(),
            vec![1.0, 3.0, 5.0, 3.0]
        );
        let y = Tensor::from_vec(vec![0.0f64, 2.0, 4.0, 6.0], &[1, 2, 2]);
        let w = Tensor::from_vec(vec![2.0f64, 1.0], &[2]);
        let b = Tensor::from_vec(vec![0.0f64, 10.0], &[2]);
        // One group over all 4 values: mean 3, variance 5.
        let z = y.group_norm(1, Some(&w), Some(&b), 0.0).to_vec::<f64>();
        let s = 5f64.sqrt();
        let want = [-6.0 / s, -2.0 / s, 10.0 + 1.0 / s, 10.0 + 3.0 / s];
        for (a, b) in z.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
    }

    #[test]
    #[should_panic(
        expected = "conv_transpose2d: output_padding [2, 0] must be smaller than either the stride [2, 1] or the dilation [1, 1]"
    )]
    fn conv_transpose2d_output_padding_too_large_panics() {
        let x = Tensor::zeros(&[1, 1, 2, 2], DType::F32);
        let w = Tensor::zeros(&[1, 1, 2, 2], DType::F32);
        let _ = x.conv_transpose2d(&w, None, [2, 1], [0, 0], [2, 0], 1, [1, 1]);
    }

    #[test]
    #[should_panic(expected = "col2im: the input has 5 blocks, but output size [3, 4]")]
    fn col2im_wrong_block_count_panics() {
        let _ =
            Tensor::zeros(&[1, 4, 5], DType::F32).col2im([3, 4], [2, 2], [1, 1], [0, 0], [1, 1]);
    }

    #[test]
    #[should_panic(
        expected = "interpolate: Bilinear mode needs a non-empty input of rank 4 ([N, C, H, W]), got [1, 1, 4]"
    )]
    fn bilinear_of_a_signal_panics() {
        let _ = Tensor::zeros(&[1, 1, 4], DType::F32).interpolate(
            &ResizeTarget::Size(vec![8]),
            InterpolateMode::Bilinear,
            false,
        );
    }
}
