"""ugr: uncertainty-aware generative recommendation, for Python.

Open an artifact written by ``ugr export`` and recommend::

    import ugr
    engine = ugr.Engine("model.ugr")
    for r in engine.recommend([12, 7, 3], k=5, deny=[42]):
        print(r.item, r.score, r.confidence, r.title)
    table = engine.recommend_batch([[12, 7, 3], [5]], k=10)   # a pyarrow Table

See docs/python.md for batch scoring on Ray Data and Spark.
"""

from . import errors
from ._ugr import ENGINE_VERSION as __version__
from .engine import Engine, EngineInfo, Recommendation, default_threads, shared_engine
from .errors import (
    ArtifactIOError,
    CorruptModelError,
    InvalidArgumentError,
    ModelFailedError,
    PanicError,
    UgrError,
    UnknownItemError,
    UnsupportedVersionError,
)

__all__ = [
    "Engine",
    "EngineInfo",
    "Recommendation",
    "default_threads",
    "shared_engine",
    "errors",
    "UgrError",
    "InvalidArgumentError",
    "UnknownItemError",
    "ArtifactIOError",
    "CorruptModelError",
    "UnsupportedVersionError",
    "ModelFailedError",
    "PanicError",
    "__version__",
]
