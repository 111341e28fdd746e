"""xmc-actors: cross-market pair execution on Ray."""
import os as _os

# Ray starts a local cluster on the first remote call when none is connected. This product
# always connects on purpose (runtime.start_ray); an implicit start would only ever come from a
# background thread (a ledger client's retry) outliving its cluster, and would leave a stray
# Ray behind. Only effective when set before ray is imported, which xmc's entry points do.
_os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")
__version__ = "0.1.0"
