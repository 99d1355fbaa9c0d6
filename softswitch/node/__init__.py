"""A node built from one config: the one module that wires every package together.

The package keeps `softswitch.node` importable with the names it had as a module (they live in compose.py)."""

from .compose import (
    Listen,
    Node,
    NodeOptions,
    credentials_from_config,
    new_loop,
    options_from_config,
    recordings_dir,
    run,
    sqlite_path,
    storage_paths,
    tune_gc,
)

__all__ = ['Listen', 'Node', 'NodeOptions', 'credentials_from_config', 'new_loop', 'options_from_config', 'recordings_dir', 'run', 'sqlite_path', 'storage_paths', 'tune_gc']
