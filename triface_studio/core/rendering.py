"""Volume rendering of tri-planes (paper eqs. 5-6), following EG3D's ``ImportanceRenderer``.

A *decoder* turns aggregated tri-plane features at 3D points into raw density, colour/feature
channels and (optionally) semantic logits.  Both model tiers implement :class:`Decoder`.  The
renderer samples rays stratified between ``ray_start`` and ``ray_end`` (``n_coarse`` samples),
then ``n_importance`` more from the coarse weights, and composites with

    T_i = exp(-sum_{j<i} sigma_j delta_j),   w_i = T_i (1 - exp(-sigma_i delta_i)),
    C(r) = sum_i w_i c_i,   S(r) = sum_i w_i softmax(s_i)

evaluated, as EG3D does, on the midpoints between consecutive samples.  Rays are processed in
chunks so memory stays bounded at any resolution; a decoder may also offer per-ray bounds
(:meth:`Decoder.ray_bounds`) so empty space is skipped and missed rays cost nothing.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from . import triplane
from .cameras import Camera
from .rays import camera_rays
from .semantics import NUM_CLASSES

RAY_START = 2.25
RAY_END = 3.3


class DecoderOutput(NamedTuple):
    """What a decoder returns for M points.

    Shape: density (B, M, 1) raw (before the renderer's activation); rgb (B, M, C) colour or
    features; semantics (B, M, 19) logits, or None for a decoder without a semantic head.
    """

    density: torch.Tensor
    rgb: torch.Tensor
    semantics: torch.Tensor | None


@runtime_checkable
class Decoder(Protocol):
    """Point features -> (density, rgb/features, semantic logits).

    ``aggregate`` says how the three planes' features are combined before the call ("sum" as
    in the paper, "mean" as in EG3D).  ``density_activation`` is applied by the renderer to the
    midpoint densities: "softplus" is EG3D's softplus(sigma - 1), "relu", or "identity" for a
    decoder that already returns non-negative densities.

    Optional methods: ``ray_bounds(planes, origins, dirs) -> (near, far, hit)`` limits each
    ray to where density can be; ``sample_features(planes, points, box_warp) -> (B, M, C)``
    replaces the renderer's tri-plane lookup (it must return the same aggregated features,
    e.g. by skipping channels known to be zero).
    """

    aggregate: str
    density_activation: str

    def __call__(self, features: torch.Tensor, points: torch.Tensor, dirs: torch.Tensor) -> DecoderOutput: ...


@dataclass(frozen=True)
class RenderOptions:
    n_coarse: int = 48
    n_importance: int = 48
    ray_start: float = RAY_START
    ray_end: float = RAY_END
    #: jitter stratified samples (training); off by default so previews do not flicker
    perturb: bool = False
    #: RGB background composited behind the head, or None for a transparent (premultiplied) result
    background: tuple[float, ...] | None = None
    #: add the transparent part of each ray to the background class of the semantic map
    semantic_background: bool = True
    #: rays per chunk; bounds memory at high resolution
    chunk: int = 32768
    #: use the decoder's ray_bounds() when it has one
    use_bounds: bool = True
    box_warp: float = 1.0
    #: decode in reduced precision ("float16" on CUDA, "bfloat16" on CUDA or CPU) through
    #: autocast; compositing always stays in float32
    precision: str | None = None
    #: "samples" (EG3D): colour and semantics decoded at every sample and composited;
    #: "surface": only the density at the samples (the decoder's ``density_at`` method), colour and
    #: semantics decoded once per ray at the compositing weights' mean depth and scaled by the
    #: opacity.  The same image where a ray's weights sit within a thin shell (an opaque
    #: surface), at a fraction of the work; decoders without ``density_at`` decode in full.
    shading: str = "samples"


@dataclass
class RenderResult:
    """Rendered images. Shape: rgb (B, C, H, W); semantics (B, 19, H, W) probabilities or None;
    depth (B, 1, H, W) (ray_end where nothing was hit); opacity (B, 1, H, W)."""

    rgb: torch.Tensor
    semantics: torch.Tensor | None
    depth: torch.Tensor
    opacity: torch.Tensor
    samples_per_ray: float = 0.0
    stats: dict = field(default_factory=dict)

    def labels(self) -> torch.Tensor:
        """Arg-max class ids. Shape: (B, H, W)."""
        if self.semantics is None:
            raise ValueError("this render has no semantics")
        # (max().indices: the same first-of-ties index as argmax, ~3x faster on a CPU for 19 classes)
        return self.semantics.max(1).indices


def activate_density(sigma: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "softplus":
        return F.softplus(sigma - 1)
    if mode == "relu":
        return F.relu(sigma)
    if mode == "identity":
        return sigma
    raise ValueError(f"unknown density activation {mode!r}")


def march(depths: torch.Tensor, densities: torch.Tensor, values: torch.Tensor,
          activation: str = "softplus") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Composite samples along rays, on the midpoints between samples (EG3D's ray marcher).

    Shape: depths (N, S, 1) sorted, densities (N, S, 1) raw, values (N, S, C)
           -> composite (N, C), depth (N, 1), opacity (N, 1), weights (N, S-1, 1)
    """
    deltas = depths[:, 1:] - depths[:, :-1]
    values_mid = (values[:, :-1] + values[:, 1:]) / 2
    dens_mid = activate_density((densities[:, :-1] + densities[:, 1:]) / 2, activation)
    depths_mid = (depths[:, :-1] + depths[:, 1:]) / 2
    alpha = 1 - torch.exp(-dens_mid * deltas)
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha + 1e-10], 1), 1)[:, :-1]
    weights = alpha * trans
    composite = (weights * values_mid).sum(1)
    opacity = weights.sum(1)
    depth = (weights * depths_mid).sum(1) / opacity
    depth = torch.nan_to_num(depth, float("inf")).clamp(depths.min(), depths.max())
    return composite, depth, opacity, weights


