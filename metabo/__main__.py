import sys

from metabo.cli import main

sys.exit(main())
