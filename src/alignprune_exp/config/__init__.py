"""Configuration: where the config tree lives, its resolvers, checks of composed configs, building objects."""
