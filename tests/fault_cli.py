"""`python -m tests.fault_cli <edgebench arguments>`: the edgebench command with the formats `hang`
(a converter that sleeps forever), `tiny` and `slow` (well-behaved, 3 s) registered, for fault tests
that run the real command in a subprocess and interrupt it."""

from edgebench.cli import main
from edgebench.converters import registry
from tests import fault_converters as faults

registry.CONVERTERS.update({"hang": faults.Hanging(), "tiny": faults.Tiny(), "slow": faults.Slow()})

if __name__ == "__main__":
    main()
