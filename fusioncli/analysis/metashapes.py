"""Output shapes of shape-trivial ops on meta tensors, computed without running their meta kernels.

torch's meta kernels for interpolation, batch norm and many element-wise ops are Python
decompositions that take 0.2-20 ms a call (two bilinear resizes cost 40 ms, most of a block's
counting time); their output shapes follow from the arguments. Outputs are contiguous, which
changes no count. The tests check that counting on meta equals counting on CPU for every block.
"""

from __future__ import annotations

import math

import torch

aten = torch.ops.aten


def _overloads(names: str) -> set:
    """The ``op.overload`` names that exist in this torch (older releases lack some)."""
    out = set()
    for name in names.split():
        packet, overload = name.split(".")
        o = getattr(getattr(aten, packet, None), overload, None)
        if o is not None:
            out.add(o)
    return out


_SHORTCUT_RESIZE = _overloads(
    "upsample_bilinear2d.default upsample_bicubic2d.default upsample_nearest2d.default "
    "_upsample_bilinear2d_aa.default _upsample_nearest_exact2d.default")
_SHORTCUT_REDUCE = _overloads("mean.dim sum.dim_IntList amax.default amin.default")
_SHORTCUT_BN = _overloads("native_batch_norm.default _native_batch_norm_legit_no_training.default")
# out-of-place element-wise ops whose result, for floating tensors of one dtype and Python
# scalars, has that dtype and the broadcast shape of the tensor arguments
_SHORTCUT_POINTWISE = _overloads(
    "add.Tensor add.Scalar sub.Tensor sub.Scalar mul.Tensor mul.Scalar div.Tensor div.Scalar rsub.Tensor "
    "rsub.Scalar neg.default relu.default leaky_relu.default sigmoid.default tanh.default gelu.default "
    "silu.default hardswish.default hardsigmoid.default hardtanh.default elu.default exp.default "
    "sqrt.default rsqrt.default reciprocal.default pow.Tensor_Scalar clamp.default clamp_min.default "
    "maximum.default minimum.default lerp.Scalar lerp.Tensor addcmul.default addcdiv.default "
    "_softmax.default _safe_softmax.default _log_softmax.default _prelu_kernel.default")
_SHORTCUT_MATMUL = _overloads("mm.default addmm.default bmm.default")
# comparisons of floating tensors of one dtype: a bool tensor of the broadcast shape (amax/max backward)
_SHORTCUT_COMPARE = _overloads("eq.Tensor ne.Tensor lt.Tensor le.Tensor gt.Tensor ge.Tensor")


# backward ops (a training step): element-wise ones give a gradient shaped as their first argument (the
# incoming gradient), pooling ones as their second (the forward's input)
_SHORTCUT_GRAD_LIKE = _overloads(
    "threshold_backward.default sigmoid_backward.default tanh_backward.default silu_backward.default "
    "gelu_backward.default hardswish_backward.default hardsigmoid_backward.default leaky_relu_backward.default "
    "hardtanh_backward.default elu_backward.default _softmax_backward_data.default "
    "_log_softmax_backward_data.default")
_SHORTCUT_INPUT_LIKE = _overloads(
    "max_pool2d_with_indices_backward.default avg_pool2d_backward.default _adaptive_avg_pool2d_backward.default")
_SHORTCUT_RESIZE_BACKWARD = _overloads(
    "upsample_bilinear2d_backward.default upsample_bicubic2d_backward.default upsample_nearest2d_backward.default "
    "_upsample_nearest_exact2d_backward.default _upsample_bilinear2d_aa_backward.default")


