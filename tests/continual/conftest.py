import pytest

from backprop2lib.data.mnist import bundled_split


@pytest.fixture(scope="session")
def split():
    """The bundled MNIST split (3,000 / 1,000 / 1,000 images), loaded once for the whole folder."""
    return bundled_split(0)
