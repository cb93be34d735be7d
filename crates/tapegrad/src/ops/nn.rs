//! Neural-network ops on NCHW tensors: `conv2d` (stride, padding, dilation, groups),
//! `max_pool2d`, `avg_pool2d`, `adaptive_avg_pool2d` and seeded `dropout`.
//!
//! `conv2d` is bilinear in (input, weight), so its two gradients are themselves
//! convolutions: the input gradient is a transposed convolution of `g` with the weight
//! (`conv2d_input_grad`) and the weight gradient correlates the input with `g`
//! (`conv2d_weight_grad`). All three are recorded ops whose rules are written in terms of
//! each other, so gradients of any order work. Max pooling saves the arg-max indices and
//! its backward is a scatter whose own gradient is the gather again; the average pools
//! are linear and their backward is their transpose. Dropout multiplies by a constant
//! mask, so it needs no rule of its own.

use std::sync::Arc;

use ndarray::{ArcArray, ArrayD, IxDyn};
use rand::Rng;
use smallvec::smallvec;

use super::check_same_dtype;
use super::table::{distinct_tensor, random_tensor, Domain, Inputs, OpSpec};
use crate::autograd::node::{GradList, Op};
use crate::dtype::{DType, Element};
use crate::kernels::conv::{
    channel_sum, conv2d_forward, conv2d_input_grad, conv2d_weight_grad, dropout_mask, max_pool2d,
    out_size, plane_gather, plane_scatter, window_avg, window_avg_transpose, ConvGeom, PoolGeom,
    Window,
};
use crate::shape::Shape;
use crate::storage::{dispatch, Data};
use crate::tensor::Tensor;

fn arr<T: Element>(v: Vec<T>, shape: &[usize]) -> ArcArray<T, IxDyn> {
    ArrayD::from_shape_vec(IxDyn(shape), v)
        .expect("kernel output has the computed shape")
        .into_shared()
}

