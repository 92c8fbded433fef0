// GET /products?limit=N as the seed's stack would serve it: Express, pg and ioredis, the
// listing cached in Redis for 60 s (cache-aside). For the read-path benchmark only.
// Environment: PORT, DATABASE_URL, REDIS_URL.
const express = require("express");
const { Pool } = require("pg");
const Redis = require("ioredis");

const pool = new Pool({ connectionString: process.env.DATABASE_URL, max: 10 });
const redis = new Redis(process.env.REDIS_URL);
const app = express();

app.get("/products", async (req, res) => {
  const limit = Number.parseInt(req.query.limit ?? "20", 10);
  if (!(limit >= 1 && limit <= 100)) {
    return res.status(400).json({ error: { code: "invalid_limit", message: "limit must be 1 to 100" } });
  }
  const key = `node-peer:products:${limit}`;
  try {
    const cached = await redis.get(key);
    if (cached) {
      return res.type("application/json").send(cached);
    }
    const { rows } = await pool.query(
      "SELECT id, name, category, description, price_cents, stock FROM products WHERE TRUE ORDER BY id LIMIT $1",
      [limit + 1],
    );
    const items = rows.slice(0, limit).map((row) => ({ ...row, id: Number(row.id), price_cents: Number(row.price_cents) }));
    const last = items[items.length - 1];
    const body = JSON.stringify({
      items,
      next_cursor: rows.length > limit ? Buffer.from(JSON.stringify({ sort: "id", id: last.id })).toString("base64url") : null,
    });
    await redis.set(key, body, "EX", 60);
    res.type("application/json").send(body);
  } catch (err) {
    console.error(err);
    res.status(500).json({ error: { code: "internal", message: "internal server error" } });
  }
});

app.listen(Number(process.env.PORT ?? 3000), "127.0.0.1");
