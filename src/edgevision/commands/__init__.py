"""CLI subcommands, one module each: ``register(subparsers)`` adds the parser, ``run(args)`` does the work."""

from . import bench, evaluate, export, lut, measure, models, profile, spec, train, weights

#: the order in which ``edgevision --help`` lists them
COMMANDS = (models, spec, profile, measure, export, bench, lut, train, evaluate, weights)
