"""Content photos for training: a LightningDataModule over a folder of images.

The folder is searched recursively for .jpg/.jpeg/.png/.webp (COCO's train2014/ works as is).
A few images, picked with a fixed seed, are held out as the validation set; the rest are the
training stream: random square crop (a `crop_scale` fraction of the shorter side), resized to
`image_size`, random horizontal flip, and a random `draw` that picks the sample's style when one
network learns several.

The training stream is a pure function of (seed, global sample position): which photo and which
crop sample number p gets is decided by hashing (seed, p), never by the global RNG or the worker
that decodes it. The sampler starts at the position of the trainer's restored global step, so a
run resumed from `last.ckpt` sees exactly the batches a straight run would have seen, and DDP
ranks interleave disjoint positions of the same stream (rank r takes batches r, r+W, r+2W ...).

Unreadable files never crash a run: headers are checked when the folder is scanned (one warning
naming the bad files, `skipped` counts them), and a file that passes the header check but fails
to decode later (truncated data) is replaced by the next photo, warned about once per process and
counted in the batch's "skipped" field, which the LightningModule logs.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Iterator

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from stylecast.losses.images import to_tensor
from stylecast.errors import UserError
from stylecast.images import open_image, pil_to_array

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def find_images(root: str | os.PathLike) -> list[Path]:
    """All image files under `root` (recursive, case-insensitive suffix), sorted for determinism."""
    root = Path(root)
    if not root.exists():
        raise UserError(f"{root}: no such folder (--data.root should be a folder of training photos)")
    if not root.is_dir():
        raise UserError(f"{root}: not a folder (--data.root should be a folder of training photos)")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def check_headers(paths: list[Path], progress: bool = True) -> tuple[list[Path], list[Path]]:
    """Split into (readable, unreadable) by parsing each header (cheap: no pixel decoding)."""
    good, bad = [], []
    for p in tqdm(paths, desc="checking images", unit="img", disable=not progress or len(paths) < 2000, leave=False):
        try:
            with Image.open(p) as img:
                w, h = img.size
            (good if w > 0 and h > 0 else bad).append(p)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            bad.append(p)
    return good, bad


def describe_files(paths: list[Path], limit: int = 10) -> str:
    names = ", ".join(str(p) for p in paths[:limit])
    return names + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def random_crop_box(width: int, height: int, crop_scale: tuple[float, float], rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A square box whose side is a uniform `crop_scale` fraction of the shorter side, placed uniformly."""
    short = min(width, height)
    side = max(1, round(short * rng.uniform(*crop_scale)))
    x0 = int(rng.integers(0, width - side + 1))
    y0 = int(rng.integers(0, height - side + 1))
    return x0, y0, x0 + side, y0 + side


def center_crop_box(width: int, height: int) -> tuple[int, int, int, int]:
    short = min(width, height)
    x0, y0 = (width - short) // 2, (height - short) // 2
    return x0, y0, x0 + short, y0 + short


def crop_resize(img: Image.Image, box: tuple[int, int, int, int], size: int) -> torch.Tensor:
    """Crop `box` and resize to size x size in one Pillow call (antialiased when shrinking) -> (3, S, S)."""
    out = img.resize((size, size), Image.Resampling.BILINEAR, box=box)
    return to_tensor(pil_to_array(out))[0]


class PhotoStream(Dataset):
    """Map-style dataset whose index is (photo index, augmentation seed) from `StreamSampler`."""

    def __init__(self, paths: list[Path], image_size: int, crop_scale: tuple[float, float], flip: bool = True):
        self.paths, self.image_size, self.crop_scale, self.flip = list(paths), int(image_size), tuple(crop_scale), flip
        self._warned: set[Path] = set()

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        index, seed = key
        rng = np.random.default_rng(seed)
        skipped = 0
        # A file that decodes badly is replaced by the next one; give up only if every file fails.
        for attempt in range(len(self.paths)):
            path = self.paths[(index + attempt) % len(self.paths)]
            try:
                img = open_image(path)
                break
            except UserError as exc:
                skipped += 1
                if path not in self._warned:
                    self._warned.add(path)
                    log.warning("skipping unreadable training image %s", exc)
        else:
            raise UserError(f"none of the {len(self.paths)} training images could be decoded")
        box = random_crop_box(img.width, img.height, self.crop_scale, rng)
        image = crop_resize(img, box, self.image_size)
        if self.flip and rng.random() < 0.5:
            image = image.flip(-1)
        # A uniform draw of the sample's own stream, after the crop and flip ones (which it leaves
        # as they were): a multi-style run takes draw % n_styles as the sample's style, so the
        # style sequence is as deterministic, resumable and rank-disjoint as the photos.
        draw = int(rng.integers(2**62))
        return {"image": image, "skipped": torch.tensor(skipped), "draw": torch.tensor(draw)}


