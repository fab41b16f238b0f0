"""Fashion-MNIST: find it, verify it, split it and fit the standardization.

Where the data comes from, in this order:
1. ``--data-dir DIR`` (or the ``FASHION_MNIST_DIR`` environment variable): a folder with
   the four original ``.gz`` IDX files;
2. Debian's package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``);
3. ``keras.datasets.fashion_mnist.load_data()``: the Keras cache, then a download.

Local files are checked for magic number, shape, size and the SHA-256 of their
*uncompressed* content. The published MD5 covers the ``.gz`` bytes, which Debian's
repackaging changes (only the gzip header), so the uncompressed digest is what both the
original and the Debian files share.

The search only ever reads the training files; the test files are read by the finalizer.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tuning.errors import DataError, UsageError

ENV_VAR = "FASHION_MNIST_DIR"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
NUM_CLASSES = 10
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


@dataclass(frozen=True)
class IdxFile:
    name: str
    magic: int
    shape: tuple[int, ...]
    sha256: str  # of the uncompressed IDX bytes


FILES: dict[str, IdxFile] = {
    "train_images": IdxFile(
        "train-images-idx3-ubyte.gz",
        2051,
        (60000, 28, 28),
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    "train_labels": IdxFile(
        "train-labels-idx1-ubyte.gz",
        2049,
        (60000,),
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
    "test_images": IdxFile(
        "t10k-images-idx3-ubyte.gz",
        2051,
        (10000, 28, 28),
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ),
    "test_labels": IdxFile(
        "t10k-labels-idx1-ubyte.gz",
        2049,
        (10000,),
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
}


def read_idx(path: Path, spec: IdxFile, verify: bool = True) -> tuple[np.ndarray, str]:
    """Read one gzipped IDX file; return the array and the SHA-256 of its content."""
    if not path.is_file():
        raise DataError(f"missing data file {path}")
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path} is corrupt or truncated ({exc})") from None
    ndim = len(spec.shape)
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is too short to be an IDX file ({len(raw)} bytes)")
    magic = int.from_bytes(raw[0:4], "big")
    if magic != spec.magic:
        raise DataError(f"{path} has magic number {magic}, expected {spec.magic}")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if shape != spec.shape:
        raise DataError(f"{path} holds shape {shape}, expected {spec.shape}")
    expected_len = header + int(np.prod(shape))
    if len(raw) != expected_len:
        raise DataError(f"{path} has {len(raw)} bytes uncompressed, expected {expected_len}")
    digest = hashlib.sha256(raw).hexdigest()
    if verify and digest != spec.sha256:
        raise DataError(
            f"{path} fails its checksum: sha256 {digest[:16]}..., expected {spec.sha256[:16]}... "
            "(not the original Fashion-MNIST file?)"
        )
    array = np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)
    return array, digest


@dataclass
class Source:
    """Where the data came from, recorded in every run so results can be traced."""

    kind: str  # "dir", "debian" or "keras"
    path: str | None
    sha256: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.kind}: {self.path}" if self.path else self.kind

    def to_dict(self) -> dict:
        return {"kind": self.kind, "path": self.path, "sha256": dict(self.sha256)}


def resolve_source(data_dir: str | os.PathLike | None = None) -> tuple[str, Path | None]:
    """Decide where to read from: an explicit folder, the env variable, Debian's, or Keras."""
    if data_dir is None and os.environ.get(ENV_VAR):
        data_dir = os.environ[ENV_VAR]
    if data_dir is not None:
        path = Path(data_dir).expanduser()
        if not path.is_dir():
            raise UsageError(f"data directory {path} does not exist or is not a folder")
        return "dir", path
    if all((DEBIAN_DIR / spec.name).is_file() for spec in FILES.values()):
        return "debian", DEBIAN_DIR
    return "keras", None


def _load_keras() -> tuple[np.ndarray, ...]:
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    except Exception as exc:  # network or cache failure: say what to do instead
        raise DataError(
            f"could not load Fashion-MNIST through Keras ({type(exc).__name__}); "
            f"without internet, pass --data-dir DIR (or set {ENV_VAR}) to a folder "
            "with the four original .gz files"
        ) from None
    return x_train, y_train, x_test, y_test


def load_arrays(
    data_dir: str | os.PathLike | None = None, part: str = "train", verify: bool = True
) -> tuple[np.ndarray, np.ndarray, Source]:
    """Load one part ("train" or "test") of Fashion-MNIST as uint8 images and labels."""
    if part not in ("train", "test"):
        raise ValueError(f"part must be 'train' or 'test', not {part!r}")
    kind, path = resolve_source(data_dir)
    if kind == "keras":
        x_train, y_train, x_test, y_test = _load_keras()
        x, y = (x_train, y_train) if part == "train" else (x_test, y_test)
        return x.astype(np.uint8), y.astype(np.int64), Source("keras", None)
    assert path is not None
    x, x_sha = read_idx(path / FILES[f"{part}_images"].name, FILES[f"{part}_images"], verify)
    y, y_sha = read_idx(path / FILES[f"{part}_labels"].name, FILES[f"{part}_labels"], verify)
    if y.max() >= NUM_CLASSES:
        raise DataError(f"{path} has labels outside 0..{NUM_CLASSES - 1}")
    source = Source(
        kind,
        str(path.resolve()),
        {FILES[f"{part}_images"].name: x_sha, FILES[f"{part}_labels"].name: y_sha},
    )
    return x, y.astype(np.int64), source


