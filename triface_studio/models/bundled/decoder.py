"""Analytic bundled decoders f^s / f^c for the height-field tri-plane (see encoder.py)."""

from __future__ import annotations

import math
import weakref

import torch

from triface_studio.core import triplane
from triface_studio.core.rendering import DecoderOutput

from .encoder import BACK_K, ROUND_MID, WALL_DEPTH, WALL_K, back_texture, decoded_xy, wall_texture


def _owner(planes: torch.Tensor) -> torch.Tensor:
    """The tensor that owns ``planes``' memory: the renderer passes views (``planes[b:b + 1]``),
    a new Python object per chunk, so the caches below hold weak references to the owner."""
    return planes if planes._base is None else planes._base


class BundledDecoder(torch.nn.Module):
    """density = s * sigmoid(k (z_front - z)) * sigmoid(k (z - z_back)); rgb and semantic logits
    read straight from the summed features (the XY plane plus the lift's prior, which
    :meth:`sample_features` adds), behind the head's middle depth blended towards its back half
    (:meth:`back`).  ``ray_bounds`` clips rays to the head's box
    (cached per tri-plane) so rays that miss cost nothing."""

    aggregate = "sum"
    density_activation = "identity"

    def __init__(self, density: float = 400.0, k: float = 300.0):
        super().__init__()
        self.density, self.k = density, k
        self._bounds_cache: tuple[int, int, torch.Tensor] | None = None

    def forward(self, features: torch.Tensor, points: torch.Tensor, dirs: torch.Tensor) -> DecoderOutput:
        d = self.density * torch.sigmoid(self.k * features[..., 0:1]) * torch.sigmoid(self.k * features[..., 1:2])
        d = d * (points.abs() < triplane.BOX_HALF).all(-1, keepdim=True)
        return DecoderOutput(d, features[..., 2:5].clamp(0, 1), features[..., 5:])

    def effective(self, planes: torch.Tensor) -> torch.Tensor:
        """The tri-plane with the XY prior added back (see encoder.xy_prior), cached per tensor
        version; what every lookup reads."""
        key = (planes.data_ptr(), planes._version, tuple(planes.shape), planes.dtype, planes.device)
        # a freed tri-plane's memory is reused by the next one: the key alone would hand back
        # the previous head, so the cache also holds a weak reference to its tensor
        src = getattr(self, "_eff_src", None)
        if getattr(self, "_eff_key", (None,))[0] != key or src is None or src() is not _owner(planes):
            self._eff_src = weakref.ref(_owner(planes))
            eff = planes.clone()
            eff[:, 0] = decoded_xy(planes)
            live = eff[0, 1:].flatten(-2).abs().amax(-1) > 0                  # (2, C)
            self._live = [None] + [live[k].nonzero()[:, 0].tolist() for k in range(2)]
            # (the key the caches derived from it compare with: counted, so that a new head in a
            # freed one's memory, whose key is the same, is still a new key for them)
            self._eff_gen = getattr(self, "_eff_gen", 0) + 1
            self._eff, self._eff_key = eff, (key, self._eff_gen)
        return self._eff

    def density_at(self, planes: torch.Tensor, points: torch.Tensor, box_warp: float = 1.0) -> torch.Tensor:
        """The raw density alone (what ``forward`` returns as ``density``), reading the two
        depth channels of the three planes only.  Shape: points (B, M, 3) -> (B, M, 1)."""
        eff = self.effective(planes)
        if getattr(self, "_eff2_key", None) != self._eff_key:
            self._eff2, self._eff2_key = eff[:, :, :2].contiguous(), self._eff_key
        f = triplane.sample(self._eff2 if planes.shape[0] == 1 else eff[:, :, :2], points, "sum", box_warp)
        d = self.density * torch.sigmoid(self.k * f[..., 0:1]) * torch.sigmoid(self.k * f[..., 1:2])
        return d * (points.abs() < triplane.BOX_HALF).all(-1, keepdim=True)

    def surface_depth(self, planes: torch.Tensor, origins: torch.Tensor, dirs: torch.Tensor, depths: torch.Tensor,
                      box_warp: float = 1.0):
        """Mean depth and opacity of rays (the "surface" shading of core.rendering) from the
        compiled integrator (:mod:`.march`); None where it cannot run (numba missing, a batch,
        a box warp, another device), and the renderer then integrates :meth:`density_at`.
        Shape: origins, dirs (N, 3), depths (N, S) -> depth (N, 1), opacity (N, 1)"""
        from triface_studio.core import raster

        if not raster.AVAILABLE or planes.shape[0] != 1 or box_warp != 1.0 or planes.device.type != "cpu":
            return None
        from .march import march_heightfield

        self.effective(planes)
        if getattr(self, "_np2_key", None) != self._eff_key:
            self._np2 = self._eff[0, :, :2].float().contiguous().numpy()
            self._np2_key = self._eff_key
        d, o = march_heightfield(self._np2, origins.detach().cpu().numpy(), dirs.detach().cpu().numpy(),
                                 depths.detach().cpu().numpy(), self.density, self.k, triplane.BOX_HALF)
        return (torch.from_numpy(d)[:, None].to(origins.dtype), torch.from_numpy(o)[:, None].to(origins.dtype))

    def sample_features(self, planes: torch.Tensor, points: torch.Tensor, box_warp: float = 1.0,
                        colour: bool = True) -> torch.Tensor:
        """The summed features with the XY prior, reading from the XZ and ZX planes only their
        non-zero channels (the z ramps of the lift, two of the 24); exact for any tri-plane.
        ``colour=False``: the same densities and semantic logits, the colour without the rim's
        wall and the back half's blur (see :class:`SemanticsOnly`)."""
        eff = self.effective(planes)
        if planes.shape[0] != 1:
            return triplane.sample(eff, points, "sum", box_warp)
        f = triplane.sample_sum_channels(eff, points, self._live, box_warp)
        return self._with_wall_and_back(planes, points, f, box_warp, colour)

    #: the back half's weight below which a point keeps the front's colour alone (no lookup),
    #: and the depth in front of ROUND_MID where the weight falls to it
    BACK_MIN = 2.5e-3
    BACK_REACH = math.log((1 - BACK_MIN) / BACK_MIN) / BACK_K
    #: how far above WALL_DEPTH (world units) a point's wall weight is still looked up (the same
    #: BACK_MIN)
    WALL_REACH_UP = math.log((1 - BACK_MIN) / BACK_MIN) / WALL_K

    def _per_planes(self, name: str, planes: torch.Tensor, build) -> torch.Tensor:
        """``build()``'s texture, cached under ``name`` per tri-plane like :meth:`effective`."""
        self.effective(planes)
        cached = getattr(self, name, None)
        if cached is None or cached[0] != self._eff_key:
            cached = (self._eff_key, build()[None].to(planes.dtype))
            setattr(self, name, cached)
        return cached[1]

    def wall(self, planes: torch.Tensor) -> torch.Tensor:
        """(1, 3, r, r) colour change of the head's steep rim (:func:`encoder.wall_texture`),
        cached per tri-plane."""
        return self._per_planes("_wall", planes, lambda: wall_texture(self._eff[0, 0]))

    def back(self, planes: torch.Tensor) -> torch.Tensor:
        """(1, 3 + classes, r, r) colour and logits of the head's back half
        (:func:`encoder.back_texture`), cached per tri-plane like :meth:`effective`."""
        def build():
            # (from the rim's wall colours: the back half's rim is as steep as the front's)
            xy = self._eff[0, 0].clone()
            xy[2:5] += torch.nn.functional.interpolate(self.wall(planes).to(xy.dtype), size=xy.shape[-2:],
                                                       mode="bilinear", align_corners=False)[0]
            return back_texture(xy)
        return self._per_planes("_back", planes, build)

    def back_logits(self, planes: torch.Tensor) -> torch.Tensor:
        """:meth:`back`'s logits, its colour left unblurred (``back_texture(colour=False)``):
        all a render for semantics only reads of it."""
        return self._per_planes("_back_logits", planes, lambda: back_texture(self._eff[0, 0], colour=False))

    @staticmethod
    def _lookup(tex: torch.Tensor, points: torch.Tensor, sel: torch.Tensor, box_warp: float) -> torch.Tensor:
        """``tex`` (1, C, r, r) read bilinearly at the XY of points ``sel``. -> (n, C)"""
        grid = (points[0, sel, :2] * (2.0 / box_warp)).to(tex.dtype)[None, None]       # (1, 1, n, 2)
        return torch.nn.functional.grid_sample(tex, grid, mode="bilinear", padding_mode="border",
                                               align_corners=False)[0, :, 0].T

    def _with_wall_and_back(self, planes: torch.Tensor, points: torch.Tensor, f: torch.Tensor,
                            box_warp: float, colour: bool = True) -> torch.Tensor:
        """The colour of points deeper than WALL_DEPTH below the front surface (``f[..., 0]`` is
        z_front - z) plus the rim's wall texture, weight sigmoid(WALL_K (depth - WALL_DEPTH));
        then colour and logits of points behind ROUND_MID blended towards the back half's,
        weight sigmoid(BACK_K (ROUND_MID - z)).  Each is looked up only where its weight is above
        BACK_MIN.  ``colour=False`` leaves the wall out (it is colour only) and reads the back
        half's logits without its colour blur."""
        depth, z = f[0, :, 0], points[0, :, 2] / box_warp
        walled = ((depth > WALL_DEPTH - self.WALL_REACH_UP) if colour else torch.zeros_like(depth, dtype=torch.bool)) \
            .nonzero()[:, 0]
        behind = (z < ROUND_MID + self.BACK_REACH).nonzero()[:, 0]
        if walled.numel() == 0 and behind.numel() == 0:
            return f
        f = f.clone()
        if walled.numel():
            w = torch.sigmoid(WALL_K * (depth[walled] - WALL_DEPTH))[:, None].to(f.dtype)
            f[0, walled, 2:5] += w * self._lookup(self.wall(planes), points, walled, box_warp).to(f.dtype)
        if behind.numel():
            w = torch.sigmoid(BACK_K * (ROUND_MID - z[behind]))[:, None].to(f.dtype)
            b = self._lookup(self.back(planes) if colour else self.back_logits(planes), points, behind,
                             box_warp).to(f.dtype)
            f[0, behind, 2:] = (1 - w) * f[0, behind, 2:] + w * b
        return f

    def head_box(self, planes: torch.Tensor) -> torch.Tensor:
        """(2, 3) min/max corner of the occupied region, cached per tri-plane tensor."""
        key = (planes.data_ptr(), planes._version)
        self.effective(planes)
        if self._bounds_cache is not None and self._bounds_cache[:2] == key and self._bounds_src() is _owner(planes):
            return self._bounds_cache[2]
        R = planes.shape[-1]
        eff = self.effective(planes)
        front, back = eff[0, 0, 0], -eff[0, 0, 1]
        occ = front > back
        t = triplane.texel_centres(R, dtype=planes.dtype, device=planes.device)
        if not occ.any():
            box = torch.zeros(2, 3, dtype=planes.dtype, device=planes.device)
        else:
            rows, cols = occ.any(1), occ.any(0)
            h = 1.0 / R
            xs, ys = t[cols], t[rows]
            box = torch.tensor([[float(xs.min()) - h, float(ys.min()) - h, float(back[occ].min()) - 0.01],
                                [float(xs.max()) + h, float(ys.max()) + h, float(front[occ].max()) + 0.01]],
                               dtype=planes.dtype, device=planes.device)
            box = box.clamp(-triplane.BOX_HALF, triplane.BOX_HALF)
        self._bounds_cache, self._bounds_src = (key[0], key[1], box), weakref.ref(_owner(planes))
        return box

    def _height_maps(self, planes: torch.Tensor) -> torch.Tensor:
        """(1, 2, R, R) z_front / z_back maps, cached per tri-plane tensor."""
        key = (planes.data_ptr(), planes._version, "maps")
        if getattr(self, "_maps_key", None) == key and self._maps_src() is _owner(planes):
            return self._maps
        eff = self.effective(planes)
        front, back = eff[0, 0, 0][None, None], -eff[0, 0, 1][None, None]
        self._maps, self._maps_key = torch.cat([front, back], 1).float(), key
        self._maps_src = weakref.ref(_owner(planes))
        return self._maps

    #: steps of the height-field march that finds where each ray first enters the head
    march_steps = 40

    def ray_bounds(self, planes: torch.Tensor, origins: torch.Tensor, dirs: torch.Tensor):
        """Per ray: the box interval, then a coarse march through the cached height field finds
        the first step inside the head; the returned interval brackets that step tightly.
        Rays that never enter the head are not hit (they cost nothing downstream)."""
        box = self.head_box(planes).to(origins.dtype)
        inv = 1.0 / torch.where(dirs.abs() < 1e-9, torch.full_like(dirs, 1e-9), dirs)
        t0 = (box[0] - origins) * inv
        t1 = (box[1] - origins) * inv
        near = torch.minimum(t0, t1).amax(-1).clamp_min(0)
        far = torch.maximum(t0, t1).amin(-1)
        hit = far > near + 1e-6
        N = origins.shape[0]
        out_near = near.clone()
        out_far = near + 1e-3
        idx = hit.nonzero()[:, 0]
        if idx.numel():
            o, d, n0, f0 = origins[idx], dirs[idx], near[idx], far[idx]
            S = self.march_steps
            steps = torch.linspace(0, 1, S, dtype=o.dtype, device=o.device)
            t = n0[:, None] + (f0 - n0)[:, None] * steps                      # (n, S)
            p = o[:, None] + d[:, None] * t[..., None]                         # (n, S, 3)
            grid = (p[..., :2] * (2.0 / (2 * triplane.BOX_HALF)))[None].float()
            hm = torch.nn.functional.grid_sample(self._height_maps(planes), grid, mode="bilinear",
                                                 padding_mode="border", align_corners=False)[0]  # (2, n, S)
            z = p[..., 2].float()
            inside = (z < hm[0] + 0.004) & (z > hm[1] - 0.004)
            any_in = inside.any(1)
            first = torch.where(any_in, inside.float().argmax(1), torch.zeros_like(any_in, dtype=torch.long))
            dt = (f0 - n0) / (S - 1)
            t_in = t.gather(1, first[:, None])[:, 0]
            tn = (t_in - 1.5 * dt).clamp_min(n0)
            tf = torch.minimum(t_in + 1.5 * dt, f0)
            out_near[idx] = tn
            out_far[idx] = tf
            hit = hit.clone()
            hit[idx] = any_in
        return out_near, torch.where(hit, out_far, out_near + 1e-3), hit


class SemanticsOnly:
    """A :class:`BundledDecoder` for a render whose colour is not read (the edit's frontal
    semantics at 96 px): the same densities and semantic logits, so the same semantics, without
    the rim's wall colour and the back half's colour blur, which a new tri-plane's first render
    otherwise builds (~0.15 s of the two such renders of an edit on a slow day).  A view of the
    decoder, made per render: its caches are the decoder's (the logits-only back half under a name
    of its own), and no flag is set on the shared decoder."""

    def __init__(self, decoder: BundledDecoder):
        self._decoder = decoder

    def __getattr__(self, name):
        return getattr(self._decoder, name)

    def __call__(self, *args, **kwargs):
        return self._decoder(*args, **kwargs)

    def sample_features(self, planes: torch.Tensor, points: torch.Tensor, box_warp: float = 1.0) -> torch.Tensor:
        return self._decoder.sample_features(planes, points, box_warp, colour=False)
