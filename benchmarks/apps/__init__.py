"""The servers under test; each module exposes `echo`, `fanout` ASGI apps."""
