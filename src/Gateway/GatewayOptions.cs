using System.ComponentModel.DataAnnotations;
using Realtime.Contracts;

namespace Realtime.Gateway;

/// <summary>Settings of one gateway node. Section <c>Gateway</c>.</summary>
public sealed class GatewayOptions : IValidatableObject
{
    public const string Section = "Gateway";

    /// <summary>
    /// Stable id of this delivery node; names its delivery topic. Falls back to the
    /// <c>POD_NAME</c> environment variable (a StatefulSet pod name). Must stay the same
    /// across restarts so the node resumes its own topic.
    /// </summary>
    public string? NodeId { get; set; }

    /// <summary>WebSocket and HTTP endpoint (HTTP/1.1).</summary>
    [Required]
    public string HttpEndpoint { get; set; } = "http://127.0.0.1:8080";

    /// <summary>gRPC endpoint (HTTP/2 without TLS unless the URL says https).</summary>
    [Required]
    public string GrpcEndpoint { get; set; } = "http://127.0.0.1:9080";

    /// <summary>
    /// Browser origins (<c>https://chat.example.com</c>) allowed to use the client endpoints
    /// besides the gateway's own; a request from any other origin is refused with 403 before any
    /// upgrade. Requests without an <c>Origin</c> header (non-browser clients) are judged by their
    /// token alone.
    /// </summary>
    public List<string> AllowedOrigins { get; set; } = [];

    /// <summary>Most connections this node holds at once; more get 503 with Retry-After before any upgrade.</summary>
    [Range(1, 1_000_000)]
    public int MaxConnections { get; set; } = 10_000;

    /// <summary>New connections accepted per second (token bucket, burst of one second's worth); the excess gets 503 with Retry-After.</summary>
    [Range(1, 1_000_000)]
    public int NewConnectionsPerSecond { get; set; } = 500;

    /// <summary>
    /// Accept queue of the listening sockets (Kestrel's default is 512; Linux caps it at
    /// <c>net.core.somaxconn</c>, 4096 by default since kernel 5.4). When a reconnect storm
    /// overflows it, the kernel drops the SYNs and the clients' kernels retry after 1 s, then
    /// 3 s: measured in benchmark W4, 361 of 5,000 reconnects waited so with 512.
    /// </summary>
    [Range(1, 65_535)]
    public int ListenBacklog { get; set; } = 4096;

    /// <summary>Most concurrent connections (WebSocket and SSE) of one user across every node, counted in Redis; more get 429 <c>too_many_connections</c>.</summary>
    [Range(1, 1_000_000)]
    public int MaxConnectionsPerUser { get; set; } = 50;

    /// <summary>Publishes per second of one user over all its connections and HTTP publishes, across every node; more get <c>rate_limited</c>.</summary>
    [Range(1, 1_000_000)]
    public int UserPublishesPerSecond { get; set; } = 20;

    /// <summary>Most channels one connection may be subscribed to at once.</summary>
    [Range(1, 100_000)]
    public int MaxChannelsPerConnection { get; set; } = 200;

    /// <summary>Publishes per second one connection may make (token bucket, burst of one second's worth).</summary>
    [Range(0.1, 1_000_000)]
    public double PublishesPerSecond { get; set; } = 10;

    /// <summary>Typing-class events (transient, with an event name starting with <c>typing</c>) per second per connection.</summary>
    [Range(0.1, 1_000)]
    public double TypingEventsPerSecond { get; set; } = 1;

    /// <summary>Subscribes per second one connection may make (token bucket, burst of one second's worth).</summary>
    [Range(0.1, 1_000_000)]
    public double SubscribesPerSecond { get; set; } = 50;

    /// <summary>Largest inbound WebSocket message; larger ones close the connection with 1009.</summary>
    [Range(1_024, 16 * 1024 * 1024)]
    public int MaxInboundMessageBytes { get; set; } = 64 * 1024;

    /// <summary>Largest event payload accepted from any publisher (WebSocket or gRPC).</summary>
    [Range(1, 16 * 1024 * 1024)]
    public int MaxPayloadBytes { get; set; } = 64 * 1024;