impl Tensor {
    /// 2-D convolution (cross-correlation, as in every deep-learning library) of an
    /// `[N, C, H, W]` input with a `[O, C / groups, kH, kW]` weight and an optional `[O]`
    /// bias:
    ///
    /// `y[n, o, i, j] = b[o] + sum_{c, p, q} w[o, c, p, q] * x[n, g(o) + c, i*sH + p*dH - padH, j*sW + q*dW - padW]`
    ///
    /// with zero padding and `g(o)` the first input channel of `o`'s group. The output is
    /// `[N, O, Ho, Wo]` with `Ho = floor((H + 2 padH - dH (kH - 1) - 1) / sH) + 1` (and
    /// likewise `Wo`). Computed by im2col + GEMM, images in parallel. Gradient: the input
    /// gets a transposed convolution of `g` with `w`, the weight gets the correlation of
    /// `x` with `g`, the bias gets `g` summed over `N, Ho, Wo`; these are recorded ops, so
    /// second-order gradients work. PyTorch: `torch.nn.functional.conv2d(x, w, b, stride,
    /// padding, dilation, groups)`.
    ///
    /// # Panics
    /// If the input or weight is not rank 4, dtypes differ, `groups` is 0 or does not
    /// divide both channel counts, the weight's second dimension is not `C / groups`, the
    /// bias is not `[O]`, a stride or dilation is 0, or the dilated kernel does not fit in
    /// the padded input.
    ///
    /// ```
    /// use tapegrad::{DType, Tensor};
    /// // A 3x3 box filter with padding 1 counts the in-bounds neighbours of each pixel.
    /// let x = Tensor::ones(&[1, 1, 3, 3], DType::F32);
    /// let w = Tensor::ones(&[1, 1, 3, 3], DType::F32);
    /// let y = x.conv2d(&w, None, [1, 1], [1, 1], [1, 1], 1);
    /// assert_eq!(y.to_vec::<f32>(), vec![4.0, 6.0, 4.0, 6.0, 9.0, 6.0, 4.0, 6.0, 4.0]);
    /// ```
    #[track_caller]
    pub fn conv2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
        groups: usize,
    ) -> Tensor {
        check_same_dtype("conv2d", self, weight);
        let g = conv_geom(
            self.shape(),
            weight.shape(),
            stride,
            padding,
            dilation,
            groups,
        );
        if let Some(b) = bias {
            check_same_dtype("conv2d", self, b);
            if b.shape() != [g.o] {
                panic!(
                    "conv2d: the bias must have shape [{}] (one per output channel), got {:?}",
                    g.o,
                    b.shape()
                );
            }
        }
        self.conv2d_raw(weight, bias, g)
    }

    /// `conv2d` on a checked geometry, the bias added inside the kernel. Saves each of
    /// `x`, `w` only if the other one needs a gradient.
    #[track_caller]
    pub(super) fn conv2d_raw(&self, weight: &Tensor, bias: Option<&Tensor>, g: ConvGeom) -> Tensor {
        let bias_data = bias.map(|b| b.force());
        let value = dispatch!((self.data(), weight.data()), |x, w| {
            let b = bias_data
                .as_ref()
                .map(|b| b.array::<E>().expect("dtype checked"));
            Data::from(conv2d_forward(
                &x.force().view(),
                &w.force().view(),
                b.map(|b| b.view()).as_ref(),
                &g,
            ))
        });
        let has_bias = bias.is_some();
        let inputs: Vec<&Tensor> = [Some(self), Some(weight), bias]
            .into_iter()
            .flatten()
            .collect();
        Op::new("conv2d", &inputs, value)
            .save_for(1, self)
            .save_for(0, weight)
            .rule(move |ctx, gy| {
                let mut grads: GradList = smallvec![
                    ctx.needs_grad(0)
                        .then(|| gy.conv2d_input_grad(ctx.saved(1), g)),
                    ctx.needs_grad(1)
                        .then(|| ctx.saved(0).conv2d_weight_grad(gy, g))
                ];
                if has_bias {
                    grads.push(ctx.needs_grad(2).then(|| gy.channel_sum()));
                }
                grads
            })
    }

    /// `out[c] = sum of self[:, c, ...]`: the bias gradient of `conv2d`. Its own
    /// gradient broadcasts back over the other axes.
    #[track_caller]
    fn channel_sum(&self) -> Tensor {
        let shape = Shape::from_slice(self.shape());
        let value = dispatch!(self.data(), |a| {
            let a = a.force().into_owned();
            Data::from(channel_sum(&a.view()))
        });
        Op::new("conv2d_bias_grad", &[self], value).rule(move |_, h| {
            let mut kept = vec![1usize; shape.len()];
            kept[1] = shape[1];
            smallvec![Some(h.reshape_to(&kept).broadcast_to(&shape))]
        })
    }

    /// `self` is the output gradient `gy`; returns the input gradient `Ix(gy, w)`.
    /// Bilinear; for an upstream `h` (input-shaped): `d/dgy = conv2d(h, w)`,
    /// `d/dw = Iw(h, gy)`.
    #[track_caller]
    pub(super) fn conv2d_input_grad(&self, weight: &Tensor, g: ConvGeom) -> Tensor {
        let value = dispatch!((self.data(), weight.data()), |gy, w| {
            let (gy, w) = (gy.force(), w.force());
            Data::from(conv2d_input_grad(&gy.view(), &w.view(), &g))
        });
        Op::new("conv2d_input_grad", &[self, weight], value)
            .save_for(1, self)
            .save_for(0, weight)
            .rule(move |ctx, h| {
                smallvec![
                    ctx.needs_grad(0)
                        .then(|| h.conv2d_raw(ctx.saved(1), None, g)),
                    ctx.needs_grad(1)
                        .then(|| h.conv2d_weight_grad(ctx.saved(0), g))
                ]
            })
    }

    /// `self` is the input `x`; returns the weight gradient `Iw(x, gy)`. Bilinear; for an
    /// upstream `h` (weight-shaped): `d/dx = Ix(gy, h)`, `d/dgy = conv2d(x, h)`.
    #[track_caller]
    fn conv2d_weight_grad(&self, gy: &Tensor, g: ConvGeom) -> Tensor {
        let value = dispatch!((self.data(), gy.data()), |x, gy| {
            let (x, gy) = (x.force(), gy.force());
            Data::from(conv2d_weight_grad(&x.view(), &gy.view(), &g))
        });
        Op::new("conv2d_weight_grad", &[self, gy], value)
            .save_for(1, self)
            .save_for(0, gy)
            .rule(move |ctx, h| {
                smallvec![
                    ctx.needs_grad(0)
                        .then(|| ctx.saved(1).conv2d_input_grad(h, g)),
                    ctx.needs_grad(1)
                        .then(|| ctx.saved(0).conv2d_raw(h, None, g))
                ]
            })
    }

    /// Max pooling over `kernel` windows of an `[N, C, H, W]` tensor, moved by `stride`,
    /// with implicit `-inf` padding and dilation, giving `[N, C, Ho, Wo]` (sizes as in
    /// [`conv2d`](Self::conv2d)). Gradient: `g` goes to the position of each window's
    /// maximum (added up where windows overlap); on ties the first position in row-major
    /// window order wins, as in PyTorch. PyTorch: `F.max_pool2d(x, kernel, stride,
    /// padding, dilation)` (`ceil_mode=False`).
    ///
    /// # Panics
    /// If the input is not rank 4, a kernel size, stride or dilation is 0, the padding is
    /// more than half the kernel (PyTorch's rule), or the window does not fit.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 5.0, 2.0, 0.0, 3.0, 4.0, 8.0, 7.0], &[1, 1, 2, 4]);
    /// let y = x.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1]);
    /// assert_eq!(y.to_vec::<f32>(), vec![5.0, 8.0]);
    /// ```
    #[track_caller]
    pub fn max_pool2d(
        &self,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
    ) -> Tensor {
        let p = pool_geom(
            "max_pool2d",
            self.shape(),
            kernel,
            stride,
            padding,
            dilation,
        );
        let out_shape = [self.shape()[0], self.shape()[1], p.ho, p.wo];
        let (value, idx) = dispatch!(self.data(), |a| {
            let (v, i) = max_pool2d(&a.force().view(), &p);
            (Data::from(arr(v, &out_shape)), i)
        });
        let at = Arc::new(Argmax {
            idx,
            input: [out_shape[0], out_shape[1], p.h, p.w],
            output: out_shape,
        });
        self.record_argmax_gather(value, at)
    }

    #[track_caller]
    fn record_argmax_gather(&self, value: Data, at: Arc<Argmax>) -> Tensor {
        Op::new("max_pool2d", &[self], value).rule(move |_, g| g.argmax_scatter(at.clone()))
    }

    /// Values at the saved arg-max indices: the gradient of `argmax_scatter`.
    fn argmax_gather(&self, at: Arc<Argmax>) -> Tensor {
        let (il, ol) = (at.input[2] * at.input[3], at.output[2] * at.output[3]);
        let value = dispatch!(self.data(), |a| {
            let a = a.force().into_owned();
            Data::from(arr(plane_gather(&a.view(), &at.idx, il, ol), &at.output))
        });
        self.record_argmax_gather(value, at)
    }

    /// The gradient of max pooling: `g` added at the saved arg-max indices. Linear in
    /// `g`, with the gather as its own gradient.
    #[track_caller]
    fn argmax_scatter(&self, at: Arc<Argmax>) -> Tensor {
        let (il, ol) = (at.input[2] * at.input[3], at.output[2] * at.output[3]);
        let value = dispatch!(self.data(), |a| {
            let a = a.force().into_owned();
            Data::from(arr(plane_scatter(&a.view(), &at.idx, il, ol), &at.input))
        });
        Op::new("max_pool2d_backward", &[self], value).rule(move |_, g| g.argmax_gather(at.clone()))
    }

    /// Average pooling over `kernel` windows of an `[N, C, H, W]` tensor, moved by
    /// `stride`, with zero padding, giving `[N, C, Ho, Wo]`. With `count_include_pad`
    /// (PyTorch's default) every window is divided by `kH * kW`; without it, by the number
    /// of in-bounds positions. Gradient: each `g[i, j]` spread evenly (with the same
    /// divisor) over its window. PyTorch: `F.avg_pool2d(x, kernel, stride, padding,
    /// ceil_mode=False, count_include_pad)`.
    ///
    /// # Panics
    /// If the input is not rank 4, a kernel size or stride is 0, the padding is more than
    /// half the kernel, or the window does not fit.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[1, 1, 2, 2]);
    /// assert_eq!(x.avg_pool2d([2, 2], [2, 2], [0, 0], true).to_vec::<f32>(), vec![2.5]);
    /// // Padding 1: the corner windows hold one real value; counting the padding divides by 4.
    /// assert_eq!(x.avg_pool2d([2, 2], [2, 2], [1, 1], true).to_vec::<f32>(), vec![0.25, 0.5, 0.75, 1.0]);
    /// assert_eq!(x.avg_pool2d([2, 2], [2, 2], [1, 1], false).to_vec::<f32>(), vec![1.0, 2.0, 3.0, 4.0]);
    /// ```
    #[track_caller]
    pub fn avg_pool2d(
        &self,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        count_include_pad: bool,
    ) -> Tensor {
        let p = pool_geom("avg_pool2d", self.shape(), kernel, stride, padding, [1, 1]);
        let axis = |size: usize, out: usize, k: usize, s: usize, pad: usize| -> Vec<Window> {
            (0..out)
                .map(|i| {
                    let start = (i * s) as isize - pad as isize;
                    let (lo, hi) = (
                        start.max(0) as usize,
                        ((start + k as isize) as usize).min(size),
                    );
                    let count = if count_include_pad { k } else { hi - lo };
                    (lo, hi, 1.0 / count as f64)
                })
                .collect()
        };
        let win = Windows {
            op: "avg_pool2d",
            rows: axis(p.h, p.ho, kernel[0], stride[0], padding[0]),
            cols: axis(p.w, p.wo, kernel[1], stride[1], padding[1]),
            input: [self.shape()[0], self.shape()[1], p.h, p.w],
        };
        self.window_avg(Arc::new(win))
    }

    /// Adaptive average pooling to an `[N, C, oH, oW]` output: output cell `i` along an
    /// axis of input size `S` averages positions `floor(i S / o) .. ceil((i + 1) S / o)`,
    /// as PyTorch does; `output = [1, 1]` is global average pooling. Gradient: each
    /// `g[i, j]` spread evenly over its window. PyTorch: `F.adaptive_avg_pool2d(x, output)`.
    ///
    /// # Panics
    /// If the input is not rank 4 or an output size is 0.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::arange(0.0, 12.0, 1.0, tapegrad::DType::F64).reshape(&[1, 2, 2, 3]);
    /// assert_eq!(x.adaptive_avg_pool2d([1, 1]).to_vec::<f64>(), vec![2.5, 8.5]);
    /// ```
    #[track_caller]
    pub fn adaptive_avg_pool2d(&self, output: [usize; 2]) -> Tensor {
        if self.rank() != 4 {
            panic!(
                "adaptive_avg_pool2d: the input must be [N, C, H, W] (rank 4), got shape {:?}",
                self.shape()
            );
        }
        if output.contains(&0) {
            panic!("adaptive_avg_pool2d: output size {output:?} must be positive");
        }
        let (h, w) = (self.shape()[2], self.shape()[3]);
        if h == 0 || w == 0 {
            panic!("adaptive_avg_pool2d: the input's spatial size {h}x{w} is empty");
        }
        let axis = |size: usize, out: usize| -> Vec<Window> {
            (0..out)
                .map(|i| {
                    let (lo, hi) = (i * size / out, ((i + 1) * size).div_ceil(out));
                    (lo, hi, 1.0 / (hi - lo) as f64)
                })
                .collect()
        };
        let win = Windows {
            op: "adaptive_avg_pool2d",
            rows: axis(h, output[0]),
            cols: axis(w, output[1]),
            input: [self.shape()[0], self.shape()[1], h, w],
        };
        self.window_avg(Arc::new(win))
    }

    #[track_caller]
    fn window_avg(&self, win: Arc<Windows>) -> Tensor {
        let [n, c, h, w] = win.input;
        let out = [n, c, win.rows.len(), win.cols.len()];
        let value = dispatch!(self.data(), |a| {
            let a = a.force().into_owned();
            Data::from(arr(window_avg(&a.view(), h, w, &win.rows, &win.cols), &out))
        });
        Op::new(win.op, &[self], value).rule(move |_, g| g.window_avg_transpose(win.clone()))
    }

    /// The gradient of a window average: its transpose, whose own gradient is the
    /// average again.
    #[track_caller]
    fn window_avg_transpose(&self, win: Arc<Windows>) -> Tensor {
        let [_, _, h, w] = win.input;
        let value = dispatch!(self.data(), |a| {
            let a = a.force().into_owned();
            Data::from(arr(
                window_avg_transpose(&a.view(), h, w, &win.rows, &win.cols),
                &win.input,
            ))
        });
        Op::new("avg_pool2d_backward", &[self], value).rule(move |_, g| g.window_avg(win.clone()))
    }

    /// Dropout: zeroes each element with probability `p` and scales the rest by
    /// `1 / (1 - p)`, so the expectation is unchanged (inverted dropout, as PyTorch). The
    /// mask is drawn from a generator seeded with `seed`: the same seed gives the same
    /// mask. Gradient: `g * mask`. This op always drops; switching it off in evaluation
    /// mode is the caller's job (the `Dropout` layer does). PyTorch:
    /// `F.dropout(x, p, training=True)`.
    ///
    /// # Panics
    /// If `p` is not in `[0, 1]`.
    ///
    /// ```
    /// use tapegrad::{DType, Tensor};
    /// let x = Tensor::ones(&[1000], DType::F64);
    /// let y = x.dropout(0.25, 7);
    /// let v = y.to_vec::<f64>();
    /// assert!(v.iter().all(|&e| e == 0.0 || (e - 4.0 / 3.0).abs() < 1e-12));
    /// assert_eq!(v, x.dropout(0.25, 7).to_vec::<f64>());
    /// ```
    #[track_caller]
    pub fn dropout(&self, p: f64, seed: u64) -> Tensor {
        if !(0.0..=1.0).contains(&p) {
            panic!("dropout: probability p = {p} must be in [0, 1]");
        }
        if p == 0.0 {
            return self.clone();
        }
        let mask = match self.dtype() {
            DType::F32 => Data::from(dropout_mask::<f32>(self.shape(), p, seed)),
            DType::F64 => Data::from(dropout_mask::<f64>(self.shape(), p, seed)),
            other => panic!("dropout: needs a float tensor, got {other}"),
        };
        self.mul(&Tensor::from_data(mask))
    }
}

