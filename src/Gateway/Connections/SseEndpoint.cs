using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using Realtime.Gateway.Admission;
using Realtime.Gateway.Auth;
using Realtime.Gateway.Protocol;
using Realtime.Gateway.Publishing;
using Realtime.Gateway.Replay;
using Realtime.Gateway.Routing;

namespace Realtime.Gateway.Connections;

/// <summary>
/// <c>GET /v1/sse?channels=a,b</c>: a listen-only stream for <c>EventSource</c>. Checked like a
/// WebSocket handshake (admission, token, channels) before the response starts; resumes from
/// <c>Last-Event-ID</c> (or <c>?lastEventId=</c> for clients that cannot set headers).
/// </summary>
internal static partial class SseEndpoint
{
    public const string Path = "/v1/sse";

    public static IEndpointConventionBuilder MapRealtimeSse(this IEndpointRouteBuilder endpoints) =>
        endpoints.MapGet(Path, HandleAsync);

    private static async Task HandleAsync(
        HttpContext context,
        TokenValidator tokens,
        ConnectionServices services,
        IOptions<GatewayOptions> options,
        AdmissionControl admissionControl,
        DrainCoordinator drain,
        ILoggerFactory loggers)
    {
        var logger = loggers.CreateLogger("Realtime.Gateway.Sse");
        using var admission = await HttpHandshake.AdmitAsync(context, admissionControl, drain, logger);
        if (admission is null
            || await HttpHandshake.AuthenticateAsync(context, tokens, logger) is not { } identity
            || await HttpHandshake.ReadChannelsAsync(context, services.Authorizer, identity, options.Value.MaxChannelsPerConnection, required: true) is not { } channels)
        {
            return;
        }

        await using var userSlot = await HttpHandshake.CountUserConnectionAsync(context, services.UserLimits, identity);
        if (userSlot is null)
        {
            return;
        }

        var lastEventId = context.Request.Headers["Last-Event-ID"].ToString();
        if (lastEventId.Length == 0)
        {
            lastEventId = context.Request.Query["lastEventId"].ToString();
        }

        var resumeFrom = new Dictionary<string, ChannelPosition>(StringComparer.Ordinal);
        if (lastEventId.Length > 0 && !StreamCursorCodec.TryDecode(lastEventId, options.Value.MaxChannelsPerConnection, out resumeFrom))
        {
            await HttpHandshake.RefuseAsync(context, StatusCodes.Status400BadRequest, ErrorCodes.BadCursor, "Last-Event-ID is not a cursor this service issued.");
            return;
        }

        var response = context.Response;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache, no-transform";
        // Tells nginx-style proxies not to buffer; buffering would hold events back.
        response.Headers["X-Accel-Buffering"] = "no";
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();

        using var connection = new SseConnection(
            context,
            identity,
            services,
            channels,
            resumeFrom);
        await connection.StartAsync();
        LogOpened(logger, connection.Id, channels.Count);
        await connection.RunAsync();
        LogClosed(logger, connection.Id);
    }

    [LoggerMessage(EventId = 5101, Level = LogLevel.Debug, Message = "SSE stream {ConnectionId} opened on {Channels} channels")]
    private static partial void LogOpened(ILogger logger, string connectionId, int channels);

    [LoggerMessage(EventId = 5102, Level = LogLevel.Debug, Message = "SSE stream {ConnectionId} closed")]
    private static partial void LogClosed(ILogger logger, string connectionId);
}
