#!/usr/bin/python3
"""A conformance-suite testee on Python's `websockets`: connects to each URL in turn, echoes every
message with its type, and lets the library answer pings and closes. Prints the library's version
first. Usage: conformance-python-client.py URL [URL...]"""
import asyncio
import sys

import websockets


async def echo(url):
    try:
        async with websockets.connect(url, max_size=None, open_timeout=10, close_timeout=5) as ws:
            async for message in ws:
                await ws.send(message)
    except Exception:  # the suite judges what happened; the client just moves on
        pass


async def main(urls):
    for url in urls:
        await echo(url)


print(f'websockets {websockets.__version__}', flush=True)
asyncio.run(main(sys.argv[1:]))
