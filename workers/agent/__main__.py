import sys

from workers.agent.main import main

sys.exit(main())
