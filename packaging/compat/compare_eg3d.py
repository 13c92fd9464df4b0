"""Compare TriFace Studio's EG3D networks with NVIDIA's reference implementation.

The reference code never enters this project: point this script at a local EG3D checkout
(https://github.com/NVlabs/eg3d, the folder that contains ``training/`` and ``torch_utils/``).

    python packaging/compat/compare_eg3d.py /path/to/eg3d/eg3d [--device cpu] [--small]

It builds the reference TriPlaneGenerator with the released FFHQ 512 configuration (random
weights), loads its state_dict into ours with ``strict=True`` (so every parameter name and
shape must match), then prints max abs differences of: mapping ws, tri-planes, OSG decoder
outputs at random points, a full volume render (reference ImportanceRenderer vs the
project's core renderer) at the neural rendering resolution and the super-resolved image.
"""

from __future__ import annotations

import argparse
import sys

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("eg3d_dir")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--render-resolution", type=int, default=32,
                    help="neural rendering resolution for the render comparison (128 in the real model)")
    ap.add_argument("--sr-module", default="SuperresolutionHybrid8XDC")
    args = ap.parse_args()
    sys.path.insert(0, args.eg3d_dir)
    from training.triplane import TriPlaneGenerator as RefG  # noqa: E402  (reference code)

    from triface_studio.core.cameras import Camera
    from triface_studio.core.rendering import RenderOptions, render
    from triface_studio.models.neural.eg3d import EG3DConfig, TriPlaneGenerator

    dev = torch.device(args.device)
    torch.manual_seed(0)
    rk = {"image_resolution": 512, "disparity_space_sampling": False, "clamp_mode": "softplus",
          "superresolution_module": f"training.superresolution.{args.sr_module}", "c_gen_conditioning_zero": False,
          "gpc_reg_prob": 0.5, "c_scale": 1.0, "superresolution_noise_mode": "none", "density_reg": 0.25,
          "density_reg_p_dist": 0.004, "reg_type": "l1", "decoder_lr_mul": 1.0, "sr_antialias": True,
          "depth_resolution": 48, "depth_resolution_importance": 48, "ray_start": 2.25, "ray_end": 3.3,
          "box_warp": 1, "avg_camera_radius": 2.7, "avg_camera_pivot": [0, 0, 0.2]}
    init_kwargs = dict(z_dim=512, c_dim=25, w_dim=512, img_resolution=512, img_channels=3, sr_num_fp16_res=4,
                       mapping_kwargs={"num_layers": 2}, rendering_kwargs=rk,
                       sr_kwargs={"channel_base": 32768, "channel_max": 512, "fused_modconv_default": "inference_only"},
                       channel_base=32768, channel_max=512, fused_modconv_default="inference_only",
                       num_fp16_res=0, conv_clamp=None)
    ref = RefG(**init_kwargs).eval().to(dev)
    # Random, non-trivial values everywhere (noise strengths and biases start at zero).
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name.endswith("noise_strength") or name.endswith(".bias"):
                p.copy_(torch.randn_like(p) * 0.1)
        ref.backbone.mapping.w_avg.copy_(torch.randn_like(ref.backbone.mapping.w_avg))
    cfg = EG3DConfig.from_eg3d_init_kwargs(init_kwargs)
    ours = TriPlaneGenerator(cfg).eval().to(dev)
    missing = ours.load_state_dict(ref.state_dict(), strict=True)
    print("state_dict names/shapes: identical", missing)

    z = torch.randn(2, 512, device=dev)
    cams = [Camera.orbit(10, -5), Camera.orbit(-20, 8)]
    c = torch.stack([cam.label() for cam in cams]).to(dev)
    res = {}
    with torch.no_grad():
        ws_r = ref.mapping(z, c, truncation_psi=0.7)
        ws_o = ours.mapping(z, c, truncation_psi=0.7)
        res["mapping ws"] = (ws_r - ws_o).abs().max().item()
        pr = ref.backbone.synthesis(ws_r, noise_mode="const")
        pr = pr.view(len(pr), 3, 32, pr.shape[-2], pr.shape[-1])
        po = ours.planes(ws_r, noise_mode="const")
        res["tri-planes"] = (pr - po).abs().max().item()
        res["tri-planes (scale: max abs)"] = pr.abs().max().item()
        # decoder on random points (reference sampling + decoder vs core sampling + ours)
        from training.volumetric_rendering.renderer import sample_from_planes, generate_planes

        from triface_studio.core import triplane
        pts = torch.rand(2, 4096, 3, device=dev) - 0.5
        feats_r = sample_from_planes(generate_planes().to(dev), pr, pts, box_warp=1)
        per_plane = (feats_r - triplane.sample(pr, pts, "none")).abs().amax(dim=(0, 2, 3))
        for i, name in enumerate(triplane.PLANE_NAMES):
            res[f"core sampling, plane {i} ({name})"] = per_plane[i].item()
        out_r = ref.decoder(feats_r, None)
        out_o = ours.decoder(triplane.sample(pr, pts, "mean"), pts, pts)
        res["decoder sigma"] = (out_r["sigma"] - out_o.density).abs().max().item()
        res["decoder features"] = (out_r["rgb"] - out_o.rgb).abs().max().item()
        # Full render at a small neural rendering resolution.  EG3D always jitters its
        # stratified samples and draws importance samples at random; for a deterministic
        # comparison the reference renderer is run without jitter and with det=True, which is
        # what the core renderer does when RenderOptions.perturb is False.
        import training.volumetric_rendering.renderer as ref_renderer

        ImportanceRenderer = ref_renderer.ImportanceRenderer
        orig_strat, orig_pdf = ImportanceRenderer.sample_stratified, ImportanceRenderer.sample_pdf

        def strat(self, *a, **k):
            saved = ref_renderer.torch.rand_like
            ref_renderer.torch.rand_like = torch.zeros_like
            try:
                return orig_strat(self, *a, **k)
            finally:
                ref_renderer.torch.rand_like = saved

        def pdf(self, bins, weights, n, det=False, eps=1e-5):
            return orig_pdf(self, bins, weights, n, det=True, eps=eps)

        ImportanceRenderer.sample_stratified, ImportanceRenderer.sample_pdf = strat, pdf
        r = args.render_resolution
        ref_out = ref.synthesis(ws_r, c, neural_rendering_resolution=r, noise_mode="const")
        opts = RenderOptions(n_coarse=48, n_importance=48, use_bounds=False)
        ro = render(pr, ours.decoder, cams, r, opts)
        feat_img = ro.rgb * 2 - 1          # EG3D's ray marcher maps composites to [-1, 1]
        res["render features"] = (ref_out["image_raw"] - feat_img[:, :3]).abs().max().item()
        res["render depth"] = (ref_out["image_depth"] - ro.depth).abs().max().item()
        # super-resolution from the same feature image
        sr_r = ref.superresolution(feat_img[:, :3], feat_img, ws_r, noise_mode="none")
        sr_o = ours.super_resolve(ro.rgb, ws_r)
        res["super-resolution 512"] = (sr_r - sr_o).abs().max().item()
        res["super-resolution (scale: max abs)"] = sr_r.abs().max().item()
    for k, v in res.items():
        print(f"{k:36s} {v:.3e}")


if __name__ == "__main__":
    main()
