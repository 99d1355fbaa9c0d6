"""Configuration: strict YAML loading into frozen dataclasses (see config/example.yaml)."""

from .load import load_config, parse_config
from .model import Agent, CalledRoute, Config, Employee, IvrStep, ListenSpec, SkillQueue
from .secrets import PasswordPolicy, check_password, hash_password, softphone_hash
from .source import ConfigError

__all__ = ["Agent", "CalledRoute", "Config", "ConfigError", "Employee", "IvrStep", "ListenSpec",
           "PasswordPolicy", "SkillQueue", "check_password", "hash_password", "load_config", "parse_config",
           "softphone_hash"]
