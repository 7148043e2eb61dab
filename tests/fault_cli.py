"""`python -m tests.fault_cli <edgebench arguments>`: the edgebench command with the formats `hang`
(a converter that sleeps forever), `tiny` and `slow` (well-behaved, 3 s) in the catalogue, for fault tests
that run the real command in a subprocess and interrupt it."""

import os

from edgebench.catalogue import PLUGINS_ENV
from edgebench.cli import main
from tests.fault_converters import PLUGIN

os.environ[PLUGINS_ENV] = PLUGIN  # the export children inherit the variable, so they find the same formats

if __name__ == "__main__":
    main()
