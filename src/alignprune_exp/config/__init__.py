"""Configuration: where the config tree lives, its resolvers, checks of composed configs, building objects."""

from alignprune_exp.config.resolvers import register as _register_resolvers

_register_resolvers()  # the YAML tree's ${one_minus:...} and ${hostname:} resolve once config is in use
