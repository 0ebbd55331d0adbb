import sys

from services.topics.cli import main

sys.exit(main())
