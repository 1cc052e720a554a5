import sys

from syllabus.cli.main import main

sys.exit(main())
