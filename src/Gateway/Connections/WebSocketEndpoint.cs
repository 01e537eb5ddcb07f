using System.Net.WebSockets;
using Microsoft.Extensions.Options;
using Realtime.Gateway.Admission;
using Realtime.Gateway.Auth;
using Realtime.Gateway.Connections.Upgrade;
using Realtime.Gateway.Protocol;

namespace Realtime.Gateway.Connections;

/// <summary>
/// <c>GET /ws</c> on Kestrel's HTTP/1.1 path. Plain handshakes on the HTTP port normally never get
/// here: <see cref="DirectWebSocketUpgrade"/> takes them first (<c>Gateway:DirectWebSocketUpgrade</c>);
/// this path answers the rest (a handshake after other requests on a kept-alive connection, one
/// with compression on, anything the direct path left to Kestrel), with the same checks.
/// </summary>
internal static class WebSocketEndpoint
{
    public const string Path = "/ws";
    public const string JsonSubprotocol = "realtime.v1.json";
    public const string ProtobufSubprotocol = "realtime.v1.proto";

    public static IEndpointConventionBuilder MapRealtimeWebSocket(this IEndpointRouteBuilder endpoints) =>
        endpoints.Map(Path, async (HttpContext context, WebSocketAcceptor acceptor) =>
        {
            if (await acceptor.AcceptAsync(context) is { } accepted)
            {
                await acceptor.RunAsync(accepted);
            }
        });
}

/// <summary>
/// A WebSocket handshake's checks, in order, and the connection's run: admission, then the
/// token, then the user's connection count (each refusal a plain HTTP status before any
/// upgrade: a refused client never holds a socket), then the upgrade.
/// </summary>
internal sealed class WebSocketAcceptor(
    TokenValidator tokens,
    ConnectionServices services,
    IOptions<GatewayOptions> options,
    AdmissionControl admissionControl,
    DrainCoordinator drain,
    WebSocketKeepAlive keepAlive,
    ILoggerFactory loggers)
{
    private readonly ILogger _logger = loggers.CreateLogger("Realtime.Gateway.WebSocket");

    /// <summary>Runs the checks and accepts; null when the client was refused (the response is written).</summary>
    public async Task<AcceptedWebSocket?> AcceptAsync(HttpContext context)
    {
        if (!context.WebSockets.IsWebSocketRequest)
        {
            context.Response.Headers.Upgrade = "websocket";
            await HttpHandshake.RefuseAsync(context, StatusCodes.Status426UpgradeRequired, ErrorCodes.BadRequest, "This endpoint speaks WebSocket only.");
            return null;
        }

        // Admission first: it is the cheapest check and protects everything after it.
        var admission = await HttpHandshake.AdmitAsync(context, admissionControl, drain, _logger);
        if (admission is null)
        {
            return null;
        }

        UserLimits.UserConnectionLease? userSlot = null;
        try
        {
            if (await HttpHandshake.AuthenticateAsync(context, tokens, _logger) is not { } identity)
            {
                // Refused before the upgrade: the client sees a plain HTTP status and no socket exists.
                return null;
            }

            userSlot = await HttpHandshake.CountUserConnectionAsync(context, services.UserLimits, identity);
            if (userSlot is null)
            {
                return null;
            }

            // The client's order of preference wins; no known subprotocol means JSON (and none is echoed).
            var subprotocol = context.WebSockets.WebSocketRequestedProtocols.FirstOrDefault(p => p is WebSocketEndpoint.JsonSubprotocol or WebSocketEndpoint.ProtobufSubprotocol);
            var format = subprotocol == WebSocketEndpoint.ProtobufSubprotocol ? FrameFormat.Protobuf : FrameFormat.Json;
            // Pings come from the node's one sweep when the upgrade went through our stream (always
            // on the HTTP/1.1 listener); the WebSocket's own timer per connection is the fallback.
            var upgrade = context.Features.Get<IKeepAliveStreamFeature>();
            var socket = await context.WebSockets.AcceptWebSocketAsync(new WebSocketAcceptContext
            {
                SubProtocol = subprotocol,
                KeepAliveInterval = upgrade is null ? options.Value.KeepAliveInterval : TimeSpan.Zero,
                KeepAliveTimeout = upgrade is null ? options.Value.KeepAliveTimeout : Timeout.InfiniteTimeSpan,
                DangerousEnableCompression = options.Value.EnableCompression,
            });
            var accepted = new AcceptedWebSocket(socket, identity, format, upgrade?.Stream, userSlot, admission);
            userSlot = null;
            admission = null;
            return accepted;
        }
        finally
        {
            if (userSlot is not null)
            {
                await userSlot.DisposeAsync();
            }

            admission?.Dispose();
        }
    }

    /// <summary>Runs an accepted connection until it ends; the connection releases what it held (it owns <paramref name="accepted"/>).</summary>
    /// <returns>Whether the WebSocket ended with a completed close handshake.</returns>
    public Task<bool> RunAsync(AcceptedWebSocket accepted)
    {
        // Not an async method: the connection's own task is all an open WebSocket is awaited through.
        var connection = new WebSocketConnection(accepted, services, frameStream: options.Value.EnableCompression ? null : accepted.Stream, keepAlive);
        return connection.RunAsync();
    }
}

/// <summary>A WebSocket that passed every check, with what it holds until it ends.</summary>
internal sealed class AcceptedWebSocket(
    WebSocket socket,
    ClientIdentity identity,
    FrameFormat format,
    KeepAliveStream? stream,
    UserLimits.UserConnectionLease userSlot,
    AdmissionControl.Lease admission) : IAsyncDisposable
{
    public WebSocket Socket { get; } = socket;

    public ClientIdentity Identity { get; } = identity;

    public FrameFormat Format { get; } = format;

    /// <summary>The upgraded stream the keep-alive sweep pings through; null on the WebSocket's own keep-alive.</summary>
    public KeepAliveStream? Stream { get; } = stream;

    private Action? _ended;

    /// <summary>Called once, when this is first disposed: how a transport that owns the connection learns it ended.</summary>
    public Action? Ended
    {
        get => Volatile.Read(ref _ended);
        set => Volatile.Write(ref _ended, value);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            Socket.Dispose();
            await userSlot.DisposeAsync();
            admission.Dispose();
        }
        finally
        {
            Interlocked.Exchange(ref _ended, null)?.Invoke();
        }
    }
}
