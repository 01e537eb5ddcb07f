using Microsoft.Extensions.Options;
using Realtime.Gateway.Admission;
using Realtime.Gateway.Auth;
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

    public static IEndpointConventionBuilder MapRealtimeWebSocket(this IEndpointRouteBuilder endpoints) =>
        endpoints.Map(Path, HandleAsync);

    private static async Task HandleAsync(
        HttpContext context,
        TokenValidator tokens,
        ChannelHub hub,
        ChannelHistory history,
        EventPublisher publisher,
        EventFactory events,
        NodeIdentity node,
        IOptions<GatewayOptions> options,
        IHostApplicationLifetime lifetime,
        AdmissionControl admissionControl,
        DrainCoordinator drain,
        ILoggerFactory loggers)
    {
        var logger = loggers.CreateLogger("Realtime.Gateway.WebSocket");
        var retryAfter = TimeSpan.FromSeconds(1);
        if (!context.WebSockets.IsWebSocketRequest)
        {
            context.Response.StatusCode = StatusCodes.Status426UpgradeRequired;
            context.Response.Headers.Upgrade = "websocket";
            await context.Response.WriteAsync("This endpoint speaks WebSocket only.");
            return;
        }

        // Admission first: it is the cheapest check and protects everything after it.
        using var admission = drain.IsDraining ? null : admissionControl.TryAdmit(out retryAfter);
        if (admission is null)
        {
            LogNotAdmitted(logger, admissionControl.ActiveConnections);
            context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            context.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
            await context.Response.WriteAsJsonAsync(new { error = "over_capacity" });
            return;
        }

        var validation = await tokens.ValidateAsync(HandshakeToken.From(context.Request));
        if (validation.Identity is not { } identity)
        {
            // Refused before the upgrade: the client sees a plain 401 and no socket exists.
            LogRefused(logger, validation.Failure);
            context.Response.StatusCode = StatusCodes.Status401Unauthorized;
            context.Response.Headers.WWWAuthenticate = $"Bearer error=\"invalid_token\", error_description=\"{validation.Failure}\"";
            await context.Response.WriteAsJsonAsync(new { error = "unauthorized", reason = validation.Failure.ToString() });
            return;
        }

        var offered = context.WebSockets.WebSocketRequestedProtocols;
        using var socket = await context.WebSockets.AcceptWebSocketAsync(new WebSocketAcceptContext
        {
            SubProtocol = offered.Contains(JsonSubprotocol) ? JsonSubprotocol : null,
            KeepAliveInterval = options.Value.KeepAliveInterval,
            KeepAliveTimeout = options.Value.KeepAliveTimeout,
            DangerousEnableCompression = options.Value.EnableCompression,
        });

        using var connection = new WebSocketConnection(
            socket,
            identity,
            new ConnectionServices(hub, history, publisher, drain, events, node, options.Value, logger));
        LogConnected(logger, connection.Id, identity.Subject);
        await connection.RunAsync(lifetime.ApplicationStopping);
        LogDisconnected(logger, connection.Id);
    }

    [LoggerMessage(EventId = 5000, Level = LogLevel.Information, Message = "Handshake refused: {Failure}")]
    private static partial void LogRefused(ILogger logger, TokenFailure failure);

    [LoggerMessage(EventId = 5003, Level = LogLevel.Debug, Message = "Handshake refused: over capacity ({Active} connections)")]
    private static partial void LogNotAdmitted(ILogger logger, int active);

    [LoggerMessage(EventId = 5001, Level = LogLevel.Debug, Message = "Connection {ConnectionId} opened for {Subject}")]
    private static partial void LogConnected(ILogger logger, string connectionId, string subject);

    [LoggerMessage(EventId = 5002, Level = LogLevel.Debug, Message = "Connection {ConnectionId} closed")]
    private static partial void LogDisconnected(ILogger logger, string connectionId);
}