def sample_pdf(bins: torch.Tensor, weights: torch.Tensor, n: int, deterministic: bool = True,
               eps: float = 1e-5) -> torch.Tensor:
    """Inverse-CDF sampling of ``n`` depths from piecewise-constant weights between ``bins``.

    Shape: bins (N, K+1), weights (N, K) -> (N, n)
    """
    w = weights + eps
    pdf = w / w.sum(-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, -1)], -1)
    if deterministic:
        u = torch.linspace(0, 1, n, dtype=bins.dtype, device=bins.device).expand(cdf.shape[0], n)
    else:
        u = torch.rand(cdf.shape[0], n, dtype=bins.dtype, device=bins.device)
    u = u.contiguous()
    idx = torch.searchsorted(cdf.contiguous(), u, right=True)
    below = (idx - 1).clamp_min(0)
    above = idx.clamp_max(cdf.shape[-1] - 1)
    cdf_b, cdf_a = cdf.gather(1, below), cdf.gather(1, above)
    bin_b, bin_a = bins.gather(1, below), bins.gather(1, above)
    denom = cdf_a - cdf_b
    denom = torch.where(denom < eps, torch.ones_like(denom), denom)
    return bin_b + (u - cdf_b) / denom * (bin_a - bin_b)


def stratified_depths(near: torch.Tensor, far: torch.Tensor, n: int, perturb: bool) -> torch.Tensor:
    """``n`` depths per ray from ``near`` to ``far`` (EG3D: linspace plus jitter of one step).

    Shape: near, far (N, 1) -> (N, n)
    """
    t = torch.linspace(0, 1, n, dtype=near.dtype, device=near.device)
    depths = near + (far - near) * t
    if perturb:
        depths = depths + torch.rand_like(depths) * (far - near) / max(n - 1, 1)
    return depths


def point_features(planes: torch.Tensor, decoder: Decoder, points: torch.Tensor, box_warp: float = 1.0) -> torch.Tensor:
    """The features a decoder reads at world points: its own ``sample_features`` when it has
    one, else the tri-plane sampled and aggregated as it asks.  Shape: (B, M, 3) -> (B, M, C)."""
    sampler = getattr(decoder, "sample_features", None)
    if sampler is not None:
        return sampler(planes, points, box_warp)
    return triplane.sample(planes, points, getattr(decoder, "aggregate", "sum"), box_warp)


def decode_points(planes: torch.Tensor, decoder: Decoder, points: torch.Tensor, dirs: torch.Tensor | None = None,
                  box_warp: float = 1.0) -> DecoderOutput:
    """Decode world points (mesh extraction, vertex colours, probes).  ``dirs`` default to
    looking down -z, at the face.  Shape: points (B, M, 3) -> DecoderOutput of (B, M, .)."""
    if dirs is None:
        dirs = torch.zeros_like(points)
        dirs[..., 2] = -1.0
    return decoder(point_features(planes, decoder, points, box_warp), points, dirs)


