"""Tests over real sockets with real peers."""
