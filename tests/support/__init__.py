"""Helpers the tests share: starting nodes, SIP and HTTP clients, SIPp and scanner drivers."""
