"""``python -m validibot_pipelines.runtime`` — the worker entrypoint every backend launches."""

import sys

from validibot_pipelines.runtime.entrypoint import main

if __name__ == "__main__":
    sys.exit(main())
