namespace Realtime.Gateway.Auth;

/// <summary>
/// Finds the token of an HTTP request: <c>Authorization: Bearer</c> (non-browser clients), else a
/// WebSocket subprotocol <c>realtime.token.&lt;JWT&gt;</c> offered next to the real one (browsers
/// cannot set headers on a WebSocket), else the <c>access_token</c> query parameter (short-lived
/// tokens only: see <see cref="AuthOptions.MaxQueryTokenLifetime"/>).
/// </summary>
public static class HandshakeToken
{
    /// <summary>Prefix of the subprotocol that carries a token; it is never selected or echoed.</summary>
    public const string SubprotocolPrefix = "realtime.token.";

    private const string BearerPrefix = "Bearer ";

    public static (string? Token, TokenCarrier Carrier) From(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        if (header.StartsWith(BearerPrefix, StringComparison.OrdinalIgnoreCase))
        {
            return (header[BearerPrefix.Length..].Trim(), TokenCarrier.Header);
        }

        foreach (var value in request.Headers.SecWebSocketProtocol)
        {
            foreach (var offered in (value ?? string.Empty).Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                if (offered.StartsWith(SubprotocolPrefix, StringComparison.Ordinal))
                {
                    return (offered[SubprotocolPrefix.Length..], TokenCarrier.Header);
                }
            }
        }

        var query = request.Query["access_token"];
        return (query.Count == 1 ? query[0] : null, TokenCarrier.Url);
    }

    /// <summary>The token of gRPC call metadata (<c>authorization: Bearer ...</c>).</summary>
    public static string? FromMetadata(string? authorization) =>
        authorization is not null && authorization.StartsWith(BearerPrefix, StringComparison.OrdinalIgnoreCase)
            ? authorization[BearerPrefix.Length..].Trim()
            : null;
}