/// Arg-max indices of a max pooling, shared by its forward, backward and double backward.
struct Argmax {
    idx: Vec<u32>,
    input: [usize; 4],
    output: [usize; 4],
}

/// The windows of an average pooling along each axis.
struct Windows {
    op: &'static str,
    rows: Vec<Window>,
    cols: Vec<Window>,
    input: [usize; 4],
}

#[track_caller]
fn conv_geom(
    x: &[usize],
    w: &[usize],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
) -> ConvGeom {
    let (&[n, c, h, wd], &[o, cg, kh, kw]) = (x, w) else {
        panic!(
            "conv2d: expects an input [N, C, H, W] and a weight [out_channels, in_channels / groups, kH, kW] (both rank 4), got {x:?} and {w:?}"
        )
    };
    if groups == 0 || c % groups != 0 || o % groups != 0 {
        panic!("conv2d: groups = {groups} must be positive and divide both the input channels ({c}) and the output channels ({o})");
    }
    if cg != c / groups {
        panic!(
            "conv2d: the weight {w:?} expects {cg} input channels per group, but the input {x:?} has {c} channels in {groups} group(s), {} per group",
            c / groups
        );
    }
    if kh == 0 || kw == 0 || stride.contains(&0) || dilation.contains(&0) {
        panic!("conv2d: kernel {kh}x{kw}, stride {stride:?} and dilation {dilation:?} must all be positive");
    }
    let (Some(ho), Some(wo)) = (
        out_size(h, kh, stride[0], padding[0], dilation[0]),
        out_size(wd, kw, stride[1], padding[1], dilation[1]),
    ) else {
        panic!(
            "conv2d: the kernel {kh}x{kw} with dilation {dilation:?} does not fit in the input {h}x{wd} with padding {padding:?}"
        )
    };
    ConvGeom {
        n,
        c,
        h,
        w: wd,
        o,
        kh,
        kw,
        stride,
        padding,
        dilation,
        groups,
        ho,
        wo,
    }
}