def stratified_take(
    x: np.ndarray, y: np.ndarray, n: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split (x, y) into n stratified examples and the rest, reproducibly from seed."""
    from sklearn.model_selection import train_test_split

    if n >= len(y):
        return x, y, x[:0], y[:0]
    x_a, x_b, y_a, y_b = train_test_split(x, y, train_size=n, stratify=y, random_state=seed)
    return x_a, y_a, x_b, y_b


@dataclass
class Splits:
    """Train and validation splits (uint8 images) and the per-pixel statistics of train."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    mean: np.ndarray  # (28, 28), fitted on x_train only
    variance: np.ndarray  # (28, 28), StandardScaler's scale_**2 (1 where a pixel is constant)
    source: Source

    def sizes(self) -> dict[str, int]:
        return {"train": int(len(self.y_train)), "valid": int(len(self.y_valid))}


def fit_standardizer(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel mean and variance, as scikit-learn's StandardScaler computes them.

    The population variance (1 where a pixel is constant, as StandardScaler's scale_ is).
    For integer images (uint8) both come from exact integer sums: no float64 copy of the
    images (300 MB and ~1 s for the training split, each run).
    """
    flat = x.reshape(len(x), -1)
    shape = x.shape[1:]
    n = len(flat)
    if np.issubdtype(flat.dtype, np.integer) and flat.dtype.itemsize == 1 and n < 10**7:
        s1 = np.zeros(flat.shape[1], np.int64)
        s2 = np.zeros(flat.shape[1], np.int64)
        for start in range(0, n, 4096):  # int32 chunks: 255^2 * 4096 fits
            chunk = flat[start : start + 4096].astype(np.int32)
            s1 += chunk.sum(axis=0)
            s2 += (chunk * chunk).sum(axis=0)
        # n * sum(x^2) - sum(x)^2 = n^2 * variance, exact in int64 below 10^7 images
        mean = s1 / n
        variance = (n * s2 - s1 * s1) / float(n) ** 2
    else:
        values = flat.astype(np.float64)
        mean = values.mean(axis=0)
        variance = values.var(axis=0)
    scale = np.sqrt(variance)
    variance = np.where(scale < 10 * np.finfo(np.float64).eps, 1.0, variance)
    return mean.reshape(shape).astype(np.float32), variance.reshape(shape).astype(np.float32)


def validate_subset(subset: int | None, n_train: int, valid_fraction: float) -> None:
    if subset is None:
        return
    smallest = int(np.ceil(NUM_CLASSES / valid_fraction))
    if subset < smallest:
        raise UsageError(
            f"--subset {subset} is too small for a stratified split: use at least {smallest} images"
        )
    if subset > n_train:
        raise UsageError(f"--subset {subset} is larger than the training split ({n_train} images)")


def split_train_valid(
    x: np.ndarray,
    y: np.ndarray,
    seed: int,
    valid_fraction: float = 0.2,
    subset: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stratified, seeded train/valid split; ``subset`` then keeps N training images.

    The full split is made first, so a subset's validation images are always drawn
    from the same validation split (it shrinks in proportion to the training part).
    """
    n_train = len(y) - int(round(len(y) * valid_fraction))
    validate_subset(subset, n_train, valid_fraction)
    x_tr, y_tr, x_va, y_va = stratified_take(x, y, n_train, seed)
    if subset is not None and subset < n_train:
        n_valid = max(NUM_CLASSES, int(round(subset * valid_fraction / (1 - valid_fraction))))
        x_tr, y_tr, _, _ = stratified_take(x_tr, y_tr, subset, seed + 1)
        x_va, y_va, _, _ = stratified_take(x_va, y_va, n_valid, seed + 2)
    return x_tr, y_tr, x_va, y_va


def load_splits(
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
    valid_fraction: float = 0.2,
    subset: int | None = None,
    verify: bool = True,
) -> Splits:
    """Everything the search needs: train/valid splits and train-only statistics."""
    if not 0.0 < valid_fraction < 1.0:
        raise UsageError(f"validation fraction must be between 0 and 1, not {valid_fraction}")
    x, y, source = load_arrays(data_dir, "train", verify)
    x_tr, y_tr, x_va, y_va = split_train_valid(x, y, seed, valid_fraction, subset)
    mean, variance = fit_standardizer(x_tr)
    return Splits(x_tr, y_tr, x_va, y_va, mean, variance, source)
