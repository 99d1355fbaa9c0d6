"""Web chat: the customer widget's WebSocket, the agents' chat panel, routing through acd.chat_router, transcripts
as records. frames.py and limits.py are pure; hub.py holds the sessions (no asyncio); web.py is the aiohttp shell."""
