using Microsoft.Extensions.Options;
using Realtime.Gateway.Admission;
using Realtime.Gateway.Auth;
using Realtime.Gateway.Protocol;
using Realtime.Gateway.Publishing;
using Realtime.Gateway.Replay;
using Realtime.Gateway.Routing;

namespace Realtime.Gateway.Connections;

/// <summary>
/// <c>GET /ws</c>: authenticates the handshake before any upgrade (a refused client gets an
/// HTTP status, never a WebSocket), then runs the connection until it ends.
/// </summary>
internal static partial class WebSocketEndpoint
{
    public const string Path = "/ws";
    public const string JsonSubprotocol = "realtime.v1.json";
    public const string ProtobufSubprotocol = "realtime.v1.proto";

    public static IEndpointConventionBuilder MapRealtimeWebSocket(this IEndpointRouteBuilder endpoints) =>
        endpoints.Map(Path, HandleAsync);

    private static async Task HandleAsync(
        HttpContext context,
        TokenValidator tokens,
        ConnectionServices services,
        IOptions<GatewayOptions> options,
        IHostApplicationLifetime lifetime,
        AdmissionControl admissionControl,
        DrainCoordinator drain,
        WebSocketKeepAlive keepAlive,
        ILoggerFactory loggers)
    {
        var logger = loggers.CreateLogger("Realtime.Gateway.WebSocket");
        if (!context.WebSockets.IsWebSocketRequest)
        {
            context.Response.Headers.Upgrade = "websocket";
            await HttpHandshake.RefuseAsync(context, StatusCodes.Status426UpgradeRequired, ErrorCodes.BadRequest, "This endpoint speaks WebSocket only.");
            return;
        }

        // Admission first: it is the cheapest check and protects everything after it.
        using var admission = await HttpHandshake.AdmitAsync(context, admissionControl, drain, logger);
        if (admission is null || await HttpHandshake.AuthenticateAsync(context, tokens, logger) is not { } identity)
        {
            // Refused before the upgrade: the client sees a plain HTTP status and no socket exists.
            return;
        }

        await using var userSlot = await HttpHandshake.CountUserConnectionAsync(context, services.UserLimits, identity);
        if (userSlot is null)
        {
            return;
        }

        // The client's order of preference wins; no known subprotocol means JSON (and none is echoed).
        var subprotocol = context.WebSockets.WebSocketRequestedProtocols.FirstOrDefault(p => p is JsonSubprotocol or ProtobufSubprotocol);
        var format = subprotocol == ProtobufSubprotocol ? FrameFormat.Protobuf : FrameFormat.Json;
        // Pings come from the node's one sweep when the upgrade went through our stream (always
        // on the HTTP/1.1 listener); the WebSocket's own timer per connection is the fallback.
        var upgrade = context.Features.Get<KeepAliveUpgradeFeature>();
        using var socket = await context.WebSockets.AcceptWebSocketAsync(new WebSocketAcceptContext
        {
            SubProtocol = subprotocol,
            KeepAliveInterval = upgrade is null ? options.Value.KeepAliveInterval : TimeSpan.Zero,
            KeepAliveTimeout = upgrade is null ? options.Value.KeepAliveTimeout : Timeout.InfiniteTimeSpan,
            DangerousEnableCompression = options.Value.EnableCompression,
        });

        using var connection = new WebSocketConnection(
            socket,
            identity,
            services,
            format,
            frameStream: options.Value.EnableCompression ? null : upgrade?.Stream);
        using var pings = upgrade?.Stream is { } stream ? keepAlive.Track(stream, connection) : null;
        LogConnected(logger, connection.Id, identity.Subject);
        await connection.RunAsync(lifetime.ApplicationStopping);
        LogDisconnected(logger, connection.Id);
    }

    [LoggerMessage(EventId = 5001, Level = LogLevel.Debug, Message = "Connection {ConnectionId} opened for {Subject}")]
    private static partial void LogConnected(ILogger logger, string connectionId, string subject);

    [LoggerMessage(EventId = 5002, Level = LogLevel.Debug, Message = "Connection {ConnectionId} closed")]
    private static partial void LogDisconnected(ILogger logger, string connectionId);
}
