"""Start TriFace Studio (the same as the ``triface-studio`` command)."""

import sys

from triface_studio.qt.app import main

if __name__ == "__main__":
    sys.exit(main())