#[track_caller]
fn pool_geom(
    op: &str,
    x: &[usize],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
) -> PoolGeom {
    let &[n, c, h, w] = x else {
        panic!("{op}: the input must be [N, C, H, W] (rank 4), got shape {x:?}")
    };
    if kernel.contains(&0) || stride.contains(&0) || dilation.contains(&0) {
        panic!("{op}: kernel {kernel:?}, stride {stride:?} and dilation {dilation:?} must all be positive");
    }
    if padding[0] > kernel[0] / 2 || padding[1] > kernel[1] / 2 {
        panic!("{op}: padding {padding:?} must be at most half the kernel {kernel:?}");
    }
    let (Some(ho), Some(wo)) = (
        out_size(h, kernel[0], stride[0], padding[0], dilation[0]),
        out_size(w, kernel[1], stride[1], padding[1], dilation[1]),
    ) else {
        panic!("{op}: the window {kernel:?} (dilation {dilation:?}) does not fit in the input {h}x{w} with padding {padding:?}")
    };
    if (h * w) as u64 > u32::MAX as u64 {
        panic!("{op}: a plane of {h}x{w} is too large (indices are 32-bit)");
    }
    PoolGeom {
        planes: n * c,
        h,
        w,
        kernel,
        stride,
        padding,
        dilation,
        ho,
        wo,
    }
}

