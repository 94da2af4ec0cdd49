"""Messaging: the activation wire format, chunking, and the NATS client and server."""
