"""An aiohttp server whose handler awaits a coroutine that does CPU work."""

import asyncio
import json
import sys

from aiohttp import web


def checksum(n):
    s = 0
    for i in range(n):
        s = (s * 31 + i) % 1000003
    return s


async def compute(n):
    await asyncio.sleep(0)
    return checksum(n)


async def handle(request):
    value = await compute(20000)
    return web.Response(text=json.dumps({"value": value}), content_type="application/json")


def main():
    app = web.Application()
    app.router.add_get("/", handle)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=lambda *a: print(*a, flush=True),
                access_log=None)


if __name__ == "__main__":
    main()
