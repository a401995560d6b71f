import sys

from wattscape.cli import main

sys.exit(main())
