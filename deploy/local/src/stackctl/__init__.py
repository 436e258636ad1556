"""The local stack: real infrastructure as supervised processes on loopback."""
