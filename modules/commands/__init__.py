"""What the `unavglip` subcommands run beyond `dub` and `demo`: prepare-data and train-adapter
(`training_commands`). Commands build the models, so they sit above the families they load; they may import
every folder below them.
"""
