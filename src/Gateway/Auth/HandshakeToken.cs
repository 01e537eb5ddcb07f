namespace Realtime.Gateway.Auth;

/// <summary>Finds the token of an HTTP request: <c>Authorization: Bearer</c>, else the <c>access_token</c> query parameter (browsers cannot set headers on a WebSocket).</summary>
public static class HandshakeToken
{
    private const string BearerPrefix = "Bearer ";

    public static string? From(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        if (header.StartsWith(BearerPrefix, StringComparison.OrdinalIgnoreCase))
        {
            return header[BearerPrefix.Length..].Trim();
        }

        var query = request.Query["access_token"];
        return query.Count == 1 ? query[0] : null;
    }

    /// <summary>The token of gRPC call metadata (<c>authorization: Bearer ...</c>).</summary>
    public static string? FromMetadata(string? authorization) =>
        authorization is not null && authorization.StartsWith(BearerPrefix, StringComparison.OrdinalIgnoreCase)
            ? authorization[BearerPrefix.Length..].Trim()
            : null;
}
