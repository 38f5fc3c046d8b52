"""CLI subcommands, one module each: ``register(subparsers)`` adds the parser, ``run(args)`` does the work."""

from . import models, spec

#: the order in which ``edgevision --help`` lists them
COMMANDS = (models, spec)