// ---------------------------------------------------------------- op table rows

/// Stride, padding, dilation and groups for the table's conv2d row, derived from the
/// generated shapes so that random shapes also give varied configurations.
fn conv_config(x: &[usize], w: &[usize]) -> ([usize; 2], [usize; 2], [usize; 2], usize) {
    let groups = x[1] / w[1];
    let stride = [1 + x[2] % 2, 1 + x[3] % 2];
    let padding = [w[2] / 2, w[3] / 2];
    let dilation = [
        1 + usize::from(x[2].is_multiple_of(3)),
        1 + usize::from(x[3] % 3 == 1),
    ];
    (stride, padding, dilation, groups)
}

fn conv_inputs(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let groups = rng.gen_range(1..=2);
    let (cg, og) = (rng.gen_range(1..=2), rng.gen_range(1..=2));
    let (kh, kw) = (rng.gen_range(1..=3), rng.gen_range(1..=3));
    let x = [
        rng.gen_range(1..=2),
        cg * groups,
        rng.gen_range(kh..=kh + 3),
        rng.gen_range(kw..=kw + 3),
    ];
    let w = [og * groups, cg, kh, kw];
    vec![
        random_tensor(rng, &x, Domain::Real, dtype),
        random_tensor(rng, &w, Domain::Real, dtype),
        random_tensor(rng, &[og * groups], Domain::Real, dtype),
    ]
}