class _Evaluator:
    """Decode points along rays of one chunk."""

    def __init__(self, planes: torch.Tensor, decoder: Decoder, box_warp: float, precision: str | None = None):
        self.planes, self.decoder, self.box_warp = planes, decoder, box_warp
        self.aggregate = getattr(decoder, "aggregate", "sum")
        self.precision = precision

    def autocast(self):
        if self.precision is None:
            return contextlib.nullcontext()
        dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}.get(self.precision)
        if dtype is None:
            raise ValueError(f"precision must be None, 'float16' or 'bfloat16', not {self.precision!r}")
        if self.planes.device.type != "cuda" and dtype is torch.float16:
            raise ValueError("float16 rendering needs a CUDA device; use bfloat16 on the CPU")
        return torch.autocast(device_type=self.planes.device.type, dtype=dtype)

    def __call__(self, b: int, origins: torch.Tensor, dirs: torch.Tensor, depths: torch.Tensor) -> DecoderOutput:
        # origins, dirs (N, 3); depths (N, S)
        N, S = depths.shape
        pts = origins[:, None] + depths[..., None] * dirs[:, None]
        d = dirs[:, None].expand(N, S, 3)
        with self.autocast():
            feats = point_features(self.planes[b:b + 1], self.decoder, pts.reshape(1, -1, 3), self.box_warp)
            out = self.decoder(feats, pts.reshape(1, -1, 3), d.reshape(1, -1, 3))
        sem = None if out.semantics is None else out.semantics.reshape(N, S, -1).float()
        return DecoderOutput(out.density.reshape(N, S, 1).float(), out.rgb.reshape(N, S, -1).float(), sem)


