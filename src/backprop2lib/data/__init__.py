"""Real data sets that need no download: the bundled MNIST subset and a reader for full MNIST."""

from . import mnist
from .mnist import *  # noqa: F403 - the package's names are mnist's, listed once, in mnist.__all__

__all__ = list(mnist.__all__)
