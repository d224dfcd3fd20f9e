"""``python -m croft.dassl_bridge``: the ``croft-dassl`` launcher."""
import sys

from croft.dassl_bridge import main

sys.exit(main())
