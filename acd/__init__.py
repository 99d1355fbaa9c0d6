"""The ACD: agents, skill queues, strategies and statistics as pure logic with an injected clock."""

from .agents import Agent, AgentStateError
from .engine import Acd, AcdError, Entry, Event, Leave, Offer, QueueSpec, Withdraw

__all__ = ["Acd", "AcdError", "Agent", "AgentStateError", "Entry", "Event", "Leave", "Offer", "QueueSpec",
           "Withdraw"]