def _backward_shortcut(func, args):
    """The gradients of a backward op on meta tensors (None for those its output_mask skips)."""
    x = args[0]
    if func in _SHORTCUT_GRAD_LIKE:
        return _empty(x.shape, x.dtype)
    if func in _SHORTCUT_INPUT_LIKE:
        return _empty(args[1].shape, x.dtype)
    if func in _SHORTCUT_RESIZE_BACKWARD:
        return _empty(args[2], x.dtype)
    if func is aten.convolution_backward.default:
        inp, w, bias_sizes, mask = args[1], args[2], args[3], args[10]
        return (_empty(inp.shape, x.dtype) if mask[0] else None, _empty(w.shape, w.dtype) if mask[1] else None,
                _empty(bias_sizes, x.dtype) if mask[2] and bias_sizes is not None else None)
    if func is aten.native_batch_norm_backward.default:
        inp, weight, mask = args[1], args[2], args[9]
        c = (inp.shape[1],)
        wdtype = weight.dtype if weight is not None else x.dtype
        return (_empty(inp.shape, x.dtype) if mask[0] else None, _empty(c, wdtype) if mask[1] else None,
                _empty(c, wdtype) if mask[2] else None)
    if func is aten.native_layer_norm_backward.default:
        inp, weight, bias, mask = args[1], args[5], args[6], args[7]
        return (_empty(inp.shape, x.dtype) if mask[0] else None,
                _empty(weight.shape, weight.dtype) if mask[1] and weight is not None else None,
                _empty(bias.shape, bias.dtype) if mask[2] and bias is not None else None)
    return None


_BACKWARD = _SHORTCUT_GRAD_LIKE | _SHORTCUT_INPUT_LIKE | _SHORTCUT_RESIZE_BACKWARD | _overloads(
    "convolution_backward.default native_batch_norm_backward.default native_layer_norm_backward.default")


_SHORTCUT_RANGE = _overloads("arange.default arange.start arange.start_step linspace.default")


def meta_shortcut(func, args, kwargs=None):
    """Output of a shape-trivial op on meta tensors, without running its meta kernel.

    Anything else returns None and runs normally.
    """
    if func in _BACKWARD:
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if tensors and all(t.device.type == "meta" for t in tensors) and args[0].dtype.is_floating_point:
            return _backward_shortcut(func, args)
        return None
    if func in _SHORTCUT_RANGE:  # their meta paths call torch._check (sympy)
        return _meta_range(func, args, kwargs or {})
    if func in _SHORTCUT_SAMPLING:
        return _meta_sampling(func, args)
    if func is aten.cat.default:
        return _meta_cat(*args)
    if func is aten.convolution.default:
        return _meta_conv(*args)
    if func in _SHORTCUT_MATMUL:  # meta_mm & co. check shapes with torch._check, which imports sympy
        return _meta_matmul(func, args)
    x = args[0] if args else None
    if not isinstance(x, torch.Tensor) or x.device.type != "meta":
        return None
    if func in _SHORTCUT_RESIZE:
        return torch.empty((*x.shape[:-2], *args[1]), dtype=x.dtype, device="meta")
    if func in _SHORTCUT_COMPARE:
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if len(tensors) == 2 and all(t.device.type == "meta" and t.dtype == x.dtype for t in tensors) and \
                x.dtype.is_floating_point:
            shape = _broadcast([t.shape for t in tensors])
            return None if shape is None else _empty(shape, torch.bool)
        return None
    if func in _SHORTCUT_POINTWISE:
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if all(t.device.type == "meta" and t.dtype == x.dtype for t in tensors) and x.dtype.is_floating_point and \
                all(isinstance(a, (torch.Tensor, int, float, bool, type(None), list, tuple)) for a in args):
            shape = _broadcast([t.shape for t in tensors])
            return None if shape is None else torch.empty(shape, dtype=x.dtype, device="meta")
        return None
    if func in _SHORTCUT_REDUCE and x.dtype.is_floating_point and len(args) >= 2 and \
            isinstance(args[1], (list, tuple)) and args[1] and all(isinstance(d, int) for d in args[1]):
        keep = bool(args[2]) if len(args) > 2 else False
        dims = {d % x.dim() for d in args[1]}
        shape = [1 if i in dims else n for i, n in enumerate(x.shape) if keep or i not in dims]
        return _empty(shape, x.dtype)
    if func in (aten.max_pool2d_with_indices.default, aten.avg_pool2d.default) and x.dim() == 4:
        ceil = (args[5] if len(args) > 5 else False) if func is aten.max_pool2d_with_indices.default else \
            (args[4] if len(args) > 4 else False)
        dil = (args[4] if len(args) > 4 else [1, 1]) if func is aten.max_pool2d_with_indices.default else [1, 1]
        size = _pool_out(x.shape[-2:], args[1], args[2] if len(args) > 2 else [], args[3] if len(args) > 3 else [0],
                         dil, ceil)
        if size is None:
            return None
        out = _empty((*x.shape[:-2], *size), x.dtype)
        return (out, _empty(out.shape, torch.int64)) if func is aten.max_pool2d_with_indices.default else out
    if func is aten.native_layer_norm.default:
        axis = x.dim() - len(args[1])
        stats = (*x.shape[:axis], *([1] * len(args[1])))
        return _empty(x.shape, x.dtype), _empty(stats, torch.float32), _empty(stats, torch.float32)
    if func in _SHORTCUT_BN and x.dim() >= 2:
        return _empty(x.shape, x.dtype), _empty((x.shape[1],), torch.float32), _empty((x.shape[1],), torch.float32)
    return None


