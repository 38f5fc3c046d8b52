"""CLI subcommands, one module each: ``register(subparsers)`` adds the parser, ``run(args)`` does the work."""

from . import bench, export, measure, models, profile, spec

#: the order in which ``edgevision --help`` lists them
COMMANDS = (models, spec, profile, measure, export, bench)
