using Microsoft.Extensions.Options;

namespace Realtime.Gateway.Auth;

/// <summary>
/// Which browser pages may use the client endpoints (<c>/ws</c>, <c>/v1/...</c>): a request
/// with an <c>Origin</c> header is accepted when it comes from the gateway's own origin or one
/// listed in <see cref="GatewayOptions.AllowedOrigins"/>, and refused with 403 before anything
/// else (before any upgrade) otherwise. A request without <c>Origin</c> is not from a browser page
/// and is judged by its token alone. Allowed cross-origin requests get CORS headers, and
/// preflights are answered here.
/// </summary>
/// <remarks>
/// This is what stops a page on another site from using a token it obtained (or a browser's
/// ambient credentials, should a deployment add cookies) against the gateway; WebSocket
/// handshakes are not covered by CORS, so the check is the only defence there.
/// </remarks>
public sealed class OriginPolicy(IOptions<GatewayOptions> options)
{
    private const string AllowedMethods = "GET, POST, OPTIONS";
    private const string AllowedHeaders = "Authorization, Content-Type, Last-Event-ID";
    private readonly HashSet<string> _allowed = new(options.Value.AllowedOrigins.Select(o => o.TrimEnd('/')), StringComparer.OrdinalIgnoreCase);

    /// <summary>Applies the policy; false when the request was refused (403) or fully answered (a preflight).</summary>
    public async Task<bool> ApplyAsync(HttpContext context)
    {
        var origin = context.Request.Headers.Origin.ToString();
        if (origin.Length == 0)
        {
            return true;
        }

        if (IsSameOrigin(context.Request, origin))
        {
            return true;
        }

        if (!_allowed.Contains(origin))
        {
            context.RequestServices.GetRequiredService<Telemetry.GatewayMetrics>().HandshakeFailed("origin_not_allowed");
            context.Response.StatusCode = StatusCodes.Status403Forbidden;
            await context.Response.WriteAsJsonAsync(new { error = "origin_not_allowed", message = "This origin may not use the service." });
            return false;
        }

        var headers = context.Response.Headers;
        headers.AccessControlAllowOrigin = origin;
        headers.Vary = "Origin";
        if (HttpMethods.IsOptions(context.Request.Method))
        {
            headers.AccessControlAllowMethods = AllowedMethods;
            headers.AccessControlAllowHeaders = AllowedHeaders;
            headers.AccessControlMaxAge = "600";
            context.Response.StatusCode = StatusCodes.Status204NoContent;
            return false;
        }

        return true;
    }

    private static bool IsSameOrigin(HttpRequest request, string origin) =>
        Uri.TryCreate(origin, UriKind.Absolute, out var uri)
        && string.Equals(uri.Scheme, request.Scheme, StringComparison.OrdinalIgnoreCase)
        && string.Equals(uri.IsDefaultPort ? uri.Host : $"{uri.Host}:{uri.Port}", request.Host.Value, StringComparison.OrdinalIgnoreCase);
}
