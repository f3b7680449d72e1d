import sys

from rlfoundry.cli.main import main

sys.exit(main())
