import sys

from offrl.cli.main import main

sys.exit(main())
