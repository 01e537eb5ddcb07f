namespace Realtime.Gateway.Protocol;

/// <summary>Codes of <c>error</c> frames and their meaning (docs/protocol.md lists them for clients).</summary>
public static class ErrorCodes
{
    /// <summary>The frame is not valid JSON, not an object, or a field has the wrong type or is missing.</summary>
    public const string BadRequest = "bad_request";

    /// <summary>The frame's <c>type</c> is not one this protocol version knows.</summary>
    public const string UnknownType = "unknown_type";

    /// <summary>The channel name breaks the naming rules.</summary>
    public const string InvalidChannel = "invalid_channel";

    /// <summary>The token does not grant this channel.</summary>
    public const string NotAuthorized = "not_authorized";

    /// <summary>Unsubscribe from a channel the connection is not subscribed to.</summary>
    public const string NotSubscribed = "not_subscribed";

    /// <summary>The event payload is larger than the node accepts.</summary>
    public const string PayloadTooLarge = "payload_too_large";

    /// <summary>Kafka or Redis did not answer in time; the request had no effect and may be retried.</summary>
    public const string Unavailable = "unavailable";

    /// <summary>The connection publishes or subscribes faster than its limit; the frame had no effect. Retry after <c>retryAfterMs</c>.</summary>
    public const string RateLimited = "rate_limited";

    /// <summary>The connection is subscribed to as many channels as it may be.</summary>
    public const string TooManyChannels = "too_many_channels";

    /// <summary>A <c>refresh</c> whose token is invalid or names another subject; the current token stays in force.</summary>
    public const string RefreshRefused = "refresh_refused";

    /// <summary>(HTTP 429) the user holds <c>Gateway:MaxConnectionsPerUser</c> connections across all nodes.</summary>
    public const string TooManyConnections = "too_many_connections";

    /// <summary>An SSE <c>Last-Event-ID</c> or long-poll cursor that this service did not issue.</summary>
    public const string BadCursor = "bad_cursor";
}

/// <summary>WebSocket close codes the gateway uses (docs/protocol.md lists them for clients).</summary>
public static class CloseCodes
{
    /// <summary>1000: normal closure.</summary>
    public const int Normal = 1000;

    /// <summary>1001: the node is shutting down; reconnect (to any node).</summary>
    public const int GoingAway = 1001;

    /// <summary>1003: a binary message on the JSON protocol.</summary>
    public const int UnsupportedData = 1003;

    /// <summary>1007: a text message that is not valid UTF-8.</summary>
    public const int InvalidPayload = 1007;

    /// <summary>1009: an inbound message larger than the limit.</summary>
    public const int MessageTooBig = 1009;

    /// <summary>
    /// 1006: the peer answered no ping in time and the connection was cut. Never sent (RFC 6455
    /// reserves it for a connection that ended without a close frame); it names the reason in
    /// metrics.
    /// </summary>
    public const int Unresponsive = 1006;

    /// <summary>1011: an unexpected server error on this connection.</summary>
    public const int InternalError = 1011;

    /// <summary>4000: an operator ended the connection (<c>POST /admin/disconnect</c>); reconnect and resume.</summary>
    public const int Disconnected = 4000;

    /// <summary>4001: the token expired and no valid <c>refresh</c> came in time; reconnect with a fresh token.</summary>
    public const int TokenExpired = 4001;

    /// <summary>4003: the subject's sessions were revoked (after an <c>auth.revoked</c> frame); do not reconnect with the same token.</summary>
    public const int Revoked = 4003;

    /// <summary>4008: the client did not read fast enough and its send queue overflowed; reconnect and resume.</summary>
    public const int SlowConsumer = 4008;
}