class FixedImages(Dataset):
    """The validation photos: centre square crop resized to `size`, decoded once and kept."""

    def __init__(self, paths: list[Path], size: int):
        self.paths, self.size = list(paths), int(size)
        self._cache: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if i not in self._cache:
            img = open_image(self.paths[i])
            self._cache[i] = crop_resize(img, center_crop_box(img.width, img.height), self.size)
        return {"image": self._cache[i], "skipped": torch.tensor(0)}

    def batch(self) -> torch.Tensor:
        """All validation images as one (N, 3, S, S) tensor (for the image grid)."""
        return torch.stack([self[i]["image"] for i in range(len(self))])


class StreamSampler(DistributedSampler):
    """Yields (photo index, augmentation seed) for global sample positions, from `start_batch` on.

    Global batch b of the run is made by rank b % W, so rank r's k-th batch is global batch
    k·W + r, and sample j of global batch b has position p = b·B + j. Photo order is a fresh
    permutation of all N photos per pass ("data epoch" e = p // N), seeded by (seed, e); the
    crop/flip seed is derived from (seed, p). Nothing depends on workers, timing or global RNG.

    It subclasses DistributedSampler only so that Lightning does not replace it under DDP (it
    already splits the stream between ranks itself). One iteration is one Lightning epoch of
    `batches_per_epoch` batches; the first iteration after a resume yields only what is left of
    the current epoch, which is what Lightning's restored batch counter expects.
    """

    def __init__(self, dataset: PhotoStream, batch_size: int, num_replicas: int = 1, rank: int = 0, seed: int = 0, start_batch: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, seed=seed, drop_last=True)
        self.n = len(dataset)
        self.batch_size = int(batch_size)
        self.batches_per_epoch = max(1, self.n // (self.batch_size * self.num_replicas))
        self.next_batch = int(start_batch)  # this rank's batch counter, in the whole run

    def __len__(self) -> int:
        return self.batches_per_epoch * self.batch_size

    def set_epoch(self, epoch: int) -> None:  # the stream position, not Lightning's epoch, decides
        self.epoch = epoch

    def _perm(self, data_epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, data_epoch]).permutation(self.n)

    def positions(self, local_batch: int) -> range:
        global_batch = local_batch * self.num_replicas + self.rank
        return range(global_batch * self.batch_size, (global_batch + 1) * self.batch_size)

    def key(self, position: int, perm: np.ndarray) -> tuple[int, int]:
        """(photo index, crop/flip seed) of global sample `position`; `perm` is its data epoch's."""
        aug_seed = int(np.random.default_rng([self.seed, 1, position]).integers(2**63 - 1))
        return int(perm[position % self.n]), aug_seed

    def __iter__(self) -> Iterator[tuple[int, int]]:
        remaining = self.batches_per_epoch - self.next_batch % self.batches_per_epoch
        perm_epoch, perm = -1, None
        for _ in range(remaining):
            for p in self.positions(self.next_batch):
                if p // self.n != perm_epoch:
                    perm_epoch, perm = p // self.n, self._perm(p // self.n)
                yield self.key(p, perm)
            self.next_batch += 1


