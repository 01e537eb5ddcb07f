using System.Globalization;
using Realtime.Contracts;
using Realtime.Gateway.Admission;
using Realtime.Gateway.Auth;
using Realtime.Gateway.Protocol;
using Realtime.Gateway.Telemetry;

namespace Realtime.Gateway.Connections;

/// <summary>
/// The checks every client request makes before it holds anything (WebSocket upgrade, SSE
/// stream, long-poll, HTTP publish), with the same HTTP answers: <c>503</c> + <c>Retry-After</c>
/// over capacity or draining, <c>401</c> for a refused token, <c>400</c>/<c>403</c> for channels.
/// Error bodies are <c>{"error":"code","message":"..."}</c>.
/// </summary>
internal static partial class HttpHandshake
{
    /// <summary>Takes an admission slot, or answers 503 with Retry-After and returns null.</summary>
    public static async Task<AdmissionControl.Lease?> AdmitAsync(HttpContext context, AdmissionControl admission, DrainCoordinator drain, ILogger logger, bool newConnection = true)
    {
        var retryAfter = TimeSpan.FromSeconds(1);
        var lease = drain.IsDraining ? null : admission.TryAdmit(out retryAfter, newConnection);
        if (lease is null)
        {
            Metrics(context).HandshakeFailed("over_capacity");
            Metrics(context).Rejected("admission");
            LogNotAdmitted(logger, admission.ActiveConnections);
            await RefuseAsync(context, StatusCodes.Status503ServiceUnavailable, "over_capacity", "The node takes no more connections now; retry later.", retryAfter);
        }

        return lease;
    }

    /// <summary>Validates the request's token, or answers 401 and returns null. The token itself is never logged or echoed.</summary>
    public static async Task<ClientIdentity?> AuthenticateAsync(HttpContext context, TokenValidator tokens, ILogger logger)
    {
        var (token, carrier) = HandshakeToken.From(context.Request);
        var validation = await tokens.ValidateAsync(token, carrier);
        if (validation.Identity is { } identity)
        {
            return identity;
        }

        Metrics(context).HandshakeFailed("unauthorized");
        LogRefused(logger, validation.Failure);
        context.Response.Headers.WWWAuthenticate = $"Bearer error=\"invalid_token\", error_description=\"{validation.Failure}\"";
        await RefuseAsync(context, StatusCodes.Status401Unauthorized, "unauthorized", validation.Failure.ToString());
        return null;
    }

    /// <summary>Counts one more connection of the user across nodes, or answers 429 and returns null.</summary>
    public static async Task<UserLimits.UserConnectionLease?> CountUserConnectionAsync(HttpContext context, UserLimits limits, ClientIdentity identity)
    {
        var lease = await limits.TryAcquireConnectionAsync(identity);
        if (lease is null)
        {
            Metrics(context).HandshakeFailed(ErrorCodes.TooManyConnections);
            Metrics(context).Rejected("user_connections");
            await RefuseAsync(context, StatusCodes.Status429TooManyRequests, ErrorCodes.TooManyConnections, "This user holds as many connections as it may; close one first.", TimeSpan.FromSeconds(5));
        }

        return lease;
    }

    /// <summary>Checks one channel name and the identity's right to <paramref name="action"/> on it; on failure answers 400 or 403.</summary>
    public static async Task<bool> AuthorizeAsync(HttpContext context, ChannelAuthorizer authorizer, ClientIdentity identity, ChannelAction action, string channel)
    {
        if (!ChannelName.IsValid(channel))
        {
            Metrics(context).HandshakeFailed(ErrorCodes.InvalidChannel);
            await RefuseAsync(context, StatusCodes.Status400BadRequest, ErrorCodes.InvalidChannel, "Invalid channel name.");
            return false;
        }

        if (!await authorizer.AuthorizeAsync(identity, action, channel))
        {
            Metrics(context).HandshakeFailed(ErrorCodes.NotAuthorized);
            await RefuseAsync(context, StatusCodes.Status403Forbidden, ErrorCodes.NotAuthorized, $"Not allowed to {action.ToString().ToLowerInvariant()} on this channel.");
            return false;
        }

        return true;
    }

    /// <summary>
    /// Reads <c>channels=a,b</c> (one parameter, comma-separated, or repeated), each checked as
    /// by <see cref="AuthorizeAsync"/>; answers 400 or 403 and returns null on the first problem.
    /// </summary>
    public static async Task<List<string>?> ReadChannelsAsync(HttpContext context, ChannelAuthorizer authorizer, ClientIdentity identity, int maxChannels, bool required)
    {
        var channels = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var value in context.Request.Query["channels"])
        {
            foreach (var channel in (value ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (!seen.Add(channel))
                {
                    continue;
                }

                if (channels.Count == maxChannels)
                {
                    await RefuseAsync(context, StatusCodes.Status400BadRequest, ErrorCodes.TooManyChannels, $"At most {maxChannels} channels per connection.");
                    return null;
                }

                if (!await AuthorizeAsync(context, authorizer, identity, ChannelAction.Subscribe, channel))
                {
                    return null;
                }

                channels.Add(channel);
            }
        }

        if (required && channels.Count == 0)
        {
            await RefuseAsync(context, StatusCodes.Status400BadRequest, ErrorCodes.BadRequest, "Name at least one channel: ?channels=a,b");
            return null;
        }

        return channels;
    }

    public static async Task RefuseAsync(HttpContext context, int status, string code, string message, TimeSpan? retryAfter = null)
    {
        context.Response.StatusCode = status;
        if (retryAfter is { } wait)
        {
            context.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        }

        await context.Response.WriteAsJsonAsync(new ErrorBody(code, message));
    }

    private static GatewayMetrics Metrics(HttpContext context) => context.RequestServices.GetRequiredService<GatewayMetrics>();

    private sealed record ErrorBody(string Error, string Message);

    [LoggerMessage(EventId = 5000, Level = LogLevel.Information, Message = "Handshake refused: {Failure}")]
    private static partial void LogRefused(ILogger logger, TokenFailure failure);

    [LoggerMessage(EventId = 5003, Level = LogLevel.Debug, Message = "Handshake refused: over capacity ({Active} connections)")]
    private static partial void LogNotAdmitted(ILogger logger, int active);
}