def _sample_weights(depths: torch.Tensor, densities: torch.Tensor, activation: str
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample compositing weights equivalent to :func:`march`'s midpoint scheme: the value
    at midpoint i is the mean of samples i and i+1, so sample j receives half of the weights of
    the two intervals it bounds.  Compositing then is one weighted sum over the samples, with
    no per-interval copy of every channel.

    Shape: depths (N, S), densities (N, S, 1) -> weights (N, S), depth (N, 1), opacity (N, 1)
    """
    _, depth, opacity, w_mid = march(depths[..., None], densities, densities, activation)
    w_mid = w_mid[..., 0]
    w = torch.zeros_like(depths)
    w[:, :-1] += 0.5 * w_mid
    w[:, 1:] += 0.5 * w_mid
    return w, depth, opacity


def _composite(w: torch.Tensor, out: DecoderOutput) -> tuple[torch.Tensor, torch.Tensor | None]:
    rgb = torch.einsum("ns,nsc->nc", w, out.rgb)
    sem = None
    if out.semantics is not None:
        sem = torch.einsum("ns,nsc->nc", w, torch.softmax(out.semantics, -1))
    return rgb, sem


def _render_rays_surface(ev: _Evaluator, b: int, origins: torch.Tensor, dirs: torch.Tensor, depths: torch.Tensor,
                         options: RenderOptions, act: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """``shading="surface"`` (see RenderOptions): weights from the densities alone, one decode per
    ray at the weights' mean depth.  A decoder may integrate its own density along the rays
    (``surface_depth(planes, origins, dirs, depths, box_warp) -> (depth, opacity)`` or None,
    on the same midpoint scheme as :func:`march`)."""
    density = ev.decoder.density_at

    def sigma(d: torch.Tensor) -> torch.Tensor:
        N, S = d.shape
        pts = (origins[:, None] + d[..., None] * dirs[:, None]).reshape(1, -1, 3)
        with ev.autocast():
            return density(ev.planes[b:b + 1], pts, ev.box_warp).reshape(N, S, 1).float()

    own = getattr(ev.decoder, "surface_depth", None)
    if own is not None and options.n_importance == 0 and act == "identity" and ev.precision is None:
        got = own(ev.planes[b:b + 1], origins, dirs, depths, ev.box_warp)
        if got is not None:
            depth, opacity = got
            return _shade_at(ev, b, origins, dirs, depth, opacity)
    dens = sigma(depths)
    if options.n_importance > 0:
        _, _, _, w = march(depths[..., None], dens, dens, act)
        w = F.max_pool1d(w[..., 0][:, None].float(), 2, 1, padding=1)
        w = F.avg_pool1d(w, 2, 1)[:, 0] + 0.01
        mids = (depths[:, 1:] + depths[:, :-1]) / 2
        fine = sample_pdf(mids, w[:, 1:-1].to(mids.dtype), options.n_importance,
                          deterministic=not options.perturb).detach()
        depths, order = torch.sort(torch.cat([depths, fine], 1), 1)
        dens = torch.cat([dens, sigma(fine)], 1).gather(1, order[..., None])
    _, depth, opacity, _ = march(depths[..., None], dens, dens, act)
    return _shade_at(ev, b, origins, dirs, depth, opacity)


def _shade_at(ev: _Evaluator, b: int, origins: torch.Tensor, dirs: torch.Tensor, depth: torch.Tensor,
              opacity: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    out = ev(b, origins, dirs, depth)
    rgb = out.rgb[:, 0] * opacity
    if out.semantics is None:
        return rgb, depth, opacity, rgb.shape[-1]
    sem = torch.softmax(out.semantics[:, 0].contiguous(), -1) * opacity     # (contiguous: 2x faster)
    return torch.cat([rgb, sem], -1), depth, opacity, rgb.shape[-1]


def render_rays(planes: torch.Tensor, decoder: Decoder, b: int, origins: torch.Tensor, dirs: torch.Tensor,
                options: RenderOptions, near: torch.Tensor | None = None,
                far: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Render N rays of batch item ``b``; returns (values (N, C[+19]), depth (N, 1),
    opacity (N, 1), number of rgb channels)."""
    ev = _Evaluator(planes, decoder, options.box_warp, options.precision)
    act = getattr(decoder, "density_activation", "softplus")
    N = origins.shape[0]
    if near is None:
        near = torch.full((N, 1), options.ray_start, dtype=origins.dtype, device=origins.device)
        far = torch.full((N, 1), options.ray_end, dtype=origins.dtype, device=origins.device)
    depths = stratified_depths(near, far, options.n_coarse, options.perturb)
    if options.shading not in ("samples", "surface"):
        raise ValueError(f"shading must be 'samples' or 'surface', not {options.shading!r}")
    if options.shading == "surface" and callable(getattr(decoder, "density_at", None)):
        return _render_rays_surface(ev, b, origins, dirs, depths, options, act)
    out = ev(b, origins, dirs, depths)
    if options.n_importance > 0:
        _, _, _, w = march(depths[..., None], out.density, out.density, act)
        # EG3D smooths the coarse weights (max-pool then average) before drawing from them.
        w = F.max_pool1d(w[..., 0][:, None].float(), 2, 1, padding=1)
        w = F.avg_pool1d(w, 2, 1)[:, 0] + 0.01
        mids = (depths[:, 1:] + depths[:, :-1]) / 2
        fine = sample_pdf(mids, w[:, 1:-1].to(mids.dtype), options.n_importance,
                          deterministic=not options.perturb).detach()
        fine_out = ev(b, origins, dirs, fine)
        # Weights are computed on the merged, sorted samples (one channel to reorder) and then
        # scattered back, so the wide colour/semantic tensors are never concatenated or sorted.
        all_depths, order = torch.sort(torch.cat([depths, fine], 1), 1)
        dens = torch.cat([out.density, fine_out.density], 1).gather(1, order[..., None])
        w_sorted, depth, opacity = _sample_weights(all_depths, dens, act)
        w_all = torch.zeros_like(w_sorted).scatter(1, order, w_sorted)
        Sc = depths.shape[1]
        rgb_c, sem_c = _composite(w_all[:, :Sc], out)
        rgb_f, sem_f = _composite(w_all[:, Sc:], fine_out)
        rgb = rgb_c + rgb_f
        sem = None if sem_c is None else sem_c + sem_f
    else:
        w, depth, opacity = _sample_weights(depths, out.density, act)
        rgb, sem = _composite(w, out)
    values = rgb if sem is None else torch.cat([rgb, sem], -1)
    return values, depth, opacity, rgb.shape[-1]


def render(planes: torch.Tensor, decoder: Decoder, camera: Camera | list[Camera], resolution: int,
           options: RenderOptions = RenderOptions(),
           progress: Callable[[float], None] | None = None,
           bounds: torch.Tensor | None = None) -> RenderResult:
    """Render a tri-plane from a camera (or one camera per batch item).

    ``progress(fraction)`` is called after every chunk; raising from it (for example a
    cancellation exception) stops the render between chunks.  ``bounds`` gives every ray's
    (near, far) interval, e.g. from a rasterised proxy of the surface, in place of the
    decoder's ``ray_bounds``; a ray with far <= near hits nothing.

    Shape: planes (B, 3, C, R, R), bounds (B, resolution**2, 2) row-major or None
           -> RenderResult with (B, ., resolution, resolution) images
    """
    triplane.check_triplane(planes)
    B = planes.shape[0]
    cams = camera if isinstance(camera, (list, tuple)) else [camera] * B
    if len(cams) != B:
        raise ValueError(f"{len(cams)} cameras for a batch of {B} tri-planes")
    dev, dtype = planes.device, torch.float32
    c2w = torch.stack([c.cam2world.to(dev, dtype) for c in cams])
    K = torch.stack([c.K.to(dev, dtype) for c in cams])
    origins, dirs = camera_rays(c2w, K, resolution)
    M = resolution * resolution
    bounds_fn = getattr(decoder, "ray_bounds", None) if options.use_bounds else None
    if bounds is not None:
        if tuple(bounds.shape) != (B, M, 2):
            raise ValueError(f"bounds must have shape {(B, M, 2)}, got {tuple(bounds.shape)}")
        bounds = bounds.to(dev, dtype)

    rgb_chunks, sem_chunks, depth_out, opac_out = [], [], [], []
    total_samples = 0
    n_rgb = None
    n_chunks = B * ((M + options.chunk - 1) // options.chunk)
    done = 0
    for b in range(B):
        vals_b, depth_b, opac_b = [], [], []
        for s in range(0, M, options.chunk):
            o, d = origins[b, s:s + options.chunk], dirs[b, s:s + options.chunk]
            n = o.shape[0]
            if bounds is not None or bounds_fn is not None:
                if bounds is not None:
                    near, far = bounds[b, s:s + options.chunk, 0], bounds[b, s:s + options.chunk, 1]
                    hit = far > near
                else:
                    near, far, hit = bounds_fn(planes[b:b + 1], o, d)
                idx = hit.nonzero()[:, 0]
                if idx.numel():
                    v, dep, op, n_rgb = render_rays(planes, decoder, b, o[idx], d[idx], options,
                                                    near[idx, None], far[idx, None])
                    total_samples += idx.numel() * (options.n_coarse + options.n_importance)
                    full_v = v.new_zeros(n, v.shape[1]).index_copy(0, idx, v)
                    full_d = dep.new_full((n, 1), options.ray_end).index_copy(0, idx, dep)
                    full_o = op.new_zeros(n, 1).index_copy(0, idx, op)
                else:
                    n_rgb, n_sem = _decoder_channels(planes, decoder, options)
                    full_v = o.new_zeros(n, n_rgb + n_sem)
                    full_d = o.new_full((n, 1), options.ray_end)
                    full_o = o.new_zeros(n, 1)
            else:
                full_v, full_d, full_o, n_rgb = render_rays(planes, decoder, b, o, d, options)
                total_samples += n * (options.n_coarse + options.n_importance)
            vals_b.append(full_v)
            depth_b.append(full_d)
            opac_b.append(full_o)
            done += 1
            if progress is not None:
                progress(done / n_chunks)
        # (one chunk, the usual view: no copy of the ~20 MB of values)
        cat = lambda xs: xs[0] if len(xs) == 1 else torch.cat(xs)   # noqa: E731
        vals = cat(vals_b)
        rgb_chunks.append(vals[:, :n_rgb])
        sem_chunks.append(vals[:, n_rgb:] if vals.shape[1] > n_rgb else None)
        depth_out.append(cat(depth_b))
        opac_out.append(cat(opac_b))

    def img(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(resolution, resolution, -1).permute(2, 0, 1)

    def batch(xs: list[torch.Tensor]) -> torch.Tensor:
        # one image: a view of the pixel-major memory, no copy (its channels stay contiguous
        # per pixel, which makes a per-pixel arg-max over the classes cheap)
        return img(xs[0])[None] if len(xs) == 1 else torch.stack([img(x) for x in xs])

    rgb = batch(rgb_chunks)
    opacity = batch(opac_out)
    depth = batch(depth_out)
    depth = torch.where(opacity > 1e-4, depth, torch.full_like(depth, options.ray_end))
    if options.background is not None:
        bg = torch.tensor(options.background, dtype=rgb.dtype, device=dev)
        if bg.numel() == 1:
            bg = bg.expand(rgb.shape[1])
        if bg.numel() == rgb.shape[1]:
            rgb = rgb + (1 - opacity) * bg.view(1, -1, 1, 1)
    semantics = None
    if sem_chunks[0] is not None:
        semantics = batch(sem_chunks)
        if options.semantic_background:
            semantics = semantics.clone()
            semantics[:, :1] = semantics[:, :1] + (1 - opacity)
    return RenderResult(rgb, semantics, depth, opacity, total_samples / max(B * M, 1))


def _decoder_channels(planes: torch.Tensor, decoder: Decoder, options: RenderOptions) -> tuple[int, int]:
    """Channel counts of a decoder, found by decoding one point (used when a chunk hits nothing)."""
    pts = torch.zeros(1, 1, 3, dtype=torch.float32, device=planes.device)
    out = decode_points(planes[:1], decoder, pts, box_warp=options.box_warp)
    return out.rgb.shape[-1], 0 if out.semantics is None else NUM_CLASSES