class PhotoDataModule(pl.LightningDataModule):
    """Training photos from a folder.

    root: folder searched recursively for jpg/jpeg/png/webp.
    image_size: side of the square training crops (Johnson et al.: 256).
    batch_size: per process; under DDP the global batch is batch_size x world size.
    crop_scale: the crop side as a fraction of the photo's shorter side, drawn uniformly in [lo, hi].
    val_images: photos held out (fixed seed) and stylized for the image grid; 0 disables validation.
    val_size: side of the validation images (default: image_size).
    num_workers: DataLoader worker processes (0 decodes in the training process).
    seed: fixes the validation pick and the training stream.
    check_images: parse every file's header when scanning (COCO: ~1 min) so broken files are
        reported up front; a file that fails later is still skipped.
    """

    def __init__(
        self,
        root: str = "data/photos",
        image_size: int = 256,
        batch_size: int = 4,
        crop_scale: tuple[float, float] = (0.6, 1.0),
        flip: bool = True,
        val_images: int = 4,
        val_size: int | None = None,
        num_workers: int = 2,
        seed: int = 0,
        check_images: bool = True,
    ):
        super().__init__()
        if image_size < 8:
            raise UserError(f"--data.image_size must be at least 8 pixels, got {image_size}")
        if batch_size < 1:
            raise UserError(f"--data.batch_size must be at least 1, got {batch_size}")
        lo, hi = crop_scale
        if not 0 < lo <= hi <= 1:
            raise UserError(f"--data.crop_scale must satisfy 0 < lo <= hi <= 1, got {list(crop_scale)}")
        if val_images < 0 or num_workers < 0:
            raise UserError("--data.val_images and --data.num_workers must not be negative")
        self.root, self.image_size, self.batch_size = root, int(image_size), int(batch_size)
        self.crop_scale, self.flip = (float(lo), float(hi)), flip
        self.val_images, self.val_size = int(val_images), int(val_size or image_size)
        self.num_workers, self.seed, self.check_images = int(num_workers), int(seed), check_images
        self.train_paths: list[Path] = []
        self.val_paths: list[Path] = []
        self.skipped: list[Path] = []
        self._val_set: FixedImages | None = None

    def _world_size(self) -> int:
        trainer = getattr(self, "trainer", None)
        return int(trainer.world_size) if trainer is not None else 1

    def setup(self, stage: str | None = None) -> None:
        if self.train_paths:
            return
        paths = find_images(self.root)
        if self.check_images:
            paths, self.skipped = check_headers(paths)
            if self.skipped:
                log.warning("skipping %d unreadable image(s) in %s: %s", len(self.skipped), self.root, describe_files(self.skipped))
        world = self._world_size()
        needed = self.val_images + self.batch_size * world
        if len(paths) < needed:
            found = f"found {len(paths)} readable image(s)" + (f" ({len(self.skipped)} unreadable skipped)" if self.skipped else "")
            raise UserError(
                f"{self.root}: {found} (.jpg/.jpeg/.png/.webp, searched recursively); training needs at least "
                f"{needed} ({self.val_images} for validation + batch_size {self.batch_size} x {world} process(es))"
            )
        val = set(random.Random(self.seed).sample(range(len(paths)), self.val_images))
        self.val_paths = [p for i, p in enumerate(paths) if i in val]
        self.train_paths = [p for i, p in enumerate(paths) if i not in val]
        log.info("%d training and %d validation images from %s", len(self.train_paths), len(self.val_paths), self.root)

    def _loader_kwargs(self) -> dict:
        kw: dict = {"num_workers": self.num_workers, "pin_memory": torch.cuda.is_available()}
        if self.num_workers > 0:
            kw.update(persistent_workers=True, prefetch_factor=4)
        return kw

    def train_dataloader(self) -> DataLoader:
        trainer = getattr(self, "trainer", None)
        rank, world, start = 0, 1, 0
        if trainer is not None:
            rank, world = trainer.global_rank, trainer.world_size
            # The restored step (resume) tells where this rank's stream continues.
            start = trainer.global_step * trainer.accumulate_grad_batches
        dataset = PhotoStream(self.train_paths, self.image_size, self.crop_scale, self.flip)
        sampler = StreamSampler(dataset, self.batch_size, num_replicas=world, rank=rank, seed=self.seed, start_batch=start)
        return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler, drop_last=True, **self._loader_kwargs())

    def val_dataset(self) -> FixedImages:
        if self._val_set is None:
            self._val_set = FixedImages(self.val_paths, self.val_size)
        return self._val_set

    def val_dataloader(self) -> DataLoader | list:
        if not self.val_paths:
            return []
        return DataLoader(self.val_dataset(), batch_size=min(self.batch_size, len(self.val_paths)), shuffle=False)
