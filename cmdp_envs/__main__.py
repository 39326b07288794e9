import sys

from cmdp_envs.cli import main

sys.exit(main())
