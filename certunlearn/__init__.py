"""certunlearn: certified machine unlearning and privacy auditing.

Importing the package is cheap: subpackages (``certify``, ``train``, ``unlearn`` ...) are imported
on first use, so ``certunlearn --version`` never loads torch.

Example:
    >>> import certunlearn
    >>> isinstance(certunlearn.__version__, str)
    True
"""

from certunlearn._version import __version__

__all__ = ["__version__"]