def _meta_matmul(func, args):
    """(n, k) @ (k, m) -> (n, m); addmm's bias first; bmm batched. None (run the op) unless every
    tensor is a floating meta tensor of one dtype with matching inner sizes."""
    a, b = args[1:3] if func is aten.addmm.default else args[:2]
    tensors = args[:3] if func is aten.addmm.default else args[:2]
    if not all(isinstance(t, torch.Tensor) and t.device.type == "meta" and t.dtype == a.dtype for t in tensors):
        return None
    if not a.dtype.is_floating_point:
        return None
    if func is aten.bmm.default:
        if a.dim() != 3 or b.dim() != 3 or a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1]:
            return None
        return _empty((a.shape[0], a.shape[1], b.shape[2]), a.dtype)
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[0]:
        return None
    return _empty((a.shape[0], b.shape[1]), a.dtype)


_SHORTCUT_SAMPLING = _overloads(
    "stack.default repeat.default pixel_shuffle.default pixel_unshuffle.default im2col.default grid_sampler_2d.default")


def _meta_sampling(func, args):
    """stack, repeat, pixel (un)shuffle, im2col and grid_sampler_2d on meta tensors (None elsewhere);
    their meta kernels check shapes with torch._check (sympy)."""
    if func is aten.stack.default:
        ts, dim = args[0], args[1] if len(args) > 1 else 0
        if not ts or any(not isinstance(t, torch.Tensor) or t.device.type != "meta" or t.dtype != ts[0].dtype
                         or t.shape != ts[0].shape for t in ts):
            return None
        shape = list(ts[0].shape)
        shape.insert(dim % (len(shape) + 1), len(ts))
        return _empty(shape, ts[0].dtype)
    x = args[0]
    if not isinstance(x, torch.Tensor) or x.device.type != "meta":
        return None
    if func is aten.repeat.default:
        reps = list(args[1])
        if len(reps) < x.dim():
            return None
        dims = [1] * (len(reps) - x.dim()) + list(x.shape)
        return _empty([d * r for d, r in zip(dims, reps)], x.dtype)
    if func in (aten.pixel_shuffle.default, aten.pixel_unshuffle.default):
        if x.dim() < 3:
            return None
        r, (c, h, w) = args[1], x.shape[-3:]
        if func is aten.pixel_shuffle.default:
            return None if c % (r * r) else _empty((*x.shape[:-3], c // (r * r), h * r, w * r), x.dtype)
        return None if h % r or w % r else _empty((*x.shape[:-3], c * r * r, h // r, w // r), x.dtype)
    if func is aten.im2col.default:
        if x.dim() != 4:
            return None
        size = _pool_out(x.shape[-2:], args[1], args[4], args[3], args[2], False)
        k = args[1]
        return None if size is None else _empty((x.shape[0], x.shape[1] * k[0] * k[1], size[0] * size[1]), x.dtype)
    grid = args[1]  # grid_sampler_2d
    if x.dim() != 4 or not isinstance(grid, torch.Tensor) or grid.dim() != 4 or grid.shape[0] != x.shape[0]:
        return None
    return _empty((x.shape[0], x.shape[1], grid.shape[1], grid.shape[2]), x.dtype)


def _meta_range(func, args, kwargs):
    """``arange`` / ``linspace`` created on meta: a 1-d tensor of their length (None elsewhere)."""
    device = kwargs.get("device")
    if device is None or torch.device(device).type != "meta" or kwargs.get("layout") not in (None, torch.strided):
        return None
    if not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
        return None
    if func is aten.linspace.default:
        n, dtype = args[2], kwargs.get("dtype") or torch.get_default_dtype()
    else:
        start, end, step = (0, args[0], 1) if len(args) == 1 else (args[0], args[1], args[2] if len(args) > 2 else 1)
        if step == 0:
            return None
        n = max(0, math.ceil((end - start) / step))
        dtype = kwargs.get("dtype") or (torch.int64 if all(isinstance(a, int) for a in args)
                                        else torch.get_default_dtype())
    return None if n < 0 else _empty((n,), dtype)


def _empty(shape, dtype):
    # torch.empty, not empty_like or clone: their meta paths import sympy (0.5 s) on first use
    return torch.empty(tuple(shape), dtype=dtype, device="meta")


def _broadcast(shapes) -> tuple[int, ...] | None:
    """Broadcast shape, or None when they do not broadcast (torch then raises its own error).
    Plain Python: ``torch.broadcast_shapes`` imports sympy (0.5 s) on first use."""
    n = max(len(s) for s in shapes)
    out = []
    for dims in zip(*[(1,) * (n - len(s)) + tuple(s) for s in shapes]):
        sizes = {d for d in dims if d != 1}
        if len(sizes) > 1:
            return None
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def _pool_out(hw, kernel, stride, padding, dilation, ceil_mode) -> list[int] | None:
    """Output size of a 2-d pooling, as torch's pooling_output_shape computes it."""
    two = lambda v: [v, v] if isinstance(v, int) else (list(v) * 2 if len(v) == 1 else list(v))  # noqa: E731
    k, s, p, d = two(kernel), two(stride) if stride else two(kernel), two(padding), two(dilation)
    out = []
    for n, ki, si, pi, di in zip(hw, k, s, p, d):
        num = n + 2 * pi - di * (ki - 1) - 1 + (si - 1 if ceil_mode else 0)
        o = num // si + 1
        if ceil_mode and (o - 1) * si >= n + pi:
            o -= 1
        if o <= 0:
            return None
        out.append(o)
    return out


def _meta_conv(x, w, bias, stride, padding, dilation, transposed, output_padding, groups):
    nd = x.dim() - 2
    ok = (isinstance(x, torch.Tensor) and x.device.type == "meta" and w.device.type == "meta" and not transposed
          and nd >= 1 and w.dim() == nd + 2 and x.shape[1] == w.shape[1] * groups
          and all(isinstance(v, (list, tuple)) and len(v) == nd and all(isinstance(i, int) for i in v)
                  for v in (stride, padding, dilation)))
    if not ok:
        return None
    spatial = [(x.shape[2 + i] + 2 * padding[i] - dilation[i] * (w.shape[2 + i] - 1) - 1) // stride[i] + 1
               for i in range(nd)]
    if any(s <= 0 for s in spatial):
        return None  # let torch raise its own error
    return torch.empty((x.shape[0], w.shape[0], *spatial), dtype=x.dtype, device="meta")


def _meta_cat(tensors, dim: int = 0):
    ts = [t for t in tensors if not (t.dim() == 1 and t.numel() == 0)]  # legacy empty tensors are skipped
    if not ts or any(t.device.type != "meta" or t.dtype != ts[0].dtype or t.dim() != ts[0].dim() for t in ts):
        return None
    dim = dim % ts[0].dim()
    shape = list(ts[0].shape)
    if any(list(t.shape[:dim]) + list(t.shape[dim + 1:]) != shape[:dim] + shape[dim + 1:] for t in ts):
        return None  # let torch raise its own error
    shape[dim] = sum(t.shape[dim] for t in ts)
    return torch.empty(shape, dtype=ts[0].dtype, device="meta")