fn apply_conv(x: &[Tensor]) -> Tensor {
    let (stride, padding, dilation, groups) = conv_config(x[0].shape(), x[1].shape());
    x[0].conv2d(&x[1], Some(&x[2]), stride, padding, dilation, groups)
}

/// An `[N, C, H, W]` input of distinct values at least 0.1 apart, so a max never ties
/// or flips under a finite-difference step.
fn pool_distinct(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let s = [
        rng.gen_range(1..=2),
        rng.gen_range(1..=2),
        rng.gen_range(2..=5),
        rng.gen_range(2..=5),
    ];
    vec![distinct_tensor(rng, &s, dtype)]
}

fn pool_real(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let s = [
        rng.gen_range(1..=2),
        rng.gen_range(1..=2),
        rng.gen_range(2..=5),
        rng.gen_range(2..=5),
    ];
    vec![random_tensor(rng, &s, Domain::Real, dtype)]
}

/// The rows of the op table for this family.
pub(crate) const ROWS: &[OpSpec] = &[
    OpSpec::new(
        "conv2d",
        Inputs::Custom(conv_inputs),
        apply_conv,
        "x: conv_transpose2d(g, w); w: correlation of x with g; b: g summed over N, H, W",
    )
    .note("stride, padding, dilation and groups vary with the generated shapes"),
    OpSpec::new(
        "max_pool2d",
        Inputs::Custom(pool_distinct),
        |x| x[0].max_pool2d([2, 3], [2, 1], [1, 1], [1, 1]),
        "g scattered to each window's arg-max",
    )
    .note("ties: the first maximal position in the window gets g; padding never wins"),
    OpSpec::new(
        "avg_pool2d",
        Inputs::Custom(pool_real),
        |x| x[0].avg_pool2d([2, 3], [1, 2], [1, 1], false),
        "g/count spread over each window",
    ),
    OpSpec::new(
        "adaptive_avg_pool2d",
        Inputs::Custom(pool_real),
        |x| x[0].adaptive_avg_pool2d([2, 3]),
        "g/count spread over each adaptive window",
    ),
    OpSpec::new(
        "dropout",
        Inputs::Unary(Domain::Real),
        |x| x[0].dropout(0.5, 7),
        "g*mask/(1-p)",
    )
    .note("the mask is fixed by the seed"),
];

