import sys

from nlp_lib.cli import main

sys.exit(main())
