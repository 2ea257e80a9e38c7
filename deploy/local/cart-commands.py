#!/usr/bin/env python3
"""Prints N generated cart commands of ~450 bytes as recast's JSON lines
(key, value), shaped like the sample: a command in one of three spellings,
technical context, customer data. For deploy/local/throughput.sh and
deploy/local/instructions.sh.
    deploy/local/cart-commands.py N > commands.jsonl
"""
import json
import sys

for i in range(int(sys.argv[1])):
    cart = f"cart-{i % 997}"
    value = {
        "command": ["ADD_TO_CART", "AddToCart", "add.to.cart"][i % 3],
        "requestId": f"r-{i}",
        "cartId": cart,
        "customer": {"id": f"c-{i}", "email": f"u{i}@example.com"},
        "ts": 1764000000000 + i,
        "sku": f"SKU-{i % 9000}",
        "qty": 1 + i % 5,
        "_meta": {
            "host": f"cart-web-{i % 40}",
            "thread": f"exec-{i}",
            "retry": i % 4,
            "traceId": f"{i * 2654435761 % 2**128:032x}",
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64) cart-web/4.2",
            "sql": f"INSERT INTO cart_items (cart_id, sku, qty) VALUES ('{cart}', 'SKU-{i % 9000}', {1 + i % 5})",
        },
    }
    print(json.dumps({"key": cart, "value": json.dumps(value)}))
