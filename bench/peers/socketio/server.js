// Benchmark peer (issue 7): a Socket.IO 4 server scaled out with @socket.io/redis-adapter and the
// `redis` client, as the adapter's docs show it. bench/peers/peers.sh starts two of these against
// one redis-server:
//
//   PORT=8380 REDIS_URL=redis://127.0.0.1:6481 node server.js
//
// Events: `subscribe` (channel, ack) joins the room `channel` and acks; `publish` (channel,
// payload[, ack]) emits `event` (channel, payload) to the room on every server and acks.
// Everything else is Socket.IO's defaults (both transports, pingInterval 25 s, pingTimeout 20 s,
// maxHttpBufferSize 1 MB, no per-message deflate) and node's (V8's GC, default heap limits).
import { createServer } from "node:http";
import { createAdapter } from "@socket.io/redis-adapter";
import { createClient } from "redis";
import { Server } from "socket.io";

const port = Number(process.env.PORT ?? 8380);
const host = process.env.HOST ?? "127.0.0.1";
const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6481";

const pubClient = createClient({ url: redisUrl });
const subClient = pubClient.duplicate();
pubClient.on("error", (err) => console.error("redis pub client:", err.message));
subClient.on("error", (err) => console.error("redis sub client:", err.message));
await Promise.all([pubClient.connect(), subClient.connect()]);

// An explicit HTTP server, as the docs' "with Node.js HTTP server" setup: it binds to loopback only.
const httpServer = createServer();
const io = new Server(httpServer, { adapter: createAdapter(pubClient, subClient) });

io.on("connection", (socket) => {
  socket.on("subscribe", (channel, ack) => {
    socket.join(channel);
    if (typeof ack === "function") ack();
  });
  socket.on("publish", (channel, payload, ack) => {
    io.to(channel).emit("event", channel, payload);
    if (typeof ack === "function") ack();
  });
});

httpServer.listen(port, host, () => {
  console.log(`socket.io peer listening on http://${host}:${port} (redis ${redisUrl}, node ${process.version})`);
});

const shutdown = () => {
  io.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 3000).unref();
};
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
