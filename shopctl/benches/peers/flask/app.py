"""GET /recommendations?product_id=&k= as the seed's stack would serve it: Flask under
gunicorn, the same model as the ml service (co-purchase cosine similarity, content-based
fill, each product's best 50 ranked at start). For the read-path benchmark only.
Environment: DATABASE_URL."""

import math
import os
from collections import defaultdict

import psycopg
from flask import Flask, jsonify, request

MAX_RANKED = 50


def load():
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        products = conn.execute("SELECT id, category, price_cents FROM products").fetchall()
        baskets = conn.execute(
            "SELECT array_agg(DISTINCT product_id ORDER BY product_id) FROM order_items GROUP BY order_id"
        ).fetchall()
    return {p[0]: (p[1], p[2]) for p in products}, [b[0] for b in baskets]


def content_similarity(a, b):
    same = 1.0 if a[0] == b[0] else 0.0
    ratio = abs(math.log(max(a[1], 1) / max(b[1], 1)))
    return min(0.7 * same + 0.3 / (1.0 + ratio), 0.999)


def train(features, baskets):
    counts, pairs = defaultdict(float), defaultdict(float)
    for basket in baskets:
        items = sorted({i for i in basket if i in features})
        for n, a in enumerate(items):
            counts[a] += 1
            for b in items[n + 1 :]:
                pairs[(a, b)] += 1
    neighbours = defaultdict(list)
    for (a, b), together in pairs.items():
        similarity = together / math.sqrt(counts[a] * counts[b])
        neighbours[a].append((b, similarity))
        neighbours[b].append((a, similarity))
    best = lambda scored: sorted(scored, key=lambda s: (-s[1], s[0]))
    ranked = {}
    for pid, feature in features.items():
        learned = [(b, 0.5 + 0.5 * s) for b, s in best(neighbours[pid])[:MAX_RANKED]]
        taken = {b for b, _ in learned} | {pid}
        fill = best((o, 0.5 * content_similarity(feature, f)) for o, f in features.items() if o not in taken)
        ranked[pid] = (learned + fill)[:MAX_RANKED]
    return ranked


RANKED = train(*load())
app = Flask(__name__)


@app.get("/recommendations")
def recommend():
    try:
        product_id = int(request.args["product_id"])
        k = int(request.args.get("k", 5))
    except (KeyError, ValueError):
        return jsonify(error={"code": "bad_request", "message": "product_id and k are integers"}), 400
    if product_id not in RANKED:
        return jsonify(error={"code": "unknown_product", "message": "not in the model"}), 404
    return jsonify(
        product_id=product_id,
        model_version="flask-peer",
        recommendations=[{"product_id": p, "score": s} for p, s in RANKED[product_id][:k]],
    )
