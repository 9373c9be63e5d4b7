"""python -m mmad."""

import sys

from mmad.cli import main

sys.exit(main())
