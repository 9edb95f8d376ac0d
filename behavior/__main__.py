"""``python -m behavior`` runs the ``rba`` command line."""

import sys

from behavior.commands.cli import main

sys.exit(main())