    /// <summary>Most events in one gRPC PublishBatch, and most events of one PublishStream waiting for their answer.</summary>
    [Range(1, 100_000)]
    public int MaxBatchEvents { get; set; } = 1_000;

    /// <summary>
    /// Bytes a connection may have queued for sending. Past it the client is not keeping up
    /// and is closed with 4008 (slow consumer) so it cannot hold memory or delay others.
    /// </summary>
    [Range(16 * 1024, 256 * 1024 * 1024)]
    public int SendQueueLimitBytes { get; set; } = 1024 * 1024;

    /// <summary>
    /// Kernel send buffer of each client socket, in bytes; 0 (the default) leaves it to the
    /// kernel's autotuning. A fixed size bounds the kernel memory per connection (autotuning lets
    /// a client that stops reading hold up to <c>net.ipv4.tcp_wmem</c>'s maximum, 4 MiB) at the
    /// cost of throughput to clients far away.
    /// </summary>
    [Range(0, 64 * 1024 * 1024)]
    public int SocketSendBufferBytes { get; set; }

    /// <summary>Publishes of one connection awaiting their Kafka acknowledgement; reading pauses above it.</summary>
    [Range(1, 10_000)]
    public int MaxInFlightPublishesPerConnection { get; set; } = 256;

    /// <summary>Most events one resume or history request replays; a client further behind gets <c>resync</c> (<c>beyond_replay_limit</c>).</summary>
    [Range(1, 10_000_000)]
    public int MaxReplayEvents { get; set; } = 100_000;

    /// <summary>
    /// Events a replay from Kafka reads per round trip (a page of the channel's index, then those
    /// records); a replay holds two pages in memory, one being sent and the next read ahead.
    /// </summary>
    [Range(1, 100_000)]
    public int ReplayPageEvents { get; set; } = 1_000;

