#!/usr/bin/env python3
"""Demo publisher: random-walk market ticks for a few symbols, occasional engine signals
and decisions, and rolling indicators, published on Redis as the back-end modules do.

REDIS_URL (redis://host:port), RATE (ticks per second, default 50)."""
import json
import os
import random
import socket
import time
from urllib.parse import urlparse

SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMZN", "BTCUSD", "ETHUSD"]


def resp(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def main():
    u = urlparse(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
    rate = float(os.environ.get("RATE", "50"))
    s = socket.create_connection((u.hostname, u.port or 6379))
    if u.password:
        s.sendall(resp("AUTH", u.password))
    price = {sym: random.uniform(50, 500) for sym in SYMBOLS}
    ema = dict(price)
    n = 0
    while True:
        sym = random.choice(SYMBOLS)
        price[sym] *= 1 + random.gauss(0, 0.0008)
        bid = round(price[sym] * 0.9998, 4)
        tick = {"symbol": sym, "bid": bid, "ask": round(price[sym] * 1.0002, 4),
                "ts": int(time.time() * 1000), "n": n}
        msgs = [("market:tick:" + sym, tick)]
        ema[sym] = ema[sym] * 0.95 + price[sym] * 0.05
        if n % 10 == 0:
            msgs.append(("indicators:ema:" + sym, {"symbol": sym, "ema20": round(ema[sym], 4)}))
        if random.random() < 0.02:
            side = "buy" if price[sym] > ema[sym] else "sell"
            msgs.append(("engine:signal:momentum", {"symbol": sym, "side": side,
                                                    "strength": round(random.random(), 3)}))
            if random.random() < 0.3:
                msgs.append(("engine:decision:" + sym, {"symbol": sym, "action": side,
                                                        "qty": random.randint(1, 100)}))
        s.sendall(b"".join(resp("PUBLISH", ch, json.dumps(m)) for ch, m in msgs))
        s.recv(65536)
        n += 1
        time.sleep(1 / rate)


if __name__ == "__main__":
    main()
