"""CLI subcommands, one module each: ``register(subparsers)`` adds the parser, ``run(args)`` does the work."""

from . import allinone, bench, deploy, evaluate, export, features, lut, measure, models, profile, prune, search, sparsify, spec, train, upscale, weights

#: the order in which ``edgevision --help`` lists them
COMMANDS = (models, spec, features, profile, measure, export, bench, lut, train, evaluate, deploy, prune, allinone, sparsify, search, upscale, weights)
