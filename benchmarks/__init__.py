"""Side-by-side benchmarks: a bare ASGI app, rtframe and Django Channels on uvicorn."""
