"""Training pairs rendered on the GPU itself, in torch: for a short GPU session, where the numpy
renderer (tens of ms per pair on one CPU core) would starve the GPU.

The same kind of data as :mod:`edgeflow.synthetic` (issue 14), simplified for batch rendering:

* textures per sample: the *training* split only (:data:`edgeflow.synthetic.families.TRAIN_PHOTOS`
  cropped on the device, and on-device versions of the training families ``fractal``,
  ``stripes``, ``checkers``, ``gradients``, ``dead_leaves``); held-out families and photos and the
  motorcycle pair never appear;
* a background plus ``objects`` elliptical layers, each with a similarity motion
  ``M(p) = c + s R (p - c) + t`` (rotation, zoom, translation; a share of sub-pixel and of large
  motions); frames by inverse mapping with ``grid_sample``;
* flow exact by construction: frame-1 pixel ``p`` on top layer ``k`` moves to ``M_k(p)``; valid
  when ``M_k(p)`` is in the frame and no higher layer covers it in frame 2 (analytic ellipses);
* photometric: shared gain / gamma / noise, and on half of the pairs a change between the frames
  (gain, gamma, offset, colour, noise).

Not here (CPU renderer only): non-rigid warps, JPEG, blur, polygons and OpenSimplex textures.
Batch ``b`` is a function of ``(seed, b)`` through a ``torch.Generator`` on the device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from converters.train.data import Batch

TEXTURE = 256


def _rand(gen, *shape, device, low=0.0, high=1.0):
    return torch.rand(*shape, generator=gen, device=device) * (high - low) + low


class GpuSyntheticBatches:
    """``batch(b)`` -> :class:`Batch` on ``device``; ``stream(start)`` iterates from batch ``start``."""

    def __init__(self, batch_size: int, height: int, width: int, device, seed: int = 0, objects: int = 6,
                 max_motion: float = 32.0, large_motion: float = 80.0, small_prob: float = 0.2, large_prob: float = 0.2):
        self.batch_size, self.height, self.width = batch_size, height, width
        self.device = torch.device(device)
        self.seed, self.objects = seed, objects
        self.max_motion, self.large_motion = max_motion, large_motion
        self.small_prob, self.large_prob = small_prob, large_prob
        self.photos = self._photos()

    def _photos(self) -> torch.Tensor:
        from edgeflow.synthetic.families import TRAIN_PHOTOS
        from edgeflow.synthetic.textures import load_skimage_images

        images = [image for name, image in load_skimage_images() if name in TRAIN_PHOTOS]
        tensors = [torch.from_numpy(im).permute(2, 0, 1).float()[None] for im in images]
        return torch.cat([F.interpolate(t, size=(2 * TEXTURE, 2 * TEXTURE), mode="bilinear", align_corners=False)
                          for t in tensors]).to(self.device)

    # -- textures ---------------------------------------------------------------------------------
    def textures(self, gen, count: int) -> torch.Tensor:
        """``count`` RGB textures (count, 3, TEXTURE, TEXTURE) in 0..255, random families."""
        dev, n = self.device, TEXTURE
        ys, xs = torch.meshgrid(torch.arange(n, device=dev, dtype=torch.float32),
                                torch.arange(n, device=dev, dtype=torch.float32), indexing="ij")
        noise = torch.zeros(count, 1, n, n, device=dev)
        for octave in range(5):
            cells = 4 * 2**octave
            grid = torch.randn(count, 1, cells, cells, generator=gen, device=dev)
            noise += 0.55**octave * F.interpolate(grid, size=(n, n), mode="bicubic", align_corners=False)
        noise = (noise - noise.amin((2, 3), keepdim=True)) / (noise.amax((2, 3), keepdim=True) - noise.amin((2, 3), keepdim=True) + 1e-6)
        angle = _rand(gen, count, 1, 1, 1, device=dev, high=math.pi)
        u = xs * torch.cos(angle) + ys * torch.sin(angle)
        v = -xs * torch.sin(angle) + ys * torch.cos(angle)
        period = _rand(gen, count, 1, 1, 1, device=dev, low=6, high=40)
        stripes = 0.5 + 0.5 * torch.sin(2 * math.pi * u / period)
        checkers = ((torch.floor(u / period) + torch.floor(v / period)) % 2)
        gradients = (u - u.amin((2, 3), keepdim=True)) / (u.amax((2, 3), keepdim=True) - u.amin((2, 3), keepdim=True) + 1e-6)
        # Dead leaves: 48 discs per texture, later discs on top.
        leaves = torch.zeros(count, 1, n, n, device=dev)
        centres = _rand(gen, count, 48, 2, device=dev, high=n)
        radii = 1.0 / torch.sqrt(_rand(gen, count, 48, device=dev) / (n / 4) ** 2 + 1 / 9.0)
        values = _rand(gen, count, 48, device=dev)
        for k in range(48):
            inside = (xs - centres[:, k, 0, None, None]) ** 2 + (ys - centres[:, k, 1, None, None]) ** 2 <= radii[:, k, None, None] ** 2
            leaves = torch.where(inside[:, None], values[:, k, None, None, None], leaves)
        family = torch.randint(0, 6, (count,), generator=gen, device=dev)
        t = torch.stack([noise, stripes, checkers, gradients, leaves, noise], 0)[family, torch.arange(count, device=dev)]
        c0, c1 = _rand(gen, count, 3, 1, 1, device=dev, high=255), _rand(gen, count, 3, 1, 1, device=dev, high=255)
        rgb = c0 * t + c1 * (1 - t)
        # Photos for family 5: random 256 crops of the training photos.
        photo = self.photos[torch.randint(0, len(self.photos), (count,), generator=gen, device=dev)]
        oy, ox = (int(v) for v in torch.randint(0, TEXTURE + 1, (2,), generator=gen, device=dev))
        photo = photo[:, :, oy : oy + n, ox : ox + n]
        rgb = torch.where((family == 5)[:, None, None, None], photo, rgb)
        return (rgb * (0.75 + 0.5 * noise)).clamp(0, 255)

    # -- scenes -----------------------------------------------------------------------------------
    def _motion(self, gen, count: int, scale: torch.Tensor, background: bool):
        dev = self.device
        magnitude = _rand(gen, count, device=dev) * scale * (0.5 if background else 1.0)
        direction = _rand(gen, count, device=dev, high=2 * math.pi)
        rot = math.radians(2.0 if background else 15.0)
        zoom = 0.03 if background else 0.15
        small = scale <= 2.0
        theta = _rand(gen, count, device=dev, low=-rot, high=rot) * torch.where(small, 0.1, 1.0)
        log_s = _rand(gen, count, device=dev, low=-zoom, high=zoom) * torch.where(small, 0.1, 1.0)
        return magnitude * torch.cos(direction), magnitude * torch.sin(direction), theta, torch.exp(log_s)

    def batch(self, index: int) -> Batch:
        dev, B, H, W, K = self.device, self.batch_size, self.height, self.width, self.objects
        gen = torch.Generator(device=dev)
        gen.manual_seed(self.seed * 1_000_003 + int(index))
        regime = _rand(gen, B, device=dev)
        scale = torch.where(regime < self.small_prob, torch.full_like(regime, 2.0),
                            torch.where(regime < self.small_prob + self.large_prob,
                                        torch.full_like(regime, self.large_motion), torch.full_like(regime, self.max_motion)))
        textures = self.textures(gen, B * (K + 1)).view(B, K + 1, 3, TEXTURE, TEXTURE)
        ys, xs = torch.meshgrid(torch.arange(H, device=dev, dtype=torch.float32),
                                torch.arange(W, device=dev, dtype=torch.float32), indexing="ij")
        xs, ys = xs.expand(B, H, W), ys.expand(B, H, W)
        frame1 = torch.zeros(B, 3, H, W, device=dev)
        frame2 = torch.zeros_like(frame1)
        flow = torch.zeros(B, 2, H, W, device=dev)
        top1 = torch.zeros(B, H, W, dtype=torch.long, device=dev)
        layers = []
        for k in range(K + 1):
            background = k == 0
            cx = _rand(gen, B, 1, 1, device=dev, low=-0.1 * W, high=1.1 * W) if not background else torch.full((B, 1, 1), (W - 1) / 2, device=dev)
            cy = _rand(gen, B, 1, 1, device=dev, low=-0.1 * H, high=1.1 * H) if not background else torch.full((B, 1, 1), (H - 1) / 2, device=dev)
            tx, ty, theta, s = (v[:, None, None] for v in self._motion(gen, B, scale, background))
            rx = _rand(gen, B, 1, 1, device=dev, low=0.08, high=0.3) * min(H, W)
            ry = rx * _rand(gen, B, 1, 1, device=dev, low=0.4, high=1.0)
            phi = _rand(gen, B, 1, 1, device=dev, high=math.pi)
            tex_scale = _rand(gen, B, 1, 1, device=dev, low=0.6, high=1.4)
            tex_angle = _rand(gen, B, 1, 1, device=dev, high=2 * math.pi)
            layers.append((cx, cy, tx, ty, theta, s, rx, ry, phi, tex_scale, tex_angle))

        def forward_map(layer, px, py):  # M(p): where layer point p (frame 1) is in frame 2
            cx, cy, tx, ty, theta, s = layer[:6]
            dx, dy = px - cx, py - cy
            c, si = torch.cos(theta), torch.sin(theta)
            return cx + s * (c * dx - si * dy) + tx, cy + s * (si * dx + c * dy) + ty

        def inverse_map(layer, qx, qy):  # M^-1(q)
            cx, cy, tx, ty, theta, s = layer[:6]
            dx, dy = (qx - cx - tx) / s, (qy - cy - ty) / s
            c, si = torch.cos(theta), torch.sin(theta)
            return cx + c * dx + si * dy, cy - si * dx + c * dy

        def inside(layer, lx, ly):
            cx, cy, rx, ry, phi = layer[0], layer[1], layer[6], layer[7], layer[8]
            dx, dy = lx - cx, ly - cy
            c, si = torch.cos(phi), torch.sin(phi)
            u, v = c * dx + si * dy, -si * dx + c * dy
            return (u / rx) ** 2 + (v / ry) ** 2 <= 1.0

        def sample(k, lx, ly):
            layer = layers[k]
            scale_, angle = layer[9], layer[10]
            c, si = torch.cos(angle), torch.sin(angle)
            tx_ = (c * lx - si * ly) * scale_ + TEXTURE * 0.5
            ty_ = (si * lx + c * ly) * scale_ + TEXTURE * 0.5
            # Mirror-tile the texture coordinate into [0, TEXTURE) so no layer ever runs out of texture.
            period = 2 * (TEXTURE - 1)
            tx_ = (TEXTURE - 1) - ((tx_ % period) - (TEXTURE - 1)).abs()
            ty_ = (TEXTURE - 1) - ((ty_ % period) - (TEXTURE - 1)).abs()
            grid = torch.stack([(2 * tx_ + 1) / TEXTURE - 1, (2 * ty_ + 1) / TEXTURE - 1], -1)
            return F.grid_sample(textures[:, k], grid, mode="bilinear", padding_mode="border", align_corners=False)

        for k, layer in enumerate(layers):
            mask1 = torch.ones_like(xs, dtype=torch.bool) if k == 0 else inside(layer, xs, ys)
            frame1 = torch.where(mask1[:, None], sample(k, xs - layer[0], ys - layer[1]), frame1)
            top1 = torch.where(mask1, k, top1)
            lx, ly = inverse_map(layer, xs, ys)
            mask2 = torch.ones_like(mask1) if k == 0 else inside(layer, lx, ly)
            frame2 = torch.where(mask2[:, None], sample(k, lx - layer[0], ly - layer[1]), frame2)
            fx, fy = forward_map(layer, xs, ys)
            flow = torch.where(mask1[:, None], torch.stack([fx - xs, fy - ys], 1), flow)
        dest_x, dest_y = xs + flow[:, 0], ys + flow[:, 1]
        valid = (dest_x >= 0) & (dest_x <= W - 1) & (dest_y >= 0) & (dest_y <= H - 1)
        for j in range(1, K + 1):
            lx, ly = inverse_map(layers[j], dest_x, dest_y)
            valid &= ~((top1 < j) & inside(layers[j], lx, ly))
        frame1, frame2 = self._photometric(gen, frame1, frame2)
        return Batch(frame1, frame2, flow, valid.float())

    def _photometric(self, gen, frame1, frame2):
        dev, B = self.device, frame1.shape[0]
        gain = _rand(gen, B, 3, 1, 1, device=dev, low=0.75, high=1.25)
        gamma = torch.exp(_rand(gen, B, 1, 1, 1, device=dev, low=-0.3, high=0.3))
        change = (_rand(gen, B, 1, 1, 1, device=dev) < 0.5).float()
        gain2 = gain * (1 + change * _rand(gen, B, 3, 1, 1, device=dev, low=-0.35, high=0.35))
        gamma2 = gamma * torch.exp(change * _rand(gen, B, 1, 1, 1, device=dev, low=-0.3, high=0.3))
        offset2 = change * _rand(gen, B, 1, 1, 1, device=dev, low=-20, high=20)
        sigma = _rand(gen, B, 1, 1, 1, device=dev, high=8.0)

        def tone(frame, g, gm, off):
            x = ((frame / 255.0) * g + off / 255.0).clamp(0, 1) ** gm * 255.0
            return (x + sigma * torch.randn(x.shape, generator=gen, device=dev)).clamp(0, 255).round()

        return tone(frame1, gain, gamma, 0.0), tone(frame2, gain2, gamma2, offset2)

    def stream(self, start: int = 0):
        index = start
        while True:
            yield self.batch(index)
            index += 1
