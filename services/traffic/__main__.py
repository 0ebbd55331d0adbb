import sys

from services.traffic.generator import main

sys.exit(main())