    /// <summary>How long one page of a replay from Kafka may take to read.</summary>
    public TimeSpan ReplayTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long the outcome of a publish with an idempotency key is remembered.</summary>
    public TimeSpan IdempotencyWindow { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>How long a retry waits for a still-pending publish with the same idempotency key.</summary>
    public TimeSpan IdempotencyWaitTimeout { get; set; } = TimeSpan.FromSeconds(35);

    /// <summary>TTL of the node's liveness key; the fanout stops routing to a node whose key expired.</summary>
    public TimeSpan LivenessTtl { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How often the liveness key is refreshed (and lost routes re-registered).</summary>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// How long a stopping node takes to send its clients away: each gets a <c>reconnect</c> frame
    /// with its own delay within this window and is closed with 1001 when it runs out. Set the
    /// pod's termination grace period longer than this.
    /// </summary>
    public TimeSpan DrainWindow { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Negotiate permessage-deflate with clients that offer it. Off by default: compression runs
    /// per connection, so the shared, encode-once event frames are compressed once per subscriber.
    /// </summary>
    public bool EnableCompression { get; set; }

    /// <summary>
    /// Take plain WebSocket handshakes on <c>/ws</c> off the HTTP port's connections before
    /// Kestrel's HTTP/1.1 layer, and run the WebSocket straight on the connection (same checks,
    /// same answers). An idle WebSocket then holds no HTTP request state: about 40% less memory
    /// per connection (docs/benchmarks.md, change 23). Off, or with <see cref="EnableCompression"/>
    /// on, every handshake goes through Kestrel's upgrade.
    /// </summary>
    public bool DirectWebSocketUpgrade { get; set; } = true;

    /// <summary>
    /// With <see cref="DirectWebSocketUpgrade"/> on a plain-http HTTP port: the gateway accepts
    /// that port's sockets itself and runs a WebSocket whose whole handshake arrived at once
    /// straight on its socket, without Kestrel's connection and pipes under it (about 45% less
    /// memory per idle connection, docs/benchmarks.md change 29). Every other connection is
    /// Kestrel's as before. Off: Kestrel's socket transport accepts every connection.
    /// </summary>
    public bool DirectSocketTransport { get; set; } = true;

    /// <summary>WebSocket protocol-level ping interval (keeps NATs and proxies from dropping idle sockets).</summary>
    public TimeSpan KeepAliveInterval { get; set; } = TimeSpan.FromSeconds(25);

    /// <summary>
    /// How long after a ping the pong may take. A connection that answers nothing for
    /// <see cref="KeepAliveInterval"/> plus this is dead: it is closed and its routes released.
    /// </summary>
    public TimeSpan KeepAliveTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How often an idle SSE stream gets a comment line, so proxies and NATs keep it open.</summary>
    public TimeSpan SseHeartbeatInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// The reconnect delay SSE streams hand to <c>EventSource</c> (its <c>retry:</c> field); each
    /// stream gets it jittered by ±50%, so the browsers of a lost node do not come back at once.
    /// </summary>
    public TimeSpan SseReconnectDelay { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// How long a client may take to send the headers of a request (Kestrel's
    /// <c>Limits.RequestHeadersTimeout</c>), on the HTTP and gRPC ports. A client that drips its
    /// handshake byte by byte (slowloris) is dropped once it runs out, so it cannot hold a socket
    /// open indefinitely. (On HTTP/2 it bounds header blocks; before a connection's first request
    /// Kestrel's keep-alive timeout applies.)
    /// </summary>
    public TimeSpan RequestHeadersTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a long-poll request is held when nothing is new; it then ends with 204.</summary>
    public TimeSpan LongPollTimeout { get; set; } = TimeSpan.FromSeconds(25);

    /// <summary>Most events in one long-poll response; a client further behind gets the rest on its next poll.</summary>
    [Range(1, 100_000)]
    public int LongPollMaxEvents { get; set; } = 1_000;

    /// <summary>
    /// The certificate served when <see cref="HttpEndpoint"/> or <see cref="GrpcEndpoint"/> is an
    /// <c>https://</c> URL (TLS 1.2+; <c>wss://</c> and gRPC over TLS). Section <c>Gateway:Tls</c>.
    /// </summary>
    public GatewayTlsOptions Tls { get; set; } = new();

    public string ResolveNodeId() =>
        !string.IsNullOrWhiteSpace(NodeId) ? NodeId : Environment.GetEnvironmentVariable("POD_NAME") ?? string.Empty;

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (!Contracts.NodeId.IsValid(ResolveNodeId()))
        {
            yield return new ValidationResult(
                "Gateway:NodeId (or POD_NAME) must be set to 1-64 characters from [a-zA-Z0-9._-].",
                [nameof(NodeId)]);
        }

        if (HeartbeatInterval <= TimeSpan.Zero || HeartbeatInterval * 2 >= LivenessTtl)
        {
            yield return new ValidationResult(
                "Gateway:HeartbeatInterval must be positive and less than half of Gateway:LivenessTtl.",
                [nameof(HeartbeatInterval), nameof(LivenessTtl)]);
        }

        foreach (var (name, value) in new[] { (nameof(SseHeartbeatInterval), SseHeartbeatInterval), (nameof(SseReconnectDelay), SseReconnectDelay), (nameof(LongPollTimeout), LongPollTimeout), (nameof(RequestHeadersTimeout), RequestHeadersTimeout) })
        {
            if (value <= TimeSpan.Zero)
            {
                yield return new ValidationResult($"Gateway:{name} must be positive.", [name]);
            }
        }

        string? httpsEndpoint = null;
        foreach (var (name, value) in new[] { (nameof(HttpEndpoint), HttpEndpoint), (nameof(GrpcEndpoint), GrpcEndpoint) })
        {
            if (!Uri.TryCreate(value, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            {
                yield return new ValidationResult($"Gateway:{name} must be an absolute http(s) URL.", [name]);
            }
            else if (uri.Scheme == Uri.UriSchemeHttps)
            {
                httpsEndpoint ??= $"Gateway:{name}";
            }
        }

        if (httpsEndpoint is not null)
        {
            foreach (var result in (Tls ?? new GatewayTlsOptions()).Validate(httpsEndpoint))
            {
                yield return result;
            }
        }
    }
}