#[cfg(test)]
mod tests {
    use crate::{DType, Tensor};

    /// Direct loops over the definition, for comparing the im2col path against.
    fn conv_naive(
        x: &Tensor,
        w: &Tensor,
        s: [usize; 2],
        p: [usize; 2],
        d: [usize; 2],
        groups: usize,
    ) -> Vec<f64> {
        let (xs, ws) = (x.shape().to_vec(), w.shape().to_vec());
        let (xv, wv) = (x.to_vec::<f64>(), w.to_vec::<f64>());
        let (n, c, h, wd, o, cg, kh, kw) = (xs[0], xs[1], xs[2], xs[3], ws[0], ws[1], ws[2], ws[3]);
        let ho = (h + 2 * p[0] - d[0] * (kh - 1) - 1) / s[0] + 1;
        let wo = (wd + 2 * p[1] - d[1] * (kw - 1) - 1) / s[1] + 1;
        let og = o / groups;
        let mut out = vec![0.0; n * o * ho * wo];
        for b in 0..n {
            for oc in 0..o {
                let grp = oc / og;
                for i in 0..ho {
                    for j in 0..wo {
                        let mut acc = 0.0;
                        for ci in 0..cg {
                            for pi in 0..kh {
                                for qj in 0..kw {
                                    let iy = (i * s[0] + pi * d[0]) as isize - p[0] as isize;
                                    let ix = (j * s[1] + qj * d[1]) as isize - p[1] as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                        continue;
                                    }
                                    let xc = grp * cg + ci;
                                    acc += wv[((oc * cg + ci) * kh + pi) * kw + qj]
                                        * xv[((b * c + xc) * h + iy as usize) * wd + ix as usize];
                                }
                            }
                        }
                        out[((b * o + oc) * ho + i) * wo + j] = acc;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn conv2d_matches_the_definition() {
        type Config = (
            [usize; 4],
            [usize; 4],
            [usize; 2],
            [usize; 2],
            [usize; 2],
            usize,
        );
        let configs: [Config; 5] = [
            ([2, 3, 5, 6], [4, 3, 3, 3], [1, 1], [1, 1], [1, 1], 1),
            ([1, 4, 7, 5], [6, 2, 3, 2], [2, 1], [1, 0], [1, 2], 2),
            ([2, 2, 6, 6], [2, 1, 2, 3], [3, 2], [1, 1], [2, 1], 2),
            ([3, 2, 4, 4], [5, 2, 1, 1], [1, 1], [0, 0], [1, 1], 1),
            ([1, 1, 9, 9], [1, 1, 3, 3], [2, 2], [3, 3], [3, 3], 1),
        ];
        for (i, (xs, wsh, s, p, d, g)) in configs.into_iter().enumerate() {
            let x = Tensor::randn(&xs, DType::F64, i as u64);
            let w = Tensor::randn(&wsh, DType::F64, 100 + i as u64);
            let got = x.conv2d(&w, None, s, p, d, g).to_vec::<f64>();
            let want = conv_naive(&x, &w, s, p, d, g);
            assert_eq!(got.len(), want.len(), "config {i}");
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() < 1e-12, "config {i}: {a} vs {b}");
            }
        }
    }

    #[test]
    #[should_panic(expected = "conv2d: the weight [4, 3, 3, 3] expects 3 input channels per group")]
    fn conv2d_channel_mismatch_panics() {
        let _ = Tensor::zeros(&[1, 2, 5, 5], DType::F32).conv2d(
            &Tensor::zeros(&[4, 3, 3, 3], DType::F32),
            None,
            [1, 1],
            [0, 0],
            [1, 1],
            1,
        );
    }

    #[test]
    #[should_panic(expected = "max_pool2d: padding [2, 2] must be at most half the kernel [2, 2]")]
    fn pool_padding_too_large_panics() {
        let _ = Tensor::zeros(&[1, 1, 5, 5], DType::F32).max_pool2d([2, 2], [2, 2], [2, 2], [1, 1]);
    }

    #[test]
    fn max_pool_ties_and_padding() {
        let x = Tensor::from_vec(vec![-1.0f64, -1.0, -3.0, -4.0], &[1, 1, 2, 2]).requires_grad();
        let y = x.max_pool2d([2, 2], [2, 2], [1, 1], [1, 1]);
        assert_eq!(y.to_vec::<f64>(), vec![-1.0, -1.0, -3.0, -4.0]);
        let y = x.max_pool2d([2, 2], [1, 1], [0, 0], [1, 1]);
        assert_eq!(y.to_vec::<f64>(), vec![-1.0]);
        assert_eq!(
            y.sum().backward()[&x].to_vec::<f64>(),
            vec![1.0, 0.0, 0.0, 0.0]
        );
    }

    #[test]
    fn max_pool_propagates_nan_on_both_paths() {
        let x = Tensor::from_vec(vec![1.0f64, f64::NAN, 3.0, 2.0], &[1, 1, 2, 2]).requires_grad();
        for padding in [[0, 0], [1, 1]] {
            let y = x.max_pool2d([2, 2], [2, 2], padding, [1, 1]);
            assert!(
                y.to_vec::<f64>().iter().any(|v| v.is_nan()),
                "padding {padding:?}"
            );
        }
        let y = x.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1]);
        assert_eq!(
            y.sum().backward()[&x].to_vec::<f64>(),
            vec![0.0, 1.0, 0.0, 0.0]
        );
    }

    #[test]
    fn conv2d_bias_gradient_is_the_channel_sum() {
        let x = Tensor::randn(&[2, 1, 3, 3], DType::F64, 0);
        let w = Tensor::randn(&[2, 1, 2, 2], DType::F64, 1);
        let b = Tensor::zeros(&[2], DType::F64).requires_grad();
        let y = x.conv2d(&w, Some(&b), [1, 1], [0, 0], [1, 1], 1);
        let g = Tensor::arange(0.0, 16.0, 1.0, DType::F64).reshape(&[2, 2, 2, 2]);
        let gb = y.backward_with(&g)[&b].to_vec::<f64>();
        // Channel 0: g[0, 0] + g[1, 0] = (0+1+2+3) + (8+9+10+11); channel 1: the rest.
        assert_eq!(gb, vec![44.0, 76.0]);
    }
}
