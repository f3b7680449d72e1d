import sys

from rlfoundry.cli import main

sys.exit(main())
