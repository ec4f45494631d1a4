"""The platform's domain logic, one package per capability (see README.md).

Arrow's memory comes from jemalloc, which hands freed pages back to the system. pyarrow's default, mimalloc, kept
them, so an upload's peak memory grew with every batch it had finished with: 100,000 rows of a trust's visits
peaked at 405-435 MB from upload to receipt, against 331-355 MB with jemalloc, and no slower. Arrow reads the
setting once, when it is first imported, so it is made here, before any module of the platform imports pyarrow;
an operator's own setting is kept.
"""

import os

os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
