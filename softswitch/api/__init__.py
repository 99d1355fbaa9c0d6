"""HTTP JSON API and WebSocket event stream for the agent connection bar, supervisors and wallboards."""
