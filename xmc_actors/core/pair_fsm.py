"""The pair transaction core, kept under its old name: it lives in :mod:`xmc_actors.core.pair`
(split into the table, commands, machine, book, recovery and late fills). Import from there in
new code; this module re-exports the same names for code outside the package."""
from .pair import *  # noqa: F401,F403
from .pair import __all__  # noqa: F401
